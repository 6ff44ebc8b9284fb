"""Retrieval quality on BEIR-format judgments, measured through the real HTTP API.

Every query goes through `ApiClient.search`, so what is measured is what users get (profile merge, query
encoding, fusion). Metrics come from ranx rather than hand-written formulas.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ranx import Qrels, Run, evaluate

from client.api import ApiClient
from core.errors import MmsearchError
from ingest.beir import iter_corpus

# ranx name -> label. ranx's f1@k is the per-query harmonic mean of P@k and Recall@k, averaged.
METRICS: dict[str, str] = {
    "ndcg@10": "nDCG@10",
    "mrr@10": "MRR@10",
    "map@100": "MAP@100",
    "recall@10": "Recall@10",
    "recall@100": "Recall@100",
    "precision@10": "P@10",
    "f1@10": "F1@10",
}
# Of the returned set (after the relevance cut-off), not of a ranking: what a person gets, whatever its size.
SET_METRICS: dict[str, str] = {"set_precision": "P(set)", "set_recall": "R(set)", "set_f1": "F1(set)"}

# Evaluation mode -> search parameters. `hybrid` fuses as the profile in effect says; the other two
# force a fusion method with its defaults (RRF k=60; linear min-max, equal weights).
MODES: dict[str, dict[str, Any]] = {
    "lexical": {"mode": "lexical"},
    "vector": {"mode": "vector"},
    "hybrid": {"mode": "hybrid"},
    "hybrid-rrf": {"mode": "hybrid", "fusion": {"method": "rrf"}},
    "hybrid-linear": {"mode": "hybrid", "fusion": {"method": "linear"}},
}
DEFAULT_MODES = ("lexical", "vector", "hybrid-rrf", "hybrid-linear")

Judgments = dict[str, dict[str, int]]
RunDict = dict[str, dict[str, float]]


class EvaluationError(MmsearchError):
    """The dataset and the collection do not fit together."""


@dataclass
class ModeResult:
    run: RunDict
    latencies_ms: list[float] = field(default_factory=list)
    server_ms: list[float] = field(default_factory=list)
    wall_s: float = 0.0


def judged_queries(queries: dict[str, str], qrels: Judgments) -> dict[str, str]:
    """The queries the judgments decide on (a judged query without text cannot be run)."""
    missing = sorted(set(qrels) - set(queries))
    if missing:
        raise EvaluationError(f"{len(missing)} judged queries have no text, e.g. {missing[:3]}")
    return {qid: queries[qid] for qid in qrels}


def ranked_run(ids: Iterable[str]) -> dict[str, float]:
    """Scores from ranks, so ranx sees exactly the API's order (fused scores may tie)."""
    ids = list(ids)
    return {doc_id: float(len(ids) - i) for i, doc_id in enumerate(ids)}


def scores(qrels: Judgments, run: RunDict, metrics: Iterable[str] = METRICS) -> dict[str, float]:
    """Mean of each metric over every judged query; a query with no results scores 0."""
    names = list(metrics)
    means = evaluate(Qrels.from_dict(qrels), _run(run), names, make_comparable=True)
    return {m: float(v) for m, v in (means if len(names) > 1 else {names[0]: means}).items()}


def set_scores(qrels: Judgments, run: RunDict) -> dict[str, float]:
    """Precision, recall and F1 of each judged query's returned set, averaged; an empty set scores 0."""
    totals = dict.fromkeys(SET_METRICS, 0.0)
    for qid, judged in qrels.items():
        relevant = {doc for doc, grade in judged.items() if grade > 0}
        returned = set(run.get(qid, {}))
        found = len(relevant & returned)
        if not found:
            continue
        precision, recall = found / len(returned), found / len(relevant)
        totals["set_precision"] += precision
        totals["set_recall"] += recall
        totals["set_f1"] += 2 * precision * recall / (precision + recall)
    return {name: value / max(len(qrels), 1) for name, value in totals.items()}


def per_query(qrels: Judgments, run: RunDict, metric: str) -> dict[str, float]:
    """One metric for each judged query (what cross-validation folds average)."""
    ranx_run = _run(run)
    evaluate(Qrels.from_dict(qrels), ranx_run, metric, make_comparable=True)
    return {qid: float(value) for qid, value in ranx_run.scores[metric].items()}


def _run(run: RunDict) -> Run:
    """ranx cannot hold an empty ranking: leave such queries out, `make_comparable` scores them 0."""
    rankings = {qid: ranking for qid, ranking in run.items() if ranking}
    return Run.from_dict(rankings) if rankings else Run()


def count_corpus(corpus: Path) -> int:
    return sum(1 for _ in iter_corpus(corpus))


def ensure_collection(client: ApiClient, name: str, corpus: Path, chunk_size: int = 500) -> bool:
    """Reuse a collection that holds as many documents as the corpus; otherwise load the corpus through
    the ingest API (ids make re-adding idempotent). Returns whether it was reused."""
    expected = count_corpus(corpus)
    if client.collection_exists(name):
        total = client.collection(name)["documents"].get("total", 0)
        if total == expected:
            return True
        if total > expected:
            raise EvaluationError(
                f"collection {name!r} holds {total} documents but the corpus {expected}; pick another name"
            )
    else:
        client.create_collection(name)
    totals = client.add_documents(name, iter_corpus(corpus), chunk_size=chunk_size)
    if totals["errors"]:
        raise EvaluationError(f"{len(totals['errors'])} documents rejected, first: {totals['errors'][0]}")
    wait_indexed(client, name, expected)
    return False


def wait_indexed(client: ApiClient, name: str, expected: int, timeout: float = 120.0) -> None:
    """Until every added document is visible (refresh), so `wait_encoded` cannot end early."""
    deadline = time.monotonic() + timeout
    while client.collection(name)["documents"].get("total", 0) < expected:
        if time.monotonic() > deadline:
            raise TimeoutError(f"fewer than {expected} documents visible in {name!r} after {timeout:.0f} s")
        time.sleep(0.5)


def run_queries(
    client: ApiClient,
    collection: str,
    queries: dict[str, str],
    params: dict[str, Any],
    *,
    threads: int = 4,
    progress: Callable[[], None] | None = None,
) -> tuple[dict[str, dict[str, Any]], float]:
    """Every query through the search API on a thread pool: (query id -> response, wall seconds)."""

    def one(item: tuple[str, str]) -> tuple[str, dict[str, Any]]:
        qid, text = item
        started = time.perf_counter()
        response = client.search(collection, text, **params)
        response["client_ms"] = (time.perf_counter() - started) * 1000
        if progress:
            progress()
        return qid, response

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        responses = dict(pool.map(one, queries.items()))
    return responses, time.perf_counter() - started


def mode_result(responses: dict[str, dict[str, Any]], wall_s: float) -> ModeResult:
    """What `run_queries` returned, as a ranked run and latencies."""
    return ModeResult(
        run={qid: ranked_run(h["id"] for h in resp["hits"]) for qid, resp in responses.items()},
        latencies_ms=[resp["client_ms"] for resp in responses.values()],
        server_ms=[resp["took_ms"] for resp in responses.values()],
        wall_s=wall_s,
    )


def latency_summary(latencies_ms: list[float], server_ms: list[float], wall_s: float) -> dict[str, float]:
    values = np.asarray(latencies_ms)
    return {
        "mean": round(float(values.mean()), 2),
        "p50": round(float(np.percentile(values, 50)), 2),
        "p95": round(float(np.percentile(values, 95)), 2),
        "p99": round(float(np.percentile(values, 99)), 2),
        "server_mean": round(float(np.mean(server_ms)), 2) if server_ms else 0.0,
        "qps": round(len(values) / wall_s, 2) if wall_s else 0.0,
    }


def plot(results: dict[str, dict[str, float]], title: str, out: Path) -> None:
    """Grouped bars: one group per metric, one bar per mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = list(METRICS)
    width = 0.8 / max(len(results), 1)
    fig, ax = plt.subplots(figsize=(11, 4.5))
    for i, (mode, values) in enumerate(results.items()):
        xs = [m + i * width for m in range(len(metrics))]
        ax.bar(xs, [values[m] for m in metrics], width, label=mode)
    ax.set_xticks([m + width * (len(results) - 1) / 2 for m in range(len(metrics))])
    ax.set_xticklabels([METRICS[m] for m in metrics])
    ax.set_ylim(0, 1.15)  # room for the legend above the bars
    ax.set_title(title)
    ax.legend(loc="upper center", ncols=len(results), fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
