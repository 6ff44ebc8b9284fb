"""Recall@10 of the index's approximate kNN against exact brute force over the very vectors the index
holds, for several num_candidates: the whole-document vectors (with and without rescoring) and, where the
collection has passages, the nested passage kNN (a document scored by its best passage), each with how far
the engine's scores are from the exact `(1 + cosine) / 2`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import Report, query_texts
from core.config import get_settings
from core.es import Client, engine_of, make_client, scan
from encoders import get_encoder
from mappings.catalog import get
from search.plan import PASSAGES_PATH, passage_knn_body
from search.query import RESCORE_OVERSAMPLE, knn_body

K = 10
NUM_CANDIDATES = (10, 50, 100, 200)


def unit_rows(rows: list[list[float]]) -> np.ndarray:
    matrix = np.asarray(rows, dtype=np.float32)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def stored_vectors(es: Client, alias: str, field: str) -> tuple[list[str], np.ndarray]:
    """Every document's vector as stored (ES 9 leaves vectors out of `_source` unless asked)."""
    hits = scan(
        es,
        index=alias,
        query={
            "query": {"exists": {"field": field}},
            "_source": engine_of(es).source_with_vectors([field]),
        },
        size=1000,
    )
    ids, rows = [], []
    for hit in hits:
        ids.append(hit["_id"])
        rows.append(hit["_source"]["vectors"][field.split(".", 1)[1]])
    return ids, unit_rows(rows)


def stored_passages(es: Client, alias: str, encoder: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Every passage vector as stored, and for each the position of its document in the returned ids."""
    field = f"{PASSAGES_PATH}.vectors.{encoder}"
    query = {"nested": {"path": PASSAGES_PATH, "query": {"exists": {"field": field}}}}
    hits = scan(
        es,
        index=alias,
        query={"query": query, "_source": engine_of(es).source_with_vectors([field])},
        size=500,
    )
    ids: list[str] = []
    owners: list[int] = []
    rows: list[list[float]] = []
    for hit in hits:
        for passage in hit["_source"].get(PASSAGES_PATH, []):
            if vector := passage.get("vectors", {}).get(encoder):
                owners.append(len(ids))
                rows.append(vector)
        ids.append(hit["_id"])
    return ids, unit_rows(rows), np.asarray(owners)


def best_passage_scores(
    passages: np.ndarray, owners: np.ndarray, n_docs: int, queries: np.ndarray
) -> np.ndarray:
    """(queries, documents): each document's best passage cosine, exactly."""
    cosines = queries @ passages.T
    best = np.full((len(queries), n_docs), -1.0, dtype=np.float32)
    for row, scores in zip(best, cosines, strict=True):
        np.maximum.at(row, owners, scores)
    return best


def knn_hits(es: Client, alias: str, body: dict[str, Any]) -> dict[str, float]:
    resp = es.msearch(searches=[{"index": alias}, body])["responses"][0]
    return {h["_id"]: h["_score"] for h in resp["hits"]["hits"]}


def measure(
    es: Client, alias: str, bodies: list[dict[str, Any]], *, ids: list[str], exact: np.ndarray
) -> dict[str, Any]:
    """Recall@K of each body's hits against the exact top K of its row, and the score error of the hits."""
    position = {doc_id: i for i, doc_id in enumerate(ids)}
    started = time.perf_counter()
    found = [knn_hits(es, alias, body) for body in bodies]
    elapsed = time.perf_counter() - started
    recalls, errors = [], []
    for hits, row in zip(found, exact, strict=True):
        top = {ids[j] for j in np.argpartition(-row, K)[:K]}
        recalls.append(len(top & set(hits)) / K)
        errors += [abs(score - (1 + row[position[doc_id]]) / 2) for doc_id, score in hits.items()]
    return {
        "recall@10": round(float(np.mean(recalls)), 4),
        "mean score error": float(f"{np.mean(errors):.2g}") if errors else 0.0,
        "max score error": float(f"{np.max(errors):.2g}") if errors else 0.0,
        "mean ms": round(elapsed / len(bodies) * 1000, 2),
    }


def index_options(es: Client, index: str, path: str, encoder: str) -> dict[str, Any]:
    properties = es.indices.get_mapping(index=index)[index]["mappings"]["properties"]
    for part in path.split("."):
        properties = properties[part]["properties"]
    spec = properties[encoder]
    return spec.get("index_options") or spec.get("method", {})  # Elasticsearch | OpenSearch k-NN


def run(collection_name: str, dataset: Path, n: int = 200) -> Report:
    settings = get_settings()
    es = make_client(settings)
    engine = engine_of(es)
    collection = get(es, settings, collection_name)
    name, desc = next((k, v) for k, v in collection.encoders.items() if "text" in v.get("query_kinds", []))
    field = f"vectors.{name}"
    ids, docs = stored_vectors(es, collection.alias, field)
    texts = query_texts(dataset, n)
    queries = get_encoder(name, desc.get("model")).encode(texts, kind="text")
    vectors = [[float(x) for x in q] for q in queries]
    exact = queries @ docs.T
    options = {"vectors": index_options(es, collection.index, "vectors", name)}
    rows: list[dict[str, Any]] = []
    for rescore in (False, True):
        for nc in NUM_CANDIDATES:
            bodies = [
                knn_body(engine, field, v, [], window=K, num_candidates=nc, rescore=rescore) for v in vectors
            ]
            rows.append(
                {
                    "field": field,
                    "num_candidates": nc,
                    "rescore": f"oversample {RESCORE_OVERSAMPLE:g}" if rescore else "no",
                    **measure(es, collection.alias, bodies, ids=ids, exact=exact),
                }
            )
    if name in collection.passages:
        parents, passages, owners = stored_passages(es, collection.alias, name)
        best = best_passage_scores(passages, owners, len(parents), queries)
        options["passages"] = index_options(es, collection.index, f"{PASSAGES_PATH}.vectors", name)
        for nc in NUM_CANDIDATES:
            bodies = [passage_knn_body(engine, name, v, [], window=K, num_candidates=nc) for v in vectors]
            rows.append(
                {
                    "field": f"{PASSAGES_PATH}.vectors.{name} ({len(passages)} under {len(parents)} docs)",
                    "num_candidates": nc,
                    "rescore": f"oversample {RESCORE_OVERSAMPLE:g}",
                    **measure(es, collection.alias, bodies, ids=parents, exact=best),
                }
            )
    return Report(
        "knn-recall",
        f"kNN recall@10 vs exact search on {collection_name!r}: {len(ids)} vectors, {len(texts)} queries",
        rows,
        [
            "exact = brute-force cosine in numpy over the vectors read back from _source "
            "(exclude_vectors: false on Elasticsearch), i.e. the float vectors the index was given; a "
            "document with passages scores by its best passage;",
            f"approximate = the index's kNN ({options}) with k=10, one request per query, as "
            "search.query.knn_body and search.plan.passage_knn_body build it (the API rescores float "
            "fields);",
            "score error = |engine score - (1 + exact cosine) / 2| over the hits returned;",
            "query vectors come from the collection's own encoder, computed in this process.",
        ],
    )
