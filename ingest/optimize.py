"""Merging a collection's segments once a bulk load is encoded: every segment holds an HNSW graph of its
own and a kNN search visits each of them, so a collection written in many small bulks (and then updated
with its vectors, document by document) answers vector searches several times slower than the same
documents in one segment. Later writes add segments again; merge after the next bulk load."""

from __future__ import annotations

import time
from typing import Any

from core.config import Settings
from core.es import Client
from mappings import catalog

MERGE_TIMEOUT_S = 3600  # a force merge answers when it is done: minutes for a million vectors


def segment_count(es: Client, alias: str) -> int:
    """Segments of the primaries behind `alias`."""
    return es.indices.stats(index=alias, metric="segments")["_all"]["primaries"]["segments"]["count"]


def optimize(es: Client, settings: Settings, name: str, segments: int = 1) -> dict[str, Any]:
    """Force-merge collection `name` down to `segments` segments per shard and make the result
    searchable; returns the counts before and after, the time taken, and how many documents were still
    pending (their vectors, when written, add segments again)."""
    alias = catalog.get(es, settings, name).alias
    pending = catalog.status_counts(es, alias).get("pending", 0)
    before = segment_count(es, alias)
    started = time.monotonic()
    es.options(request_timeout=MERGE_TIMEOUT_S).indices.forcemerge(index=alias, max_num_segments=segments)
    es.indices.refresh(index=alias)
    return {
        "collection": name,
        "segments_before": before,
        "segments_after": segment_count(es, alias),
        "seconds": round(time.monotonic() - started, 1),
        "pending": pending,
    }
