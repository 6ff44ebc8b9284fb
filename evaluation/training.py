"""The fine-tuning recipe: training examples from a collection's judgments, hard negatives from its own
lexical ranking (through the API), the training loop of `encoders.training`, and the saved model card."""

from __future__ import annotations

import json
import random
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from client.api import ApiClient
from core.config import Settings
from encoders.text import resolve_model_path
from encoders.training import (
    CARD,
    LOSS,
    Example,
    TrainConfig,
    model_ref,
    model_roots,
    train,
    version_name,
)
from ingest.beir import find, iter_corpus, load_qrels, load_queries
from ingest.lifecycle import encoder_text


def judged_pairs(
    queries: dict[str, str], qrels: dict[str, dict[str, int]], max_pairs: int | None, seed: int
) -> list[tuple[str, str]]:
    """(query id, doc id) of every positive judgment, shuffled, at most `max_pairs`."""
    pairs = [
        (qid, did) for qid, docs in qrels.items() if qid in queries for did, rel in docs.items() if rel > 0
    ]
    random.Random(seed).shuffle(pairs)
    return pairs[:max_pairs] if max_pairs else pairs


def corpus_passages(dataset_dir: Path, ids: set[str]) -> dict[str, str]:
    return {
        doc["id"]: encoder_text({"title": doc["title"], "content": doc["text"]})
        for doc in iter_corpus(find(dataset_dir, "corpus"))
        if doc["id"] in ids
    }


def mine_negatives(client: ApiClient, collection: str, query: str, judged: set[str], count: int) -> list[str]:
    """The top BM25 hits of the collection that are not judged relevant."""
    size = min(100, count + len(judged) + 5)
    hits = client.search(collection, query, mode="lexical", size=size)["hits"]
    texts = [encoder_text(h["source"]) for h in hits if h["id"] not in judged]
    return texts[:count]


def build_examples(
    client: ApiClient,
    collection: str,
    dataset_dir: Path,
    qrels_path: Path,
    config: TrainConfig,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[Example], dict[str, int]]:
    """Training examples plus counts; pairs whose passage is missing or that lack negatives are dropped."""
    queries = load_queries(find(dataset_dir, "queries"))
    qrels = load_qrels(qrels_path)
    pairs = judged_pairs(queries, qrels, config.max_pairs, config.seed)
    passages = corpus_passages(dataset_dir, {did for _, did in pairs})
    negatives: dict[str, list[str]] = {}
    examples = []
    for done, (qid, did) in enumerate(pairs, start=1):
        if progress:
            progress(done, len(pairs))
        if did not in passages:
            continue
        if config.hard_negatives and qid not in negatives:
            judged = {d for d, rel in qrels[qid].items() if rel > 0}
            negatives[qid] = mine_negatives(client, collection, queries[qid], judged, config.hard_negatives)
        found = negatives.get(qid, [])
        if len(found) >= config.hard_negatives:
            examples.append(Example(queries[qid], passages[did], found))
    counts = {"pairs": len(examples), "queries": len({e.query for e in examples}), "judged": len(pairs)}
    return examples, counts


def fine_tune(
    client: ApiClient,
    settings: Settings,
    collection: str,
    dataset_dir: Path,
    qrels_path: Path,
    config: TrainConfig,
    version: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[str, dict[str, Any]]:
    """Train from the collection's current text model; returns (model ref for a collection, card).

    The model is written to a scratch directory and renamed into place, so a half-written model never
    appears under its name.
    """
    encoders = client.collection(collection)["encoders"]
    if "text" not in encoders:
        raise ValueError(f"collection {collection!r} has no text encoder to fine-tune")
    base_ref = encoders["text"]["model"]
    now = datetime.now(UTC)
    version = version or version_name(base_ref, collection, now)
    target = model_roots(settings)[0] / version
    if target.exists():
        raise ValueError(f"{target} exists; choose another --name")
    examples, counts = build_examples(client, collection, dataset_dir, qrels_path, config, progress)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=target.parent))
    try:
        run = train(resolve_model_path(base_ref, settings.models_dir), examples, scratch, settings, config)
        card = {
            "version": version,
            "base_model": base_ref,
            "collection": collection,
            "dataset": str(dataset_dir),
            "qrels": str(qrels_path),
            **counts,
            "loss": LOSS,
            **asdict(config),
            **run,
            "created_at": now.isoformat(timespec="seconds"),
        }
        (scratch / CARD).write_text(json.dumps(card, indent=2) + "\n")
        scratch.rename(target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return model_ref(settings, target), card
