"""Search latency as a collection grows: the source collection vs copies grown to 10k and 100k documents.

The copies repeat the source's documents with their real encoder vectors (new ids), written straight
to Elasticsearch with bulk, so no vector is random and no document needs re-encoding.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.common import Report, latency_row, query_texts, timed_calls
from client.api import ApiClient
from core.config import get_settings
from core.es import Client, bulk, engine_of, make_client, scan

MODES = ("lexical", "vector", "hybrid")


def source_documents(es: Client, alias: str) -> list[dict[str, Any]]:
    """Every encoded document with its vectors (ES 9 leaves them out of `_source` unless asked)."""
    hits = scan(
        es,
        index=alias,
        query={
            "query": {"term": {"ingest.status": "encoded"}},
            "_source": engine_of(es).source_with_vectors(),
        },
        size=500,
    )
    return [hit["_source"] for hit in hits]


def copies(docs: list[dict[str, Any]], index: str, collection: str, size: int) -> Iterator[dict[str, Any]]:
    """`size` documents cycling through `docs`; copy r of document d gets the id `d~r`."""
    for i in range(size):
        doc = copy.copy(docs[i % len(docs)])
        doc_id = f"{doc['doc_id']}~{i // len(docs)}"
        doc.update(doc_id=doc_id, collection=collection)
        yield {"_index": index, "_id": doc_id, "_source": doc}


def grow(client: ApiClient, es: Client, source: dict[str, Any], docs: list[dict], *, size: int) -> dict:
    """A fresh collection with the source's encoders, filled to `size` documents; returns its description."""
    name = f"bench-growth-{size}"
    if client.collection_exists(name):
        client.delete_collection(name)
    models = {enc: desc["model"] for enc, desc in source["encoders"].items() if desc.get("model")}
    info = client.create_collection(name, encoders=list(source["encoders"]), models=models)
    bulk(es, copies(docs, info["index"], name, size), chunk_size=500, request_timeout=300)
    es.indices.refresh(index=info["index"])
    return info


def measure(
    client: ApiClient, es: Client, info: dict[str, Any], texts: list[str], *, documents: int, built: str
) -> list[dict[str, Any]]:
    """Latency per mode, one client; the first query of each mode warms up and is not counted."""
    shards = es.indices.segments(index=info["index"])["indices"][info["index"]]["shards"]
    segments = sum(len(replica["segments"]) for replicas in shards.values() for replica in replicas)
    rows = []
    for mode in MODES:
        client.search(info["name"], texts[0], mode=mode)
        lat, wall = timed_calls(lambda t, m=mode: client.search(info["name"], t, mode=m), texts, 1)
        rows.append(
            {
                "documents": documents,
                "collection": info["name"],
                "segments": segments,
                "build s": built,
                "mode": mode,
                **latency_row(lat, wall),
            }
        )
    return rows


def run(client: ApiClient, collection: str, dataset: Path, sizes: tuple[int, ...], *, n: int = 200) -> Report:
    es = make_client(get_settings())
    source = client.collection(collection)
    docs = source_documents(es, source["alias"])
    texts = query_texts(dataset, n)
    for text in texts:  # encode every query vector once, so only the index size varies below
        client.search(collection, text, mode="vector", size=1)
    rows = measure(client, es, source, texts, documents=len(docs), built="-")
    for size in sizes:
        started = time.perf_counter()
        info = grow(client, es, source, docs, size=size)
        try:
            rows += measure(
                client, es, info, texts, documents=size, built=f"{time.perf_counter() - started:.0f}"
            )
        finally:
            client.delete_collection(info["name"])
    return Report(
        "growth",
        f"search latency vs collection size ({len(texts)} queries, 1 client, size 10)",
        rows,
        [
            f"grown collections repeat the {len(docs)} encoded documents of {collection!r} with their real "
            "encoder vectors and new ids (bulk, no re-encoding): duplicates, not new text;",
            "build s = create + bulk + refresh; no force-merge (segments shown); copies deleted after.",
        ],
    )
