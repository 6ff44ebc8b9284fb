"""The reranking recipe: a cross-encoder fitted on the judged queries training may use, scored on the
held-back ones through the API with and without it, and made a profile's default only when it wins there.

Negatives are the product's own fused hits for each training query that are not judged relevant: the
passages a reranker has to push down in practice.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from client.api import ApiClient
from core.config import Settings
from encoders.rerank import RerankExample, train_reranker
from encoders.text import resolve_model_path
from encoders.training import CARD, model_ref, model_roots
from evaluation.runs import mode_result, run_queries, scores
from evaluation.training import corpus_passages, mine_negatives
from search.schema import Profile, Rerank

CANDIDATE = "rerank-candidate"  # the profile a candidate is scored under, removed afterwards


def examples(
    client: ApiClient,
    collection: str,
    dataset_dir: Path,
    queries: dict[str, str],
    qrels: dict[str, dict[str, int]],
    negatives: int,
) -> list[RerankExample]:
    """Each judged passage (label 1) and `negatives` top fused hits not judged relevant (label 0)."""
    relevant = {qid: {d for d, rel in qrels[qid].items() if rel > 0} for qid in queries}
    mined = {
        qid: mine_negatives(client, collection, text, relevant[qid], negatives, source="hybrid")
        for qid, text in queries.items()
    }
    wanted = set().union(*relevant.values(), *mined.values()) if queries else set()
    passages = corpus_passages(dataset_dir, wanted)
    out = []
    for qid, text in queries.items():
        out += [RerankExample(text, passages[d], 1.0) for d in relevant[qid] if d in passages]
        out += [RerankExample(text, passages[d], 0.0) for d in mined[qid] if d in passages]
    return out


def fit(
    settings: Settings,
    base_ref: str,
    pairs: list[RerankExample],
    name: str,
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
            resolve_model_path(base_ref, settings.models_dir), pairs, scratch, settings, epochs
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
    responses, wall = run_queries(client, collection, queries, {"mode": "hybrid", "size": 10, **params})
    result = mode_result(responses, wall)
    judged = {qid: qrels[qid] for qid in queries}
    return scores(judged, result.run, ["ndcg@10"])["ndcg@10"], result.server_ms


def compare(
    client: ApiClient,
    collection: str,
    queries: dict[str, str],
    qrels: dict[str, dict[str, int]],
    model: str,
    top_k: int,
) -> dict[str, Any]:
    """Held-back nDCG@10 under the collection's `default` profile with and without the reranker."""
    profiles = client.profiles(collection)
    base = Profile.model_validate(profiles["default"]) if "default" in profiles else Profile()
    candidate = base.model_copy(update={"rerank": Rerank(model=model, top_k=top_k)})
    path = f"/v1/collections/{collection}/profiles"
    client.request("PUT", f"{path}/{CANDIDATE}", json=candidate.model_dump(mode="json"))
    try:
        without, without_ms = held_ndcg(client, collection, queries, qrels, profile=CANDIDATE, rerank=False)
        with_, with_ms = held_ndcg(client, collection, queries, qrels, profile=CANDIDATE)
    finally:
        client.request("DELETE", f"{path}/{CANDIDATE}")
    return {
        "queries": len(queries),
        "top_k": top_k,
        "without": round(without, 4),
        "with": round(with_, 4),
        "server_ms_without": round(sum(without_ms) / len(without_ms), 1),
        "server_ms_with": round(sum(with_ms) / len(with_ms), 1),
        "profile": candidate,
    }
