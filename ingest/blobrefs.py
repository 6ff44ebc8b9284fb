"""Blob reference counting: a blob goes when no document of any collection references its sha256.

The count is a search on `source.sha256` across every mmsearch index (all collections, every
generation), after a refresh so that deletes and writes already acknowledged are seen. An upload stores
its blob only after its document is indexed, and `BlobStore.put` touches a blob it finds; so a blob
written again after the check began survives (`BlobStore.delete_unless_touched`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from core.config import Settings
from core.es import Client, scan
from ingest.blobstore import BlobStore

BATCH = 1000


def referenced(es: Client, pattern: str, shas: list[str]) -> set[str]:
    """Which of `shas` some document in the indices matching `pattern` references."""
    found: set[str] = set()
    for start in range(0, len(shas), BATCH):
        batch = shas[start : start + BATCH]
        resp = es.search(
            index=pattern,
            size=0,
            query={"terms": {"source.sha256": batch}},
            aggs={"shas": {"terms": {"field": "source.sha256", "size": len(batch)}}},
            ignore_unavailable=True,
            allow_no_indices=True,
        )
        # no index matches (the last collection was just deleted): the engine sends no aggregations
        buckets = resp.get("aggregations", {}).get("shas", {}).get("buckets", [])
        found.update(b["key"] for b in buckets)
    return found


def release(es: Client, settings: Settings, shas: Iterable[str | None]) -> list[str]:
    """Delete the blobs among `shas` that no document references any more; returns those deleted."""
    wanted = sorted({sha for sha in shas if sha})
    if not wanted:
        return []
    store = BlobStore.from_settings(settings)
    since = store.clock()  # before the refresh: a put from now on keeps its blob
    pattern = f"{settings.engine.index_prefix}*"
    es.indices.refresh(index=pattern, ignore_unavailable=True, allow_no_indices=True)
    in_use = referenced(es, pattern, wanted)
    return [sha for sha in wanted if sha not in in_use and store.delete_unless_touched(sha, since)]


def shas_of(es: Client, index: str, query: dict | None = None) -> Iterator[str]:
    """The blob keys the documents of `index` (matching `query`) reference, for releasing them later."""
    hits = scan(
        es,
        index=index,
        query={"query": query or {"exists": {"field": "source.sha256"}}},
        _source=["source.sha256"],
        ignore_unavailable=True,
    )
    for hit in hits:
        sha = hit["_source"].get("source", {}).get("sha256")
        if sha:
            yield sha
