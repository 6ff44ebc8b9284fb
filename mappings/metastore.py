"""Collection state documents: search profiles and re-encode jobs, one document each, in one index.

Why documents and not the physical index's `_meta`: the engine replaces `_meta` as a whole and has no
version on it, so two writers (two profile PUTs, a job step and a profile PUT) each rewriting the whole
of it lost one of the writes. Here a profile is its own document (a PUT is last-writer-wins on that name
only) and a job is updated read-modify-write under `if_seq_no`/`if_primary_term`, retried on a conflict.

Documents are keyed by collection NAME, not physical index, so a re-encode's alias switch moves nothing.
The index is `<index_prefix>.state`: inside the `<prefix>*` privileges an API key is scoped to, yet no
collection alias or generation can have that name (collection names hold no `.`). Writes refresh, so a
PUT then a GET (another process, a search that looks a profile up) sees the write.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from elasticsearch import BadRequestError, ConflictError, NotFoundError
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from core.config import Settings
from core.es import Client, bulk

PROFILE = "profile"
JOB = "job"
MAX_ITEMS = 10_000  # one search answers a collection's state (the engine's default result window)
MAPPINGS: dict[str, Any] = {
    "dynamic": False,
    "properties": {
        "collection": {"type": "keyword"},
        "kind": {"type": "keyword"},
        "name": {"type": "keyword"},
        "updated_at": {"type": "date"},
        "body": {"type": "object", "enabled": False},  # stored as sent, never searched
    },
}


def index_name(settings: Settings) -> str:
    return f"{settings.engine.index_prefix}.state"


def doc_id(collection: str, kind: str, name: str) -> str:
    return f"{collection}:{kind}:{name}"


def state_index_settings(settings: Settings) -> dict[str, Any]:
    """One shard; the configured replicas, or, where collections have none, one replica as soon as a
    second node exists (`auto_expand_replicas: 0-1`): every collection's profiles and jobs live in this one
    small index, so losing its node would stop every collection's searches, not only its own shards."""
    replicas = settings.engine.number_of_replicas
    if replicas > 0:
        return {"number_of_shards": 1, "number_of_replicas": replicas}
    return {"number_of_shards": 1, "auto_expand_replicas": "0-1"}


def ensure_index(es: Client, settings: Settings) -> str:
    """Create the state index with its mapping unless it exists (before every write: a write must never
    auto-create it with guessed mappings)."""
    index = index_name(settings)
    if es.indices.exists(index=index):
        return index
    try:
        es.indices.create(index=index, settings=state_index_settings(settings), mappings=MAPPINGS)
    except BadRequestError as exc:
        if exc.error != "resource_already_exists_exception":  # another process created it meanwhile
            raise
    return index


def read(es: Client, settings: Settings, collection: str) -> dict[str, dict[str, Any]]:
    """{kind: {name: body}} of one collection, by one search (no index yet = no state)."""
    resp = es.search(
        index=index_name(settings),
        query={"term": {"collection": collection}},
        size=MAX_ITEMS,
        ignore_unavailable=True,
    )
    state: dict[str, dict[str, Any]] = {PROFILE: {}, JOB: {}}
    for hit in resp["hits"]["hits"]:
        source = hit["_source"]
        state.setdefault(source["kind"], {})[source["name"]] = source["body"]
    return state


def _document(collection: str, kind: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat(timespec="milliseconds")
    return {"collection": collection, "kind": kind, "name": name, "updated_at": now, "body": body}


def put(
    es: Client, settings: Settings, collection: str, *, kind: str, name: str, body: dict[str, Any]
) -> bool:
    """Write one item whole (last writer wins on this item only); returns whether it is new."""
    resp = es.index(
        index=ensure_index(es, settings),
        id=doc_id(collection, kind, name),
        document=_document(collection, kind, name, body),
        refresh=True,
    )
    return resp["result"] == "created"


def create(
    es: Client, settings: Settings, collection: str, *, kind: str, name: str, body: dict[str, Any]
) -> bool:
    """Write one item unless it exists; returns whether it was written."""
    try:
        es.index(
            index=ensure_index(es, settings),
            id=doc_id(collection, kind, name),
            document=_document(collection, kind, name, body),
            op_type="create",
            refresh=True,
        )
    except ConflictError:
        return False
    return True


def delete(es: Client, settings: Settings, collection: str, *, kind: str, name: str) -> bool:
    """Remove one item; returns whether it was there."""
    try:
        es.delete(index=index_name(settings), id=doc_id(collection, kind, name), refresh=True)
    except NotFoundError:
        return False
    return True


@retry(
    retry=retry_if_exception_type(ConflictError),
    stop=stop_after_attempt(25),
    wait=wait_random_exponential(multiplier=0.02, max=1.0),
    reraise=True,
)
def update(
    es: Client,
    settings: Settings,
    collection: str,
    *,
    kind: str,
    name: str,
    change: Callable[[Mapping[str, Any]], dict[str, Any] | None],
) -> dict[str, Any] | None:
    """Read-modify-write of one item under optimistic concurrency: `change` gets the fresh body and
    returns the body to write (None: leave it); on a conflict (another writer got there first) the read
    and `change` run again. Returns the body written, or None when the item is missing or `change`
    declined."""
    index, item = index_name(settings), doc_id(collection, kind, name)
    try:
        found = es.get(index=index, id=item)
    except NotFoundError:
        return None
    body = change(found["_source"]["body"])
    if body is None:
        return None
    es.index(
        index=index,
        id=item,
        document=_document(collection, kind, name, body),
        if_seq_no=found["_seq_no"],
        if_primary_term=found["_primary_term"],
        refresh=True,
    )
    return body


def delete_collection(es: Client, settings: Settings, collection: str) -> int:
    """Remove every item of `collection` (no `_delete_by_query` on every build: the ids, then a bulk)."""
    index = index_name(settings)
    resp = es.search(
        index=index,
        query={"term": {"collection": collection}},
        size=MAX_ITEMS,
        source=False,
        ignore_unavailable=True,
    )
    ids = [hit["_id"] for hit in resp["hits"]["hits"]]
    if ids:
        actions = ({"_op_type": "delete", "_index": index, "_id": i} for i in ids)
        bulk(es, actions, raise_on_error=False, refresh=True)
    return len(ids)
