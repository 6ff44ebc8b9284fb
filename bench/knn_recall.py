"""Recall@10 of the index's approximate kNN (HNSW over int8-quantised vectors) against exact brute force
over the very vectors the index holds, for several num_candidates."""

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
from search.query import RESCORE_OVERSAMPLE, knn_body

K = 10
NUM_CANDIDATES = (10, 50, 100, 200)


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
    matrix = np.asarray(rows, dtype=np.float32)
    return ids, matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def exact_top(docs: np.ndarray, ids: list[str], queries: np.ndarray) -> list[set[str]]:
    """Brute-force cosine top K (vectors are unit length, so a dot product)."""
    scores = queries @ docs.T
    top = np.argpartition(-scores, K, axis=1)[:, :K]
    return [{ids[j] for j in row} for row in top]


def knn_top(
    es: Client, alias: str, field: str, vector: list[float], *, num_candidates: int, rescore: bool
) -> set[str]:
    """The API's kNN body (rescore_vector re-ranks oversample*k quantised hits with the float vectors)."""
    body = knn_body(
        engine_of(es), field, vector, [], window=K, num_candidates=num_candidates, rescore=rescore
    )
    body["_source"] = False
    resp = es.msearch(searches=[{"index": alias}, body])["responses"][0]
    return {h["_id"] for h in resp["hits"]["hits"]}


def index_options(es: Client, index: str, encoder: str) -> dict[str, Any]:
    mapping = es.indices.get_mapping(index=index)[index]["mappings"]
    spec = mapping["properties"]["vectors"]["properties"][encoder]
    return spec.get("index_options") or spec.get("method", {})  # Elasticsearch | OpenSearch k-NN


def run(collection_name: str, dataset: Path, n: int = 200) -> Report:
    settings = get_settings()
    es = make_client(settings)
    collection = get(es, settings, collection_name)
    name, desc = next((k, v) for k, v in collection.encoders.items() if "text" in v.get("query_kinds", []))
    field = f"vectors.{name}"
    ids, docs = stored_vectors(es, collection.alias, field)
    texts = query_texts(dataset, n)
    queries = get_encoder(name, desc.get("model")).encode(texts, kind="text")
    exact = exact_top(docs, ids, queries)
    options = index_options(es, collection.index, name)
    rows: list[dict[str, Any]] = []
    for rescore in (False, True):
        for nc in NUM_CANDIDATES:
            started = time.perf_counter()
            found = [
                knn_top(
                    es, collection.alias, field, [float(x) for x in q], num_candidates=nc, rescore=rescore
                )
                for q in queries
            ]
            elapsed = time.perf_counter() - started
            recall = np.mean([len(f & e) / K for f, e in zip(found, exact, strict=True)])
            rows.append(
                {
                    "num_candidates": nc,
                    "rescore": f"oversample {RESCORE_OVERSAMPLE:g}" if rescore else "no",
                    "recall@10": round(float(recall), 4),
                    "mean ms": round(elapsed / len(queries) * 1000, 2),
                }
            )
    return Report(
        "knn-recall",
        f"kNN recall@10 vs exact search on {collection_name!r}: {len(ids)} vectors, {len(texts)} queries",
        rows,
        [
            f"exact = brute-force cosine in numpy over `{field}` read back from _source "
            "(exclude_vectors: false on Elasticsearch), i.e. the float vectors the index was given;",
            f"approximate = the index's kNN ({options}) with k=10, one request per query, as "
            "search.query.knn_body builds it (the API rescores float fields, the oversample row);",
            "query vectors come from the collection's own encoder, computed in this process.",
        ],
    )
