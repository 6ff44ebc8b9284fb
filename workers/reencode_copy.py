"""A re-encode's data movement: documents copied from the old generation into the new one as `pending`
(their encoding queued), or with their vectors when the models stay the same, and copies whose original
was deleted meanwhile removed.

No `_reindex` on this Elasticsearch build, so the copy scans and bulk-writes. Catch-up keys on
`@timestamp`, which every (re)ingest sets and encoding leaves alone: a document of the old index is copied
again only when it is newer than the new index's copy, so repeating a copy is idempotent.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any

from core.es import Client, bulk, engine_of, scan
from ingest.lifecycle import ENCODED, requeued
from ingest.priority import Priority
from workers.tasks import enqueue

CHUNK = 500
EPOCH = datetime.min.replace(tzinfo=UTC)


def copy_documents(
    es: Client, source: str, target: str, query: Mapping[str, Any], *, keep_vectors: bool = False
) -> int:
    """Write the `query` documents of `source` that `target` lacks or holds older into `target` as
    `pending`, and queue their encoding; returns how many. Safe to repeat. `keep_vectors` (the same
    models, a new mapping): encoded documents are copied as they are, vectors and passages included,
    and only the others are queued."""
    fields = engine_of(es).source_with_vectors() if keep_vectors else {"excludes": ["vectors", "passages"]}
    hits = scan(es, index=source, query={"query": query, "_source": fields}, size=CHUNK)
    copied = 0
    for chunk in chunks(hits, CHUNK):
        held = _timestamps(es, target, [hit["_id"] for hit in chunk])
        newer = [hit for hit in chunk if stamp_of(hit["_source"]) > held.get(hit["_id"], EPOCH)]
        # with `keep_vectors`, an encoded document moves as it is; every other one is copied as pending
        copies = [(hit, not (keep_vectors and status_of(hit["_source"]) == ENCODED)) for hit in newer]
        if copies:
            bulk(es, (_copy_action(target, hit, pending=pending) for hit, pending in copies))
        queued = [(hit["_id"], hit["_source"].get("modality", "text")) for hit, pending in copies if pending]
        if queued:
            enqueue(target, queued, Priority.BULK)  # a re-encode is bulk work, in its collection's lane
        copied += len(newer)
    return copied


def delete_removed(es: Client, source: str, target: str, before: str) -> int:
    """Delete from `target` the copies (written before `before`) whose original left `source`."""
    query = {"range": {"@timestamp": {"lt": before}}}
    hits = scan(es, index=target, query={"query": query}, size=CHUNK, source=False)
    removed = 0
    for chunk in chunks(hits, CHUNK):
        ids = [hit["_id"] for hit in chunk]
        docs = es.mget(index=source, ids=ids, source=False)["docs"]
        gone = [doc["_id"] for doc in docs if not doc.get("found")]
        if gone:
            bulk(es, ({"_op_type": "delete", "_index": target, "_id": i} for i in gone))
            removed += len(gone)
    return removed


def _copy_action(target: str, hit: Mapping[str, Any], *, pending: bool) -> dict[str, Any]:
    source = requeued(hit["_source"]) if pending else hit["_source"]
    return {"_op_type": "index", "_index": target, "_id": hit["_id"], "_source": source}


def status_of(source: Mapping[str, Any]) -> str | None:
    return (source.get("ingest") or {}).get("status")


def _timestamps(es: Client, index: str, ids: list[str]) -> dict[str, datetime]:
    docs = es.mget(index=index, ids=ids, source_includes=["@timestamp"])["docs"]
    return {doc["_id"]: stamp_of(doc["_source"]) for doc in docs if doc.get("found")}


def stamp_of(source: Mapping[str, Any]) -> datetime:
    """A document's ingest time (`@timestamp`), aware; the epoch when it has none."""
    value = source.get("@timestamp")
    if not value:
        return EPOCH
    stamp = datetime.fromisoformat(value)
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def since(moment: str) -> dict[str, Any]:
    """The documents (re)ingested at or after `moment`."""
    return {"range": {"@timestamp": {"gte": moment}}}


def ago(delta: timedelta) -> str:
    return (datetime.now(UTC) - delta).isoformat(timespec="milliseconds")


def chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk
