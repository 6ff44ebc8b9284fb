"""Cost of the reranking stage per query: hybrid search through the API without it and with a cross-encoder
over the top 20 / 50 / 100 fused hits, one client at a time (the stage's own time is reported by the API).

Latency depends on the architecture, not on the weights: without `--model` the bench scores with a
MiniLM-L6 cross-encoder initialised from the shipped all-MiniLM-L6-v2 (the model `mmsearch rerank`
starts from), saved once under the models root.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench.common import Report, query_texts
from client.api import ApiClient
from core.config import get_settings
from encoders.device import pick_device
from encoders.rerank import MAX_LENGTH
from encoders.text import resolve_model_path
from encoders.training import model_ref, model_roots
from search.schema import Profile, Rerank

TOP_KS = (20, 50, 100)
PROFILE = "bench-rerank"


def untrained_model() -> str:
    """A cross-encoder of the reranker's architecture, saved once (its weights do not change its speed)."""
    from sentence_transformers import CrossEncoder

    settings = get_settings()
    target = model_roots(settings)[0] / "rerank-bench-minilm-l6"
    if not target.exists():
        CrossEncoder(resolve_model_path("all-MiniLM-L6-v2", settings.models.models_dir), num_labels=1).save(
            str(target)
        )
    return model_ref(settings, target)


def run(
    client: ApiClient, collection: str, dataset: Path, n: int = 50, *, model: str | None = None
) -> Report:
    model = model or untrained_model()
    texts = query_texts(dataset, n)
    path = f"/v1/collections/{collection}/profiles/{PROFILE}"
    rows: list[dict[str, Any]] = []
    client.request("PUT", path, json=Profile(rerank=Rerank(model=model)).model_dump(mode="json"))
    try:
        client.search(collection, texts[0], profile=PROFILE, rerank={"top_k": 5})  # loads the model
        for top_k in (0, *TOP_KS):
            took, stage = [], []
            for text in texts:
                params = {"rerank": {"top_k": top_k}} if top_k else {"rerank": False}
                resp = client.search(collection, text, profile=PROFILE, **params)
                took.append(resp["took_ms"])
                stage.append(resp["rerank"]["ms"] if resp.get("rerank") else 0.0)
            rows.append(_row(top_k, took, stage, rows[0]["server p50 ms"] if rows else None))
    finally:
        client.request("DELETE", path)
    return Report(
        "rerank",
        f"reranking cost on {collection!r}: {len(texts)} SciFact queries, hybrid, size 10, one client",
        rows,
        [
            f"model {model} (MiniLM-L6 cross-encoder, {MAX_LENGTH} tokens per pair), device "
            f"{pick_device(get_settings().models.device)}",
            "server ms = the API's took_ms (encoding, _msearch, fusion, rerank, page fetch);",
            "stage ms = the reranking stage alone (fetching the window's texts + the cross-encoder);",
            "Elasticsearch, the API and this client share the machine's CPUs.",
        ],
    )


def _row(top_k: int, took: list[float], stage: list[float], base_p50: float | None) -> dict[str, Any]:
    p50 = float(np.percentile(took, 50))
    return {
        "rerank top_k": top_k or "off",
        "server p50 ms": round(p50, 1),
        "server p95 ms": round(float(np.percentile(took, 95)), 1),
        "stage mean ms": round(float(np.mean(stage)), 1),
        "stage p95 ms": round(float(np.percentile(stage, 95)), 1),
        "vs off (p50)": round(p50 / base_p50, 2) if base_p50 else 1.0,
    }
