"""Cost of the reranking stage per query: hybrid search through the API without it and with a cross-encoder
over the top 20 / 50 / 100 fused hits, one client at a time (the stage's own time is reported by the API).

`backends` needs no services: the cross-encoder per CPU inference backend over the top 20 / 50 of a dense
ranking of held-back SciFact queries (the small corpus of `bench.encoders`), taking turns query by query;
p50/p95 of the stage and nDCG@10 of the reranked list per backend.

Latency depends on the architecture, not on the weights: without `--model` the bench scores with a
MiniLM-L6 cross-encoder initialised from the shipped all-MiniLM-L6-v2 (the model `mmsearch rerank`
starts from), saved once under the models root.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import Report, query_texts
from bench.encoders import Subset, subset
from client.api import ApiClient
from core.config import get_settings
from encoders.device import pick_device
from encoders.rerank import MAX_LENGTH, Reranker
from encoders.runtime import BACKENDS
from encoders.text import TextEncoder, resolve_model_path
from encoders.training import model_ref, model_roots
from evaluation.runs import ranked_run, scores
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
                # no cutoff: the window is the fused list's top k, not what is left of a list cut short
                resp = client.search(collection, text, profile=PROFILE, cutoff=False, **params)
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


def backends(
    dataset: Path,
    n_queries: int = 20,
    n_docs: int = 200,
    *,
    model: str | None = None,
    names: list[str] | None = None,
    depths: tuple[int, ...] = TOP_KS[:2],
) -> Report:
    """The reranking stage per backend at each depth: p50/p95 ms and nDCG@10 (no services)."""
    model = model or untrained_model()
    settings = get_settings()
    data = subset(dataset, n_queries, n_docs)
    windows = dense_windows(data, max(depths))
    rerankers = {}
    for name in names or list(BACKENDS):
        rerankers[name] = Reranker(model, settings.replace(models={"rerank_backend": name, "device": "cpu"}))
        rerankers[name].score("warm up", ["the model loads and exports here, outside the timings"])
    baseline = scores(data.qrels, {q: ranked_run(w) for q, w in windows.items()}, ["ndcg@10"])["ndcg@10"]
    rows = [_backend_row("(no reranking)", 0, [0.0], baseline)]
    for top_k in depths:
        ms: dict[str, list[float]] = {name: [] for name in rerankers}
        runs: dict[str, dict[str, dict[str, float]]] = {name: {} for name in rerankers}
        for qid, window in windows.items():
            passages = [data.texts[data.doc_ids.index(d)] for d in window[:top_k]]
            for name, reranker in rerankers.items():  # turn by turn, so a neighbour's load hits all alike
                began = time.perf_counter()
                order = np.argsort(-np.asarray(reranker.score(data.queries[qid], passages)), kind="stable")
                ms[name].append((time.perf_counter() - began) * 1000)
                runs[name][qid] = ranked_run([window[i] for i in order] + window[top_k:])
        for name in rerankers:
            ndcg = scores(data.qrels, runs[name], ["ndcg@10"])["ndcg@10"]
            rows.append(_backend_row(name, top_k, ms[name], ndcg))
    return _backends_report(rows, data, model)


def dense_windows(data: Subset, depth: int) -> dict[str, list[str]]:
    """Each query's top `depth` documents by the text encoder (the setting's backend): the candidates."""
    encoder = TextEncoder()
    docs = encoder.encode(data.texts)
    queries = encoder.encode(list(data.queries.values()))
    return {
        qid: [data.doc_ids[i] for i in np.argsort(-(docs @ vector))[:depth]]
        for qid, vector in zip(data.queries, queries, strict=True)
    }


def _backend_row(name: str, top_k: int, ms: list[float], ndcg: float) -> dict[str, Any]:
    return {
        "backend": name,
        "top_k": top_k,
        "stage p50 ms": round(float(np.percentile(ms, 50)), 1),
        "stage p95 ms": round(float(np.percentile(ms, 95)), 1),
        "nDCG@10": round(ndcg, 4),
    }


def _backends_report(rows: list[dict[str, Any]], data: Subset, model: str) -> Report:
    torch_rows = {r["top_k"]: r for r in rows if r["backend"] == "torch"}
    for row in rows:
        base = torch_rows.get(row["top_k"])
        same = base and row["top_k"]
        row["x torch (p50)"] = round(base["stage p50 ms"] / row["stage p50 ms"], 2) if same else "-"
        row["nDCG - torch"] = round(row["nDCG@10"] - base["nDCG@10"], 4) if same else "-"
    return Report(
        "rerank-backends",
        f"cross-encoder per backend: {len(data.queries)} held-back SciFact queries, a dense ranking of "
        f"{len(data.texts)} abstracts, one query at a time",
        rows,
        [
            f"model {model} ({MAX_LENGTH} tokens per pair); stage = scoring the window (texts in memory);",
            "reranked: the window in cross-encoder order (weight 1), then the rest of the dense ranking;",
            "backends take turns query by query in one process: the ratios are what compares.",
        ],
    )
