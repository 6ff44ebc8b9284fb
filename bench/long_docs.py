"""Long documents: nDCG@10 of lexical / vector / hybrid search on documents made of many SciFact abstracts
each, with passages (nested kNN) and without (one vector per document), and what passages cost.

Each long document joins `per_doc` abstracts (title line + text, blank line between), shuffled with a
fixed seed, so most judged abstracts sit deep inside a document; a document is relevant to a training
query when it holds an abstract judged for it. The reference row runs the same encoder with every
passage as its own document (exact cosine in numpy, a document scored by its best passage): what nested
kNN should come close to. Collections are reused when they already hold the documents, encoded.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import Report, spawned_api
from client.api import ApiClient
from core.config import get_settings
from core.es import make_client
from encoders import get_encoder
from evaluation.runs import mode_result, ranked_run, run_queries, scores, wait_indexed
from ingest.beir import find, iter_corpus, load_qrels, load_queries
from ingest.passages import passages_for
from mappings.catalog import get

MODES = ("lexical", "vector", "hybrid")
METRIC = "ndcg@10"


def long_documents(
    dataset: Path, n_docs: int, per_doc: int, n_queries: int, *, seed: int = 13
) -> tuple[list[dict[str, Any]], dict[str, str], dict[str, dict[str, int]], float]:
    """(long documents, the training queries used, their judgments on the long documents, the share of
    judged abstracts that are not the first of their document)."""
    qrels = load_qrels(dataset / "qrels-train.tsv")
    qids = sorted(qrels, key=int)[:n_queries]
    judged = {doc for qid in qids for doc in qrels[qid]}
    corpus = {doc["id"]: doc for doc in iter_corpus(find(dataset, "corpus"))}
    fillers = [doc_id for doc_id in corpus if doc_id not in judged]
    chosen = sorted(judged & set(corpus)) + fillers[: max(n_docs * per_doc - len(judged), 0)]
    random.Random(seed).shuffle(chosen)
    docs, home, deep = [], {}, 0
    for i in range(0, min(len(chosen), n_docs * per_doc), per_doc):
        doc_id = f"long-{i // per_doc:04d}"
        parts = [corpus[a] for a in chosen[i : i + per_doc]]
        home.update({a["id"]: doc_id for a in parts})
        deep += sum(1 for at, a in enumerate(parts) if a["id"] in judged and at > 0)
        text = "\n\n".join(f"{a['title'] or ''}\n{a['text']}".strip() for a in parts)
        docs.append({"id": doc_id, "title": f"Collected abstracts {i // per_doc}", "text": text})
    long_qrels: dict[str, dict[str, int]] = {}
    for qid in qids:
        for abstract, rel in qrels[qid].items():
            if abstract in home:
                doc_id = home[abstract]
                long_qrels.setdefault(qid, {})[doc_id] = max(rel, long_qrels.get(qid, {}).get(doc_id, 0))
    queries = load_queries(find(dataset, "queries"))
    return docs, {qid: queries[qid] for qid in long_qrels}, long_qrels, deep / max(len(judged), 1)


def ensure(client: ApiClient, name: str, docs: list[dict[str, Any]], passages: bool) -> float | None:
    """The collection holding `docs`, encoded; seconds from first POST to encoded, None when reused."""
    if client.collection_exists(name):
        counts = client.collection(name)["documents"]
        if counts.get("encoded") == len(docs) == counts.get("total"):
            return None
        client.delete_collection(name)
    client.create_collection(name, passages=passages)
    started = time.perf_counter()
    client.add_documents(name, docs, chunk_size=50)
    wait_indexed(client, name, len(docs))
    counts = client.wait_encoded(name, poll=0.5)
    if counts.get("encoded") != len(docs):
        raise RuntimeError(f"{name}: expected {len(docs)} encoded documents, got {counts}")
    return time.perf_counter() - started


def index_facts(name: str) -> dict[str, Any]:
    """Store size (MB, after a flush) and Lucene documents (each nested passage is one)."""
    settings = get_settings()
    es = make_client(settings)
    index = get(es, settings, name).index
    es.indices.flush(index=index)
    stats = es.indices.stats(index=index, metric="store,docs")["indices"][index]["primaries"]
    return {
        "index MB": round(stats["store"]["size_in_bytes"] / 1e6, 2),
        "lucene docs": stats["docs"]["count"],
    }


def reference(docs: list[dict[str, Any]], queries: dict[str, str], qrels: dict[str, dict[str, int]]) -> dict:
    """Every passage its own document, exact cosine, a long document scored by its best passage."""
    settings = get_settings()
    encoder = get_encoder("text")
    owners, texts = [], []
    for doc in docs:
        cut, _ = passages_for(
            doc["text"],
            encoder.token_spans,
            encoder.window,
            settings.models.passage_overlap,
            max_passages=settings.limits.max_passages,
        )
        for p in cut or [{"text": doc["text"]}]:
            owners.append(doc["id"])
            texts.append(p["text"])
    started = time.perf_counter()
    matrix = encoder.encode(texts)
    encode_s = time.perf_counter() - started
    qids = list(queries)
    sims = encoder.encode([queries[q] for q in qids], kind="text") @ matrix.T
    owner_ids = np.asarray(owners)
    run = {}
    for row, qid in zip(sims, qids, strict=True):
        ranked: list[str] = []
        for at in np.argsort(-row):
            if owner_ids[at] not in ranked:
                ranked.append(str(owner_ids[at]))
            if len(ranked) == 10:
                break
        run[qid] = ranked_run(ranked)
    return {
        "passages": len(texts),
        "encode s": round(encode_s, 1),
        METRIC: scores(qrels, run, [METRIC])[METRIC],
    }


def evaluate(client: ApiClient, name: str, queries: dict[str, str], qrels: dict[str, dict[str, int]]) -> dict:
    """nDCG@10 and client-side p50 latency (1 client) per mode."""
    out: dict[str, Any] = {}
    for mode in MODES:
        run_queries(client, name, dict(list(queries.items())[:10]), {"mode": mode}, threads=1)  # warm
        responses, wall = run_queries(
            client, name, queries, {"mode": mode, "size": 10, "cutoff": False}, threads=1
        )
        result = mode_result(responses, wall)
        out[mode] = round(scores(qrels, result.run, [METRIC])[METRIC], 4)
        out[f"{mode} p50 ms"] = round(float(np.percentile(result.latencies_ms, 50)), 1)
    return out


def run(dataset: Path, n_docs: int = 250, per_doc: int = 12, n_queries: int = 200) -> Report:
    n_docs = min(n_docs, 5183 // per_doc)  # SciFact has 5183 abstracts
    docs, queries, qrels, deep = long_documents(dataset, n_docs, per_doc, n_queries)
    rows: list[dict[str, Any]] = []
    with spawned_api({}) as client:
        for label, name, passages in (
            ("one vector per document", f"bench-long-{n_docs}x{per_doc}-plain", False),
            ("passages (nested kNN)", f"bench-long-{n_docs}x{per_doc}-passages", True),
        ):
            encode_s = ensure(client, name, docs, passages)
            rows.append(
                {
                    "collection": label,
                    **evaluate(client, name, queries, qrels),
                    "encode s": round(encode_s, 1) if encode_s is not None else "reused",
                    **index_facts(name),
                }
            )
    ref = reference(docs, queries, qrels)
    blank = dict.fromkeys(rows[0], "")  # the table reads every row by the first row's columns
    rows.append(
        {**blank, "collection": "reference: each passage its own document (exact)", "vector": ref[METRIC]}
    )
    return Report(
        "long_docs",
        f"long documents: {len(docs)} x {per_doc} SciFact abstracts, {len(queries)} queries, {METRIC}",
        rows,
        [
            f"{deep:.0%} of the judged abstracts are not the first of their document;",
            "lexical/vector/hybrid = the API's search modes (default profile); p50 ms = one client, size 10;",
            "encode s = POST of all documents until none is pending (the worker(s) on this broker encode);",
            f"reference: the same {ref['passages']} passages encoded in process ({ref['encode s']} s), "
            "exact cosine, each long document scored by its best passage;",
            "index MB after a flush; lucene docs counts each nested passage as one Lucene document.",
        ],
    )
