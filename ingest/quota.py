"""Per-collection quotas: how many documents a collection may hold and how many bytes of stored files.

A collection's own quota is set when it is made (`_meta.quota`, carried to later generations); one it
does not set comes from the global defaults (`limits.collection_max_documents`, `collection_max_bytes`);
0 means unlimited, and a collection without any quota costs nothing here.

Usage is read from the index at each write, not kept in a counter: one `size: 0` search (the exact hit
count, a `sum` over `source.size` doc values) answers in milliseconds at millions of documents, and it
stays true whatever else changed the collection (deletes, crawls, re-encodes, several API processes, a
request that died half way), which a counter would have to be kept in step with. The price: documents
written within the last refresh interval (1 s) are not counted yet, so writers racing each other may
pass a quota by what they send in that second.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.config import Settings
from core.errors import MmsearchError
from core.es import Client
from mappings.catalog import Collection

QUOTA_META = "quota"


class QuotaExceeded(MmsearchError):
    """A write that would take a collection past its quota: refused whole, nothing written."""

    status = 413


@dataclass(frozen=True)
class Quota:
    max_documents: int = 0  # 0: unlimited
    max_bytes: int = 0

    @property
    def unlimited(self) -> bool:
        return not (self.max_documents or self.max_bytes)


@dataclass(frozen=True)
class Usage:
    documents: int
    bytes: int


def quota_of(collection: Collection, settings: Settings) -> Quota:
    """The collection's own quota, each limit it leaves unset taken from the global default."""
    own = collection.meta.get(QUOTA_META) or {}
    return Quota(
        max_documents=own.get("max_documents", settings.limits.collection_max_documents),
        max_bytes=own.get("max_bytes", settings.limits.collection_max_bytes),
    )


def usage(es: Client, alias: str) -> Usage:
    """Documents held and bytes of their stored files (`source.size`), as of the last refresh."""
    resp = es.search(
        index=alias, size=0, track_total_hits=True, aggs={"bytes": {"sum": {"field": "source.size"}}}
    )
    return Usage(resp["hits"]["total"]["value"], int(resp["aggregations"]["bytes"]["value"] or 0))


def incoming(docs: list[Mapping[str, Any]]) -> dict[str, int]:
    """Document id -> the stored bytes it brings (its file's size; a JSON document stores none)."""
    return {doc["doc_id"]: int((doc.get("source") or {}).get("size") or 0) for doc in docs}


def check(
    es: Client, settings: Settings, collection: Collection, adding: Mapping[str, int], *, tell_usage: bool
) -> None:
    """Raise `QuotaExceeded` when writing `adding` (id -> bytes) would take the collection past a quota.
    Documents replaced by the write count as leaving, so re-sending what is held never fails. The message
    states the usage only when `tell_usage` (an admin): it counts documents the writer may not read."""
    quota = quota_of(collection, settings)
    if quota.unlimited or not adding:
        return
    held = usage(es, collection.alias)
    replaced = _held(es, collection.alias, list(adding))
    after = Usage(
        held.documents - replaced.documents + len(adding),
        held.bytes - replaced.bytes + sum(adding.values()),
    )
    for limit, unit, before, now in (
        (quota.max_documents, "documents", held.documents, after.documents),
        (quota.max_bytes, "bytes of stored files", held.bytes, after.bytes),
    ):
        if limit and now > max(limit, before):
            said = f": it holds {before}, and this request would bring it to {now}" if tell_usage else ""
            raise QuotaExceeded(
                f"collection {collection.name!r} is over its quota of {limit} {unit}{said}; nothing written"
            )


def _held(es: Client, alias: str, ids: list[str]) -> Usage:
    """How many of `ids` the collection holds already, and their stored bytes."""
    found = es.mget(index=alias, ids=ids, source_includes=["source.size"])["docs"]
    held = [doc for doc in found if doc.get("found")]
    size = sum(int((doc["_source"].get("source") or {}).get("size") or 0) for doc in held)
    return Usage(len(held), size)
