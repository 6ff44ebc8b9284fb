"""Which fine-tuning settings pay off: every config trains on the same share of the training judgments and
is scored on the held-out queries, vector-only and fused with the collection's BM25 ranking the way the
API fuses by default, side by side with the base model.

Vector rankings are exact (the corpus encoded in process, brute-force cosine), so the numbers measure the
model, not the index. Models are trained into a scratch directory and dropped afterwards; `mmsearch train`
makes the one to keep.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import Report
from client.api import ApiClient
from core.config import get_settings
from encoders import get_encoder
from encoders.device import pick_device
from encoders.text import resolve_model_path
from encoders.training import Example, TrainConfig, train
from evaluation.runs import Judgments, ranked_run, scores
from evaluation.training import split_queries
from evaluation.tuning import fused_top
from ingest.beir import find, iter_corpus, load_qrels, load_queries
from ingest.lifecycle import encoder_text
from search.fusion import Ranking
from search.schema import Fusion

WINDOW = 100  # ranking depth of each component, as the API's default rank window
METRIC = "ndcg@10"


def parse_configs(text: str) -> list[TrainConfig]:
    """`EPOCHS:LEARNING_RATE[:HARD_NEGATIVES[:lexical|hybrid]]`, comma-separated."""
    configs = []
    for spec in filter(None, (part.strip() for part in text.split(","))):
        epochs, rate, *rest = spec.split(":")
        source = rest[1] if len(rest) > 1 else TrainConfig.negatives_from
        if source not in ("lexical", "hybrid"):
            raise ValueError(f"negatives come from lexical or hybrid, not {source!r}")
        configs.append(
            TrainConfig(
                epochs=int(epochs),
                learning_rate=float(rate),
                hard_negatives=int(rest[0]) if rest else TrainConfig.hard_negatives,
                negatives_from=source,
            )
        )
    return configs


def mode_rankings(
    client: ApiClient, collection: str, queries: dict[str, str], mode: str
) -> dict[str, Ranking]:
    rankings = {}
    for qid, text in queries.items():
        hits = client.search(collection, text, mode=mode, size=WINDOW, cutoff=False)["hits"]
        rankings[qid] = [(hit["id"], hit["score"]) for hit in hits]
    return rankings


def examples_for(
    qids: list[str],
    queries: dict[str, str],
    qrels: Judgments,
    passages: dict[str, str],
    *,
    ranked: dict[str, Ranking],
    negatives: int,
) -> list[Example]:
    """(query, judged passage, top hits of `ranked` not judged relevant), as `mmsearch train` builds them."""
    examples = []
    for qid in qids:
        judged = {doc for doc, rel in qrels[qid].items() if rel > 0}
        hard = [passages[doc] for doc, _ in ranked[qid] if doc not in judged and doc in passages]
        examples += [
            Example(queries[qid], passages[doc], hard[:negatives]) for doc in judged if doc in passages
        ]
    return examples


def evaluate(
    model_path: str,
    doc_ids: list[str],
    texts: list[str],
    queries: dict[str, str],
    *,
    qrels: Judgments,
    lexical: dict[str, Ranking],
) -> dict[str, float]:
    """Held-out nDCG@10 of the model alone and fused with BM25, plus the corpus encoding time."""
    encoder = get_encoder("text", model_path)
    started = time.monotonic()
    corpus = encoder.encode(texts, kind="text")
    encode_s = time.monotonic() - started
    qids = list(queries)
    similarity = encoder.encode([queries[q] for q in qids], kind="text") @ corpus.T
    vector_run, hybrid_run = {}, {}
    for row, qid in zip(similarity, qids, strict=True):
        top = np.argsort(-row)[:WINDOW]
        vector = [(doc_ids[j], float(row[j])) for j in top]
        vector_run[qid] = ranked_run(doc for doc, _ in vector)
        fused = fused_top({"lexical": lexical[qid], "vector:text": vector}, Fusion(), WINDOW)
        hybrid_run[qid] = ranked_run(fused)
    return {
        "vector": scores(qrels, vector_run, [METRIC])[METRIC],
        "hybrid": scores(qrels, hybrid_run, [METRIC])[METRIC],
        "encode_s": encode_s,
    }


def run(
    client: ApiClient,
    collection: str,
    dataset: Path,
    qrels_path: Path,
    *,
    configs: list[TrainConfig],
    holdout: float = 0.2,
) -> Report:
    settings = get_settings()
    queries = load_queries(find(dataset, "queries"))
    qrels = load_qrels(qrels_path)
    train_ids, held_ids = split_queries(qrels, queries, holdout)
    docs = list(iter_corpus(find(dataset, "corpus")))
    doc_ids = [doc["id"] for doc in docs]
    texts = [encoder_text({"title": doc["title"], "content": doc["text"]}) for doc in docs]
    passages = dict(zip(doc_ids, texts, strict=True))
    lexical = mode_rankings(client, collection, {q: queries[q] for q in [*train_ids, *held_ids]}, "lexical")
    sources = {"lexical": lexical}
    if any(config.negatives_from == "hybrid" for config in configs):
        sources["hybrid"] = mode_rankings(client, collection, {q: queries[q] for q in train_ids}, "hybrid")
    held_queries = {q: queries[q] for q in held_ids}
    held_qrels = {q: qrels[q] for q in held_ids}
    base_ref = client.collection(collection)["encoders"]["text"]["model"]
    base = resolve_model_path(base_ref, settings.models.models_dir)

    base_scores = evaluate(base, doc_ids, texts, held_queries, qrels=held_qrels, lexical=lexical)
    rows = [_row("base model", base_scores, base_scores, train_s=0.0)]
    for config in configs:
        ranked = sources[config.negatives_from]
        examples = examples_for(
            train_ids, queries, qrels, passages, ranked=ranked, negatives=config.hard_negatives
        )
        with tempfile.TemporaryDirectory(prefix="mmsearch-bench-train-") as scratch:
            info = train(base, examples, Path(scratch), settings, config=config)
            tuned = evaluate(scratch, doc_ids, texts, held_queries, qrels=held_qrels, lexical=lexical)
        label = (
            f"epochs={config.epochs} lr={config.learning_rate:g} "
            f"negatives={config.hard_negatives} {config.negatives_from}"
        )
        rows.append(_row(label, tuned, base_scores, train_s=info["train_seconds"]))
    return Report(
        name="train-configs",
        title=f"Fine-tuning configs: held-out {METRIC} on {len(held_ids)} queries of {qrels_path.name}",
        rows=rows,
        notes=[
            f"trained on {len(train_ids)} judged queries, scored on the other {len(held_ids)} (seed 13)",
            f"hybrid = BM25 top {WINDOW} of '{collection}' fused with exact vector top {WINDOW} by the API's "
            "default fusion",
            f"base model {base_ref}; device {pick_device(settings.models.device)}",
        ],
    )


def _row(label: str, result: dict[str, float], base: dict[str, float], train_s: float) -> dict[str, object]:
    return {
        "model": label,
        "train_s": round(train_s, 1),
        "encode_s": round(result["encode_s"], 1),
        f"vector {METRIC}": round(result["vector"], 4),
        "vector gain": round(result["vector"] - base["vector"], 4),
        f"hybrid {METRIC}": round(result["hybrid"], 4),
        "hybrid gain": round(result["hybrid"] - base["hybrid"], 4),
    }
