"""The reranking recipe: a cross-encoder fitted on the judged queries training may use, scored on the
held-back ones through the API with and without it, and made a profile's default only when it wins there.

Negatives are the product's own fused hits for each training query that are not judged relevant: the
passages a reranker has to push down in practice. The cross-encoder's weight against the fused score is
chosen on the held-back queries by k-fold cross-validation (weight 0, fusion alone, is one of the choices),
so the estimate printed beside the held-back figure is one the choice did not see.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from client.api import ApiClient
from core.config import Settings
from encoders.rerank import RerankGroup, train_reranker
from encoders.text import resolve_model_path
from encoders.training import CARD, model_ref, model_roots
from evaluation.runs import mode_result, per_query, ranked_run, run_queries, scores
from evaluation.training import corpus_passages, mine_negatives
from evaluation.tuning import cross_validate, fixed_folds, folds, summary
from search.fusion import blend
from search.schema import Profile, Rerank

CANDIDATE = "rerank-candidate"  # the prefix of the profiles a candidate is scored under, removed afterwards
WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)  # the cross-encoder's share; 0 = fusion alone
# The searches a depth's cost is read from go one at a time, as the budget means: with four clients on two
# cores each search also waited for the others' cross-encoders (top 20 read 636 ms added, alone 160 ms).
CLIENTS = 1


class Window(NamedTuple):
    """One reranked search read back: the window's (doc id, fused score, cross-encoder score) in fused
    order, and the ids the API lists after the window (fused order, not reranked)."""

    scored: list[tuple[str, float, float]]
    tail: list[str]


def examples(
    client: ApiClient,
    collection: str,
    dataset_dir: Path,
    queries: dict[str, str],
    *,
    qrels: dict[str, dict[str, int]],
    negatives: int,
) -> list[RerankGroup]:
    """Each judged passage with the query's `negatives` top fused hits not judged relevant."""
    relevant = {qid: {d for d, rel in qrels[qid].items() if rel > 0} for qid in queries}
    mined = {
        qid: mine_negatives(client, collection, text, relevant[qid], count=negatives, source="hybrid")
        for qid, text in queries.items()
    }
    wanted = set().union(*relevant.values(), *mined.values()) if queries else set()
    passages = corpus_passages(dataset_dir, wanted)
    out = []
    for qid, text in queries.items():
        negative_texts = [passages[d] for d in mined[qid] if d in passages]
        out += [RerankGroup(text, passages[d], negative_texts) for d in relevant[qid] if d in passages]
    return out


def fit(
    settings: Settings,
    base_ref: str,
    groups: list[RerankGroup],
    name: str,
    *,
    info: dict[str, Any],
    epochs: int,
) -> tuple[str, dict[str, Any]]:
    """Train into a scratch directory, write the card, rename into place; returns (model ref, card)."""
    target = model_roots(settings)[0] / name
    if target.exists():
        raise ValueError(f"{target} exists; choose another --name")
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        run = train_reranker(
            resolve_model_path(base_ref, settings.models.models_dir), groups, scratch, settings, epochs=epochs
        )
        card = {"version": name, "kind": "cross-encoder", "base_model": base_ref, **info, **run}
        card["created_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        (scratch / CARD).write_text(json.dumps(card, indent=2) + "\n")
        scratch.rename(target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return model_ref(settings, target), card


def held_ndcg(
    client: ApiClient,
    collection: str,
    queries: dict[str, str],
    qrels: dict[str, dict[str, int]],
    **params: Any,
) -> tuple[float, list[float]]:
    """nDCG@10 of hybrid search on the held-back queries, and each query's server time."""
    search = {"mode": "hybrid", "size": 10, "cutoff": False, **params}
    responses, wall = run_queries(client, collection, queries, search, threads=CLIENTS)
    result = mode_result(responses, wall)
    judged = {qid: qrels[qid] for qid in queries}
    return scores(judged, result.run, ["ndcg@10"])["ndcg@10"], result.server_ms


def compare(
    client: ApiClient,
    collection: str,
    queries: dict[str, str],
    qrels: dict[str, dict[str, int]],
    *,
    model: str,
    top_k: int,
    n_folds: int = 5,
) -> dict[str, Any]:
    """Held-back nDCG@10 under the collection's `default` profile without the reranker, and with it at the
    weight that scores best on those queries, with the k-fold estimate of choosing the weight that way."""
    profiles = client.profiles(collection)
    base = Profile.model_validate(profiles["default"]) if "default" in profiles else Profile()
    candidate = base.model_copy(update={"rerank": Rerank(model=model, top_k=top_k)})
    judged = {qid: qrels[qid] for qid in queries}
    with scoring_profile(client, collection, candidate) as name:
        without, without_ms = held_ndcg(client, collection, queries, qrels, profile=name, rerank=False)
        reranked, window_ms = windows(client, collection, queries, profile=name, top_k=top_k)
    matrix = weight_matrix(judged, reranked)
    splits = folds(len(judged), n_folds)
    _, per_fold = cross_validate(matrix, splits)
    best = int(np.argmax(matrix.mean(axis=1)))
    weight = WEIGHTS[best]
    with_, with_ms = without, window_ms  # at weight 0 the cost is the one the windows' searches paid
    if weight > 0:
        candidate.rerank = Rerank(model=model, top_k=top_k, weight=weight)
        with scoring_profile(client, collection, candidate) as name:
            with_, with_ms = held_ndcg(client, collection, queries, qrels, profile=name)
    return {
        "queries": len(queries),
        "top_k": top_k,
        "weight": weight,
        "without": round(without, 4),
        "with": round(with_, 4),
        "cv": summary(per_fold, matrix[best]),
        "cv_without": summary(fixed_folds(matrix[0], splits), matrix[0]),
        "by_weight": {w: round(float(row.mean()), 4) for w, row in zip(WEIGHTS, matrix, strict=True)},
        "server_ms_without": round(sum(without_ms) / len(without_ms), 1),
        "server_ms_with": round(sum(with_ms) / len(with_ms), 1),
        # what the stage adds to a search on this host, one client: the figure the budget is held to
        "added_p50_ms": round(float(np.percentile(with_ms, 50) - np.percentile(without_ms, 50)), 1),
        "profile": candidate,
    }


@contextmanager
def scoring_profile(client: ApiClient, collection: str, profile: Profile) -> Iterator[str]:
    """`profile` saved under a name of its own for the searches in the block, deleted afterwards. A new
    name each time, never a changed profile under an old one: each API process caches a collection's
    profiles for a few seconds and reads afresh only for a name it lacks, so the process answering the
    next search may not be the one that took the write."""
    name = f"{CANDIDATE}-{uuid.uuid4().hex[:12]}"
    path = f"/v1/collections/{collection}/profiles/{name}"
    client.request("PUT", path, json=profile.model_dump(mode="json"))
    try:
        yield name
    finally:
        client.request("DELETE", path)


def windows(
    client: ApiClient, collection: str, queries: dict[str, str], *, profile: str, top_k: int
) -> tuple[dict[str, Window], list[float]]:
    """One reranked search per query, read back from its explanation: each window hit's two scores, and
    each search's server time."""
    responses, _ = run_queries(
        client,
        collection,
        queries,
        {
            "mode": "hybrid",
            "size": min(max(top_k, 10), 100),
            "explain": True,
            "profile": profile,
            "cutoff": False,
        },
        threads=CLIENTS,
    )
    out = {}
    for qid, resp in responses.items():
        stage = [(h["explanation"]["rerank"], h["id"]) for h in resp["hits"] if "rerank" in h["explanation"]]
        stage.sort(key=lambda item: item[0]["fused_rank"])
        tail = [h["id"] for h in resp["hits"] if "rerank" not in h["explanation"]]
        out[qid] = Window([(doc_id, s["fused_score"], s["score"]) for s, doc_id in stage], tail)
    return out, [resp["took_ms"] for resp in responses.values()]


def choose_depth(
    client: ApiClient,
    collection: str,
    queries: dict[str, str],
    qrels: dict[str, dict[str, int]],
    *,
    model: str,
    depths: tuple[int, ...],
    budget_ms: float,
) -> dict[str, Any]:
    """`compare` at each depth; the result of the deepest one that beats fusion alone on the held-back
    queries and adds at most `budget_ms` (p50) to a search here, `adopted` False when none does (then the
    deepest one's result, to show what it would cost)."""
    results = [
        compare(client, collection, queries, qrels, model=model, top_k=depth) for depth in sorted(set(depths))
    ]
    fitting = [r for r in results if wins(r) and r["added_p50_ms"] <= budget_ms]
    chosen = fitting[-1] if fitting else results[-1]
    table = [
        {k: r[k] for k in ("top_k", "weight", "without", "with", "added_p50_ms")} | {"fits": r in fitting}
        for r in results
    ]
    return {**chosen, "adopted": bool(fitting), "budget_ms": budget_ms, "depths": table}


def wins(result: dict[str, Any]) -> bool:
    """The reranker at its chosen weight beats fusion alone on the held-back queries."""
    return result["weight"] > 0 and result["with"] > result["without"]


def weight_matrix(judged: dict[str, dict[str, int]], windows: dict[str, Window]) -> np.ndarray:
    """nDCG@10 per (weight, query) of each window reordered by `blend` and followed by the rest of the
    fused list, as the API answers (a window shorter than 10 leaves the tail in the judged top 10)."""
    rows = []
    for weight in WEIGHTS:
        run = {}
        for qid in judged:
            scored, tail = windows.get(qid, Window([], []))
            ranked = blend([f for _, f, _ in scored], [r for _, _, r in scored], weight)
            run[qid] = ranked_run([*(scored[i][0] for i, _ in ranked), *tail])
        values = per_query(judged, run, "ndcg@10")
        rows.append([values[qid] for qid in judged])
    return np.array(rows)
