"""The text encoder per CPU inference backend (torch fp32, ONNX Runtime fp32 / int8, OpenVINO), side by side
in one run and without services: passages/s for ingest batches, single-query latency, agreement with torch
fp32, and dense-retrieval nDCG@10 of held-back SciFact queries over a small corpus.

    python -m bench.encoders --dataset DIR [--queries 50] [--docs 200]     # -> data/bench/encoders.json

The corpus is every document judged relevant to the held-back queries (the 20 % `mmsearch train` keeps
out, seed 13) plus the first documents of the corpus up to `--docs`. Backends take turns batch by batch and
query by query, so a neighbour's load on a shared machine falls on all of them alike.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from bench.common import Report, save, show
from core.config import Settings, get_settings
from encoders.runtime import BACKENDS
from encoders.text import TextEncoder
from evaluation.runs import ranked_run, scores
from evaluation.training import split_queries
from ingest.beir import find, iter_corpus, load_qrels, load_queries


@dataclass
class Subset:
    """Held-back judged queries and a small corpus holding their relevant documents."""

    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    doc_ids: list[str]
    texts: list[str]


def subset(dataset: Path, n_queries: int, n_docs: int) -> Subset:
    """The first `n_queries` held-back queries of the training judgments (`qrels-train.tsv`) and `n_docs`
    documents, their relevant ones among them."""
    qrels = load_qrels(dataset / "qrels-train.tsv")
    queries = load_queries(find(dataset, "queries"))
    _, held = split_queries(qrels, queries, 0.2)
    chosen = held[:n_queries]
    relevant = {d for q in chosen for d, rel in qrels[q].items() if rel > 0}
    docs: dict[str, str] = {}
    for doc in iter_corpus(find(dataset, "corpus")):
        if doc["id"] in relevant or len(docs) < n_docs - len(relevant):
            docs[doc["id"]] = f"{doc['title'] or ''}. {doc['text']}"
        if len(docs) >= n_docs and relevant <= docs.keys():
            break
    return Subset(
        {q: queries[q] for q in chosen}, {q: qrels[q] for q in chosen}, list(docs), list(docs.values())
    )


def dense_ndcg(data: Subset, doc_vectors: np.ndarray, query_vectors: np.ndarray, depth: int = 10) -> float:
    """nDCG@10 of ranking the subset's documents by cosine to each query."""
    run = {}
    for qid, vector in zip(data.queries, query_vectors, strict=True):
        top = np.argsort(-(doc_vectors @ vector))[:depth]
        run[qid] = ranked_run(data.doc_ids[i] for i in top)
    return scores(data.qrels, run, ["ndcg@10"])["ndcg@10"]


def encoders(settings: Settings, backends: list[str]) -> dict[str, TextEncoder]:
    """One loaded text encoder per backend (exports happen here, outside every timing)."""
    out = {}
    for backend in backends:
        encoder = TextEncoder(settings=settings.replace(models={"text_backend": backend, "device": "cpu"}))
        encoder.encode(["warm up"])
        out[backend] = encoder
    return out


def run(
    dataset: Path,
    n_queries: int = 50,
    n_docs: int = 200,
    *,
    backends: list[str] | None = None,
    batch: int = 32,
) -> Report:
    data = subset(dataset, n_queries, n_docs)
    settings = get_settings().replace(models={"encode_batch_size": batch})
    loaded = encoders(settings, backends or list(BACKENDS))
    doc_vecs: dict[str, list[np.ndarray]] = {b: [] for b in loaded}
    doc_s = dict.fromkeys(loaded, 0.0)
    for start in range(0, len(data.texts), batch):
        for backend, encoder in loaded.items():  # turn by turn: load from neighbours hits all alike
            began = time.perf_counter()
            doc_vecs[backend].append(encoder.encode(data.texts[start : start + batch]))
            doc_s[backend] += time.perf_counter() - began
    query_vecs: dict[str, list[np.ndarray]] = {b: [] for b in loaded}
    query_ms: dict[str, list[float]] = {b: [] for b in loaded}
    for text in data.queries.values():
        for backend, encoder in loaded.items():
            began = time.perf_counter()
            query_vecs[backend].append(encoder.encode([text])[0])
            query_ms[backend].append((time.perf_counter() - began) * 1000)
    rows = [
        _row(
            backend,
            data=data,
            docs=np.concatenate(doc_vecs[backend]),
            queries=np.stack(query_vecs[backend]),
            reference=(np.concatenate(doc_vecs["torch"]) if "torch" in loaded else None),
            seconds=doc_s[backend],
            latency=query_ms[backend],
        )
        for backend in loaded
    ]
    return _report(rows, data, batch)


def _row(
    backend: str,
    *,
    data: Subset,
    docs: np.ndarray,
    queries: np.ndarray,
    reference: np.ndarray | None,
    seconds: float,
    latency: list[float],
) -> dict[str, Any]:
    cosines = (docs * reference).sum(axis=1) if reference is not None else np.ones(len(docs))
    return {
        "backend": backend,
        "passages/s": round(len(docs) / seconds, 1),
        "query p50 ms": round(float(np.percentile(latency, 50)), 1),
        "query p95 ms": round(float(np.percentile(latency, 95)), 1),
        "min cos vs fp32": round(float(cosines.min()), 4),
        "mean cos vs fp32": round(float(cosines.mean()), 5),
        "nDCG@10": round(dense_ndcg(data, docs, queries), 4),
    }


def _report(rows: list[dict[str, Any]], data: Subset, batch: int) -> Report:
    base = next((r for r in rows if r["backend"] == "torch"), rows[0])
    for row in rows:
        row["ingest x torch"] = round(row["passages/s"] / base["passages/s"], 2)
        row["query x torch"] = round(base["query p50 ms"] / row["query p50 ms"], 2)
    return Report(
        "encoders",
        f"text encoder per backend: {len(data.texts)} SciFact abstracts (batches of {batch}), "
        f"{len(data.queries)} held-back queries one at a time",
        rows,
        [
            "cos vs fp32: each abstract's vector against torch fp32's (the quality guard: >= 0.99);",
            "nDCG@10: dense retrieval of the held-back queries over these abstracts only (not the corpus);",
            "backends take turns per batch / per query in one process: the ratios are what compares.",
        ],
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True, help="BEIR SciFact directory")
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--docs", type=int, default=200)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--batch", type=int, default=32, help="passages per encode call")
    args = parser.parse_args(argv)
    report = run(args.dataset, args.queries, args.docs, backends=args.backends.split(","), batch=args.batch)
    console = Console()
    show(report, console)
    console.print(f"wrote {save(report)}")


if __name__ == "__main__":
    main()
