"""CPU inference backends for sentence-transformers models: the same weights run by torch, by ONNX Runtime
(fp32, or int8 weights by dynamic quantisation) or by OpenVINO.

A model is exported once with `torch.onnx` from its local weights (no hub: the pipeline's own modules,
pooling and normalisation included, so the graph returns exactly what `model(features)[key]` returns) into
`<data_dir>/models/.compiled/<name>-<hash>/`, keyed by the weights' path, size and time, so a retrained
model in place is exported again. Tokenisation stays with the model's own `preprocess`. Why not
sentence-transformers' own `backend="onnx"`: it needs `optimum`, whose releases pin older transformers and
huggingface_hub than this project runs. A GPU keeps torch fp16 whatever the setting says.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from core.config import Settings

Backend = Literal["torch", "onnx", "onnx-int8", "openvino"]
BACKENDS: tuple[str, ...] = ("torch", "onnx", "onnx-int8", "openvino")
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OPSET = 17
Runner = Callable[[dict[str, np.ndarray]], np.ndarray]  # features -> the graph's one output

log = logging.getLogger(__name__)
# A process's first inference, one thread at a time (`warmed`).
_FIRST_RUN = threading.Lock()


def compiled_dir(settings: Settings, model_path: str) -> Path:
    """Where a model's exported graphs live: one folder per (path, weights size and time)."""
    path = Path(model_path).resolve()
    weights = sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin"))
    stamp = "".join(f"{w.name}:{w.stat().st_size}:{w.stat().st_mtime_ns};" for w in weights)
    digest = hashlib.sha1(f"{path};{stamp}".encode()).hexdigest()[:12]
    return settings.engine.data_dir / "models" / ".compiled" / f"{path.name}-{digest}"


def runner(
    model: Any, model_path: str, *, key: str, backend: str, settings: Settings, pairs: bool = False
) -> Runner | None:
    """A function running `model`'s forward through `backend`, or None for torch (or when the backend
    cannot be had here: logged, and torch serves instead of failing every request). `pairs`: the model
    reads (query, passage) pairs, as a cross-encoder does."""
    if backend == "torch":
        return None
    folder = compiled_dir(settings, model_path)
    try:
        sample = (
            [("a question", "an example passage"), ("another", "one")] if pairs else ["an example", "two"]
        )
        onnx_path = export(model, folder / f"{key}.onnx", key=key, sample=sample)
        if backend == "onnx-int8":
            run = _ort_runner(quantised(onnx_path))
        elif backend == "onnx":
            run = _ort_runner(onnx_path)
        elif backend == "openvino":
            run = _openvino_runner(onnx_path)
        else:
            raise ValueError(f"unknown inference backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        return warmed(run, features(model, sample))
    except ImportError as exc:
        log.warning("inference backend %s unavailable (%s); running torch", backend, exc)
        return None


def warmed(run: Runner, sample: dict[str, np.ndarray]) -> Runner:
    """`run`, having run once on `sample` before any other thread may call it. OpenVINO's binding builds
    a C++ static on its first tensor read while it needs the GIL; two threads reading at once deadlock,
    the GIL held (an API worker froze with two first searches until gunicorn killed it)."""
    with _FIRST_RUN:
        run(sample)
    return run


def export(model: Any, target: Path, *, key: str, sample: list[Any]) -> Path:
    """The model's forward (from token ids to `key`) as an ONNX graph at `target`, exported if missing.
    Written under a temporary name and renamed, so concurrent processes never read half a file."""
    if target.exists():
        return target
    import torch

    target.parent.mkdir(parents=True, exist_ok=True)
    prepared = model.preprocess(sample)
    names = [n for n in INPUTS if n in prepared]
    graph = _traceable(model, key, names)
    axes = {n: {0: "batch", 1: "tokens"} for n in names} | {"out": {0: "batch"}}
    fd, scratch = tempfile.mkstemp(prefix=f".{target.stem}-", suffix=".onnx", dir=target.parent)
    os.close(fd)
    try:
        with torch.inference_mode():
            torch.onnx.export(
                graph,
                tuple(prepared[n] for n in names),
                scratch,
                input_names=names,
                output_names=["out"],
                dynamic_axes=axes,
                opset_version=OPSET,
                dynamo=False,
            )
        os.replace(scratch, target)
    finally:
        Path(scratch).unlink(missing_ok=True)
    return target


def quantised(onnx_path: Path) -> Path:
    """int8 weights, per output channel (per-tensor scales cost MiniLM about 0.1 of cosine to fp32)."""
    target = onnx_path.with_name(f"{onnx_path.stem}-int8.onnx")
    if target.exists():
        return target
    from onnxruntime.quantization import QuantType, quantize_dynamic

    scratch = target.with_name(f".{target.name}.{os.getpid()}")
    try:
        quantize_dynamic(onnx_path, scratch, weight_type=QuantType.QInt8, per_channel=True)
        os.replace(scratch, target)
    finally:
        scratch.unlink(missing_ok=True)
    return target


def _ort_runner(path: Path) -> Runner:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Threads that spin while waiting for work steal the CPU from the engine and the API on a shared host.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # No arena: it keeps the peak of the largest batch (~1 GB at 64 x 256 tokens) for the process's life.
    options.enable_cpu_mem_arena = False
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    wanted = [i.name for i in session.get_inputs()]

    def run(features: dict[str, np.ndarray]) -> np.ndarray:
        return session.run(None, {n: features[n] for n in wanted})[0]

    return run


def _openvino_runner(path: Path) -> Runner:
    return openvino_runner(path, {"PERFORMANCE_HINT": "LATENCY"})


def openvino_runner(path: Path, config: dict[str, Any]) -> Runner:
    """An ONNX graph compiled by OpenVINO for the CPU with `config` (performance hint, threads, precision:
    `bench.rerank_knobs` compares them)."""
    import openvino as ov

    compiled = ov.Core().compile_model(str(path), "CPU", config)
    wanted = [port.get_any_name() for port in compiled.inputs]

    def run(features: dict[str, np.ndarray]) -> np.ndarray:
        request = compiled.create_infer_request()  # one per call: an infer request is not thread-safe
        request.infer({n: features[n] for n in wanted})
        return np.array(request.get_output_tensor(0).data, copy=True)

    return run


def features(model: Any, inputs: Sequence[Any]) -> dict[str, np.ndarray]:
    """The model's own tokenisation of `inputs` (texts or pairs) as int64 arrays."""
    prepared = model.preprocess(list(inputs))
    return {n: prepared[n].numpy().astype(np.int64) for n in INPUTS if n in prepared}


def run_batched(model: Any, run: Runner, inputs: Sequence[Any], batch_size: int) -> np.ndarray:
    """`run` over `inputs` in batches of similar length (less padding), rows back in input order."""
    order = np.argsort([-_length(item) for item in inputs], kind="stable")
    parts = []
    for start in range(0, len(order), batch_size):
        chunk = [inputs[i] for i in order[start : start + batch_size]]
        parts.append(np.asarray(run(features(model, chunk)), dtype=np.float32))
    stacked = np.concatenate(parts)
    out = np.empty_like(stacked)
    out[order] = stacked
    return out


def _length(item: Any) -> int:
    return sum(len(part) for part in item) if isinstance(item, list | tuple) else len(item)


def _traceable(model: Any, key: str, names: list[str]) -> Any:
    """The pipeline as a module of positional token tensors to its `key` output: what `torch.onnx` traces."""
    import torch

    class Forward(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: Any) -> Any:
            return self.model({**dict(zip(names, tensors, strict=True)), "modality": "text"})[key]

    return Forward().eval()
