"""Collections: an alias `<prefix><name>` in front of versioned physical indices `<alias>-000001`.

The physical index's mapping `_meta` says which encoders (and model versions) its vectors come from, so the
cluster itself is the source of truth. Search profiles and re-encode jobs are documents of the state index
(`mappings.metastore`), keyed by collection name: writers of different items never overwrite each other.

Collections made before the state index kept profiles and jobs in `_meta`: they are read from there while
the state index holds nothing for the collection, and moved over once by `migrate_legacy_state` (worker
start-up, `mmsearch migrate`), not by the writes.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from elasticsearch import NotFoundError

from core.access import EVERYONE, READERS_FIELD, check_readers
from core.config import Settings
from core.errors import MmsearchError
from core.es import Client, bulk, engine_of, scan
from encoders import allowlist, get_encoder
from mappings import added_properties, index_body, metastore

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class CollectionError(MmsearchError):
    """A collection request that can't be done as asked (bad name, wrong encoders, ...)."""


class CollectionNotFound(CollectionError):
    status = 404


class CollectionExists(CollectionError):
    status = 409


@dataclass
class Collection:
    name: str
    alias: str
    index: str  # the physical index the alias writes to
    encoders: dict[str, dict[str, Any]]
    extractors: list[str] = field(default_factory=list)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)  # the write index's mapping `_meta`
    passages: list[str] = field(default_factory=list)  # encoders with a vector per passage of long texts
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)  # re-encode jobs by id
    legacy: bool = False  # profiles and jobs come from `_meta` (a collection older than the state index)
    # Readers of documents that name none (collections made before permissions: everyone).
    default_readers: list[str] = field(default_factory=lambda: [EVERYONE])


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise CollectionError(
            f"invalid collection name {name!r}: use 1-63 lowercase letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    return name


def alias_for(settings: Settings, name: str) -> str:
    return f"{settings.engine.index_prefix}{validate_name(name)}"


def physical_index(settings: Settings, name: str, generation: int) -> str:
    return f"{alias_for(settings, name)}-{generation:06d}"


def create(
    es: Client,
    settings: Settings,
    name: str,
    encoders: list[str] | None = None,
    *,
    models: dict[str, str] | None = None,
    extractors: list[str] | None = None,
    passages: bool = True,
    default_readers: list[str] | None = None,
    quota: dict[str, int] | None = None,
) -> Collection:
    """A new collection; `passages=False` keeps one vector per document however long (the text encoder
    then sees only a long document's start); `default_readers` are the readers of documents that name
    none (everyone by default), kept in the mapping's `_meta`, as is `quota` (`max_documents`,
    `max_bytes`), which later generations inherit (`ingest.quota`)."""
    readers = check_readers(default_readers if default_readers is not None else [EVERYONE])
    for encoder, ref in (models or {}).items():
        allowlist.check_model_ref(settings, ref, encoder=encoder)  # before anything is loaded or asked
    alias = alias_for(settings, name)
    if es.indices.exists_alias(name=alias) or es.indices.exists(index=alias):
        raise CollectionExists(f"collection {name!r} already exists")
    instances = [
        get_encoder(enc, (models or {}).get(enc)) for enc in encoders or settings.models.default_encoders
    ]
    for instance in instances:
        try:
            instance.dims  # noqa: B018 - loads the model: a wrong name fails here, not in every worker batch
        except Exception as exc:  # noqa: BLE001 - hub errors, missing dirs, bad configs all mean "cannot load"
            raise CollectionError(
                f"encoder {instance.name!r} cannot load model {instance.model_ref!r}: {exc}"
            ) from None
    index = physical_index(settings, name, 1)
    meta = {"extractors": extractors or [], "default_readers": readers, **({"quota": quota} if quota else {})}
    body = index_body(name, instances, settings, engine_of(es), meta=meta, passages=passages)
    es.indices.create(index=index, **body, aliases={alias: {"is_write_index": True}})
    metastore.delete_collection(es, settings, name)  # orphans of an earlier one whose indices went by hand
    CACHE.invalidate(name)
    return get(es, settings, name)


def _from_mapping(
    name: str, alias: str, index: str, mapping: dict[str, Any], *, state: dict[str, dict[str, Any]]
) -> Collection:
    meta = mapping.get("_meta", {})
    legacy = not any(state.values()) and bool(meta.get("profiles") or meta.get("jobs"))
    if legacy:
        state = {metastore.PROFILE: meta.get("profiles", {}), metastore.JOB: meta.get("jobs", {})}
    return Collection(
        name=name,
        alias=alias,
        index=index,
        encoders=meta.get("encoders", {}),
        extractors=meta.get("extractors", []),
        profiles=state[metastore.PROFILE],
        meta=meta,
        passages=meta.get("passages", []),
        jobs=state[metastore.JOB],
        legacy=legacy,
        default_readers=meta.get("default_readers", [EVERYONE]),
    )


def write_index(es: Client, alias: str) -> str:
    try:
        aliases = es.indices.get_alias(name=alias)
    except NotFoundError:
        raise CollectionNotFound(f"collection {alias!r} does not exist") from None
    for index, spec in aliases.items():
        if spec["aliases"][alias].get("is_write_index", len(aliases) == 1):
            return index
    return sorted(aliases)[-1]


def get(es: Client, settings: Settings, name: str) -> Collection:
    alias = alias_for(settings, name)
    try:
        index = write_index(es, alias)
    except CollectionNotFound:
        raise CollectionNotFound(f"collection {name!r} does not exist") from None
    mapping = es.indices.get_mapping(index=index)[index]["mappings"]
    return _from_mapping(name, alias, index, mapping, state=metastore.read(es, settings, name))


def upgrade(es: Client, settings: Settings) -> dict[str, int]:
    """Every one-off upgrade of collections made by older versions, off the request path (reads never
    write mappings): crawl, claim and permission fields where they are missing, readers for documents
    older than permissions, then the legacy `_meta` state moved. Idempotent; returns what
    `migrate_legacy_state` moved."""
    ensure_added_fields(es, settings)
    fill_readers(es, settings)
    return migrate_legacy_state(es, settings)


def migrate_legacy_state(es: Client, settings: Settings) -> dict[str, int]:
    """The one-off move of profiles and jobs that collections made before the state index keep in their
    write index's `_meta`: each item is created in the state index unless one of its name is there
    (`op_type=create`: a newer item wins), then `_meta` drops them, so they are never read from there
    again. Run at worker start-up and by `mmsearch migrate`; safe to repeat. Returns collection ->
    items moved, for the collections that had any."""
    moved: dict[str, int] = {}
    for name in list_names(es, settings):
        collection = get(es, settings, name)
        meta = collection.meta
        items = [(metastore.PROFILE, meta.get("profiles") or {}), (metastore.JOB, meta.get("jobs") or {})]
        if not any(found for _, found in items):
            continue
        for kind, found in items:
            for item, body in found.items():
                metastore.create(es, settings, name, kind=kind, name=item, body=body)
        update_meta(es, collection.index, profiles={}, jobs={})
        CACHE.invalidate(name)
        moved[name] = sum(len(found) for _, found in items)
    return moved


def index_meta(es: Client, index: str) -> dict[str, Any]:
    return es.indices.get_mapping(index=index)[index]["mappings"].get("_meta", {})


def update_meta(es: Client, index: str, **changes: Any) -> dict[str, Any]:
    """Read-modify-write of `_meta` (the engine replaces `_meta` as a whole, with no version to check):
    only for keys nobody else writes concurrently; profiles and jobs live in `mappings.metastore`."""
    meta = index_meta(es, index)
    meta.update(changes)
    es.indices.put_mapping(index=index, meta=meta)
    return meta


def ensure_added_fields(es: Client, settings: Settings) -> list[str]:
    """Give every collection index made before `source.{root,path,mtime}`, `readers` or
    `ingest.claimed_by` existed those fields (a no-op for the others): a one-off upgrade step, so that
    reads never write mappings. Returns the indices. (A worker records `claimed_by` only where the
    mapping has it.)"""
    indices = sorted(
        es.indices.get(
            index=f"{settings.engine.index_prefix}*", ignore_unavailable=True, allow_no_indices=True
        )
    )
    indices = [index for index in indices if index != metastore.index_name(settings)]
    for index in indices:
        es.indices.put_mapping(index=index, properties=added_properties())
    return indices


def fill_readers(es: Client, settings: Settings) -> dict[str, int]:
    """Give documents indexed before permissions existed their collection's default readers (everyone
    for such collections), as partial updates: without readers only admins would see them. Idempotent;
    returns collection -> documents updated, for those that had any."""
    filled: dict[str, int] = {}
    missing = {"query": {"bool": {"must_not": [{"exists": {"field": READERS_FIELD}}]}}}
    for name in list_names(es, settings):
        collection = get(es, settings, name)
        hits = scan(es, index=collection.alias, query=missing, _source=False)
        actions = (
            {
                "_op_type": "update",
                "_index": hit["_index"],
                "_id": hit["_id"],
                "doc": {READERS_FIELD: collection.default_readers},
            }
            for hit in hits
        )
        done, _ = bulk(es, actions, raise_on_error=False, refresh="wait_for")
        if done:
            filled[name] = done
    return filled


def list_names(es: Client, settings: Settings) -> list[str]:
    aliases = es.indices.get_alias(index=f"{settings.engine.index_prefix}*", ignore_unavailable=True)
    names = {
        alias[len(settings.engine.index_prefix) :]
        for spec in aliases.values()
        for alias in spec.get("aliases", {})
        if alias.startswith(settings.engine.index_prefix)
    }
    return sorted(names)


def delete(es: Client, settings: Settings, name: str) -> list[str]:
    alias = alias_for(settings, name)
    try:
        serving = set(es.indices.get_alias(name=alias))
    except NotFoundError:
        raise CollectionNotFound(f"collection {name!r} does not exist") from None
    # Also a re-encode job's generation that is not behind the alias yet.
    generation = re.compile(re.escape(alias) + r"-\d{6}")
    found = es.indices.get(index=f"{alias}-*", ignore_unavailable=True, allow_no_indices=True)
    indices = sorted(serving | {index for index in found if generation.fullmatch(index)})
    es.indices.delete(index=",".join(indices))
    metastore.delete_collection(es, settings, name)
    CACHE.invalidate(name)
    return indices


def status_counts(es: Client, alias: str, query: dict[str, Any] | None = None) -> dict[str, int]:
    """Documents by ingest status and in all, among those `query` matches (a principal's readable ones)."""
    resp = es.search(
        index=alias,
        query=query or {"match_all": {}},
        size=0,
        track_total_hits=True,
        aggs={"status": {"terms": {"field": "ingest.status", "size": 10}}},
    )
    counts = {b["key"]: b["doc_count"] for b in resp["aggregations"]["status"]["buckets"]}
    counts["total"] = resp["hits"]["total"]["value"]
    return counts


class CollectionCache:
    """Short-lived per-process cache of collection descriptions, so a search costs one round trip."""

    def __init__(self, ttl: float = 5.0) -> None:
        self.ttl = ttl
        self._items: dict[str, tuple[float, Collection]] = {}
        self._lock = threading.Lock()

    def get(self, es: Client, settings: Settings, name: str, fresh: bool = False) -> Collection:
        now = time.monotonic()
        with self._lock:
            hit = self._items.get(name)
        if hit and not fresh and now - hit[0] < self.ttl:
            return hit[1]
        collection = get(es, settings, name)
        with self._lock:
            self._items[name] = (now, collection)
        return collection

    def invalidate(self, name: str | None = None) -> None:
        with self._lock:
            if name is None:
                self._items.clear()
            else:
                self._items.pop(name, None)


CACHE = CollectionCache()
