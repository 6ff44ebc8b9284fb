"""CPU inference backends on the real all-MiniLM-L6-v2 weights (no services): every backend's vectors agree
with torch fp32 at cosine >= 0.99, a cross-encoder's scores keep their order, and the export is cached."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.config import EngineSettings, ModelSettings, Settings
from encoders import runtime
from encoders.rerank import Reranker
from encoders.runtime import BACKENDS, compiled_dir
from encoders.text import TextEncoder, resolve_model_path

SENTENCES = [
    "a cat sits on the mat",
    "a small kitten",
    "quarterly revenue grew by four percent",
    "Vitamin D supplementation reduces the risk of fractures in elderly women: a randomised trial of "
    "3,270 participants over three years found no effect on hip fractures but fewer falls.",
]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("runtime")


def settings_for(data_dir: Path, **models: str) -> Settings:
    return Settings(engine=EngineSettings(data_dir=data_dir), models=ModelSettings(device="cpu", **models))


@pytest.fixture(scope="module")
def reference(data_dir: Path) -> np.ndarray:
    encoder = TextEncoder(settings=settings_for(data_dir, text_backend="torch"))
    assert encoder.backend == "torch"
    return encoder.encode(SENTENCES)


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "torch"])
def test_backend_vectors_agree_with_torch_fp32(backend: str, data_dir: Path, reference: np.ndarray) -> None:
    encoder = TextEncoder(settings=settings_for(data_dir, text_backend=backend))
    vectors = encoder.encode(SENTENCES)
    assert encoder.backend == backend
    assert vectors.shape == reference.shape and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert float((vectors * reference).sum(axis=1).min()) >= 0.99
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3  # the meaning survives, not only the norm


def test_export_is_cached_beside_the_model(data_dir: Path, reference: np.ndarray) -> None:
    settings = settings_for(data_dir, text_backend="onnx")
    TextEncoder(settings=settings).encode(SENTENCES[:1])
    folder = compiled_dir(settings, resolve_model_path("all-MiniLM-L6-v2", None))
    assert folder.parent == data_dir / "models" / ".compiled"
    exported = folder / "sentence_embedding.onnx"
    stamp = exported.stat().st_mtime_ns
    again = TextEncoder(settings=settings).encode(SENTENCES)  # a new process-wide instance: no new export
    assert exported.stat().st_mtime_ns == stamp
    assert float((again * reference).sum(axis=1).min()) >= 0.999


def test_a_runner_has_run_once_before_it_is_shared(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Two API threads making a process's first OpenVINO inference together deadlocked on the GIL (a C++
    # static built on the first tensor read, seen with a cold disk); `runner` now runs the graph once,
    # one thread at a time, before returning it.
    calls: list[bool] = []
    build = runtime._openvino_runner

    def counted(path: Path) -> runtime.Runner:
        run = build(path)

        def call(features: dict[str, np.ndarray]) -> np.ndarray:
            calls.append(runtime._FIRST_RUN.locked())
            return run(features)

        return call

    monkeypatch.setattr(runtime, "_openvino_runner", counted)
    settings = settings_for(data_dir, text_backend="openvino")
    model = TextEncoder(settings=settings).model
    path = resolve_model_path("all-MiniLM-L6-v2", None)
    run = runtime.runner(model, path, key="sentence_embedding", backend="openvino", settings=settings)
    assert run is not None and calls == [True]  # once, under the first-run lock
    assert run(runtime.features(model, SENTENCES[:2])).shape == (2, 384) and calls == [True, False]


@pytest.fixture(scope="module")
def cross_encoder(data_dir: Path) -> str:
    """A cross-encoder of the reranker's architecture (MiniLM body, fresh head) saved locally."""
    from sentence_transformers import CrossEncoder

    target = data_dir / "cross-encoder"
    CrossEncoder(resolve_model_path("all-MiniLM-L6-v2", None), num_labels=1).save(str(target))
    return str(target)


@pytest.mark.parametrize("backend", ["onnx", "onnx-int8", "openvino"])
def test_reranker_backends_score_like_torch(backend: str, data_dir: Path, cross_encoder: str) -> None:
    query = "does vitamin d prevent fractures"
    reference = Reranker(cross_encoder, settings_for(data_dir, rerank_backend="torch"))
    torch_scores = reference.score(query, SENTENCES)
    reranker = Reranker(cross_encoder, settings_for(data_dir, rerank_backend=backend))
    scores = reranker.score(query, SENTENCES)
    assert reranker.backend == backend and len(scores) == len(SENTENCES)
    # int8 weights, and OpenVINO's bf16 on CPUs that have it (avx512_bf16, AMX), move a score a little
    assert np.allclose(scores, torch_scores, atol=1e-4 if backend == "onnx" else 0.02)
    assert reranker.score(query, []) == []


def test_an_unknown_backend_is_refused_by_the_settings() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="text_backend"):
        ModelSettings(text_backend="tensorrt")
