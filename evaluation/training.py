"""The fine-tuning recipe: the judgments split by query (a held-back share never trained on), training
examples from the rest with hard negatives from the collection's own ranking (through the API), the
training loop of `encoders.training` early-stopped on the held-back queries, and the saved model card,
which records the split so `tune` and `eval` can stay on queries the model has not seen."""

from __future__ import annotations

import json
import random
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from client.api import ApiClient
from core.config import Settings
from encoders.text import resolve_model_path
from encoders.training import (
    CARD,
    LOSS,
    EvalSet,
    Example,
    TrainConfig,
    model_ref,
    model_roots,
    train,
    version_name,
)
from ingest.beir import find, iter_corpus, load_qrels, load_queries
from ingest.lifecycle import encoder_text


def split_queries(
    qrels: dict[str, dict[str, int]], queries: dict[str, str], holdout: float, seed: int = 13
) -> tuple[list[str], list[str]]:
    """(fit, held) query ids: the judged queries shuffled with `seed`, the last `holdout` share held."""
    if not 0 <= holdout < 1:
        raise ValueError(f"holdout must be in [0, 1), got {holdout}")
    qids = sorted(q for q in qrels if q in queries)
    random.Random(seed).shuffle(qids)
    cut = round(len(qids) * (1 - holdout))
    return qids[:cut], qids[cut:]


def model_card(client: ApiClient, settings: Settings, collection: str) -> dict[str, Any] | None:
    """The card `mmsearch train` saved beside the collection's text model (None for a stock model)."""
    ref = client.collection(collection)["encoders"].get("text", {}).get("model")
    path = Path(resolve_model_path(ref, settings.models.models_dir)) / CARD if ref else None
    return json.loads(path.read_text()) if path and path.is_file() else None


def held_queries(card: dict[str, Any] | None, qrels_path: Path) -> list[str] | None:
    """The queries a model's training held back from these judgments (None: not trained on them)."""
    split = (card or {}).get("split")
    if not split or Path(split["qrels"]).resolve() != qrels_path.resolve():
        return None
    return list(split["held"])


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


def ranked_ids(client: ApiClient, collection: str, query: str, mode: str, *, size: int) -> list[str]:
    """What the product ranks for the query, uncut: `hybrid` is the fused ranking of the profile."""
    return [
        h["id"]
        for h in client.search(collection, query, mode=mode, size=min(size, 100), cutoff=False)["hits"]
    ]


def mine_negatives(
    client: ApiClient, collection: str, query: str, judged: set[str], *, count: int, source: str = "lexical"
) -> list[str]:
    """The collection's top hits for the query (`source`: lexical or hybrid) not judged relevant."""
    ids = ranked_ids(client, collection, query, source, size=count + len(judged) + 5)
    return [doc for doc in ids if doc not in judged][:count]


def held_eval_set(
    client: ApiClient,
    collection: str,
    dataset_dir: Path,
    queries: dict[str, str],
    *,
    qrels: dict[str, dict[str, int]],
    pool: int = 20,
) -> EvalSet:
    """Held-back queries and a pool to rank: each one's judged passages and the product's top `pool` hits
    (so the score says how well the model orders what search actually retrieves; cheap to re-encode)."""
    relevant = {qid: {d for d, rel in qrels[qid].items() if rel > 0} for qid in queries}
    ids = set().union(*relevant.values()) if relevant else set()
    for text in queries.values():
        ids.update(ranked_ids(client, collection, text, "hybrid", size=pool))
    return EvalSet(queries, corpus_passages(dataset_dir, ids), relevant)


def build_examples(
    client: ApiClient,
    collection: str,
    dataset_dir: Path,
    queries: dict[str, str],
    *,
    qrels: dict[str, dict[str, int]],
    config: TrainConfig,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[Example], dict[str, int]]:
    """Training examples plus counts; pairs whose passage is missing or that lack negatives are dropped."""
    pairs = judged_pairs(queries, qrels, config.max_pairs, config.seed)
    negatives: dict[str, list[str]] = {}
    for qid in {qid for qid, _ in pairs} if config.hard_negatives else ():
        judged = {d for d, rel in qrels[qid].items() if rel > 0}
        negatives[qid] = mine_negatives(
            client,
            collection,
            queries[qid],
            judged,
            count=config.hard_negatives,
            source=config.negatives_from,
        )
        if progress:
            progress(len(negatives), len({q for q, _ in pairs}))
    passages = corpus_passages(
        dataset_dir, {did for _, did in pairs} | {d for found in negatives.values() for d in found}
    )
    examples = []
    for qid, did in pairs:
        found = [passages[d] for d in negatives.get(qid, []) if d in passages]
        if did in passages and len(found) >= config.hard_negatives:
            examples.append(Example(queries[qid], passages[did], found[: config.hard_negatives]))
    counts = {"pairs": len(examples), "queries": len({e.query for e in examples}), "judged": len(pairs)}
    return examples, counts


def fine_tune(
    client: ApiClient,
    settings: Settings,
    collection: str,
    dataset_dir: Path,
    *,
    qrels_path: Path,
    config: TrainConfig,
    version: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[str, dict[str, Any]]:
    """Train from the collection's current text model; returns (model ref for a collection, card).

    The model is written to a scratch directory and renamed into place, so a half-written model never
    appears under its name.
    """
    base_ref = text_model_ref(client, collection)
    now = datetime.now(UTC)
    version = version or version_name(base_ref, collection, now)
    target = model_roots(settings)[0] / version
    if target.exists():
        raise ValueError(f"{target} exists; choose another --name")
    data = training_data(client, collection, dataset_dir, qrels_path, config=config, progress=progress)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=target.parent))
    try:
        base_path = resolve_model_path(base_ref, settings.models.models_dir)
        run = train(base_path, data.examples, scratch, settings, config=config, held=data.held_set)
        card = {
            "version": version,
            "base_model": base_ref,
            "collection": collection,
            "dataset": str(dataset_dir),
            "qrels": str(qrels_path),
            **data.counts,
            "loss": LOSS,
            **asdict(config),
            **run,
            "split": split_record(qrels_path, config, data.fit, data.held),
            "created_at": now.isoformat(timespec="seconds"),
        }
        (scratch / CARD).write_text(json.dumps(card, indent=2) + "\n")
        scratch.rename(target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return model_ref(settings, target), card


@dataclass
class TrainingData:
    """What fine-tuning learns from and is checked on."""

    examples: list[Example]
    counts: dict[str, int]
    held_set: EvalSet | None  # the held-back queries' pool to rank, when some are held back
    fit: list[str]  # query ids trained on
    held: list[str]  # query ids held back


def training_data(
    client: ApiClient,
    collection: str,
    dataset_dir: Path,
    qrels_path: Path,
    *,
    config: TrainConfig,
    progress: Callable[[int, int], None] | None = None,
) -> TrainingData:
    """The judged queries split (seeded) into those trained on, turned into examples, and those held back,
    turned into an evaluation set."""
    queries = load_queries(find(dataset_dir, "queries"))
    qrels = load_qrels(qrels_path)
    fit, held = split_queries(qrels, queries, config.holdout, config.seed)
    examples, counts = build_examples(
        client,
        collection,
        dataset_dir,
        {q: queries[q] for q in fit},
        qrels=qrels,
        config=config,
        progress=progress,
    )
    held_set = (
        held_eval_set(client, collection, dataset_dir, {q: queries[q] for q in held}, qrels=qrels)
        if held
        else None
    )
    return TrainingData(examples, counts, held_set, fit, held)


def text_model_ref(client: ApiClient, collection: str) -> str:
    """The model the collection's text encoder runs now: the starting point of fine-tuning."""
    encoders = client.collection(collection)["encoders"]
    if "text" not in encoders:
        raise ValueError(f"collection {collection!r} has no text encoder to fine-tune")
    return str(encoders["text"]["model"])


def split_record(qrels_path: Path, config: TrainConfig, fit: list[str], held: list[str]) -> dict[str, Any]:
    """The card's record of the query split: `tune` and `eval` read it to stay on queries the model
    never saw."""
    return {
        "qrels": str(qrels_path.resolve()),
        "seed": config.seed,
        "holdout": config.holdout,
        "fit": len(fit),
        "held": held,
    }
