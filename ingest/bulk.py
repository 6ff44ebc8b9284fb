"""Bulk writes in the `elasticsearch.helpers` streaming style (either engine), reporting each outcome.

A write the cluster cannot take yet is retried, not reported as the document's fault: while a node is
lost, the items routed to its shards fail with 503 (`unavailable_shards_exception`) until a replica is
promoted or the node is back, and an overloaded node answers 429. Those items are sent again with
backoff for `WRITE_RETRY_S`; what still fails then makes the whole request a 503 (`Unavailable`), which a
client may resend as it is (ids are fixed or content-derived, so a resend replaces, never duplicates).
Each attempt waits at most `SHARD_WAIT` for a primary, so a request stays under the API's worker timeout.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from core.errors import Unavailable
from core.es import Client, engine_of, error_reason, streaming_bulk

WRITE_RETRY_S = 60.0
SHARD_WAIT = "15s"  # the bulk `timeout`: how long one attempt waits for an unavailable primary


class WritesUnavailable(Unavailable):
    """Some documents could not be written while shards were unavailable; `written` names those that
    were, so the caller can finish their part (blobs, enqueueing) before answering 503."""

    def __init__(self, message: str, written: list[str]) -> None:
        super().__init__(message)
        self.written = written


def shard_wait(es: Client) -> dict[str, Any]:
    """The bulk's `timeout` on Elasticsearch; opensearch-py takes a `timeout` keyword for the socket's
    own (and refuses "15s"), so OpenSearch keeps its default wait (a minute)."""
    return {} if engine_of(es).is_opensearch else {"timeout": SHARD_WAIT}


def retriable(status: Any) -> bool:
    """An item refused for the cluster's state, not the document's content (no HTTP status: the
    connection to every node failed)."""
    return not isinstance(status, int) or status in (429, 503)


def _attempt(
    es: Client, index: str, docs: Iterable[dict[str, Any]]
) -> tuple[list[str], list[dict[str, Any]], dict[str, str]]:
    """One bulk pass: (ids written, the documents' own errors, id -> reason of items worth retrying)."""
    actions = ({"_op_type": "index", "_index": index, "_id": d["doc_id"], "_source": d} for d in docs)
    ok_ids: list[str] = []
    errors: list[dict[str, Any]] = []
    again: dict[str, str] = {}
    for ok, item in streaming_bulk(
        es,
        actions,
        chunk_size=500,
        max_chunk_bytes=20 * 1024 * 1024,
        raise_on_error=False,
        raise_on_exception=False,
        max_retries=3,
        initial_backoff=1,
        **shard_wait(es),
    ):
        result = item["index"]
        if ok:
            ok_ids.append(result["_id"])
        elif retriable(result.get("status")):
            again[result.get("_id")] = error_reason(result.get("error"))
        else:
            errors.append({"id": result.get("_id"), "error": error_reason(result.get("error"))})
    return ok_ids, errors, again


def index_many(
    es: Client, index: str, docs: Iterable[dict[str, Any]], refresh: str | bool = False
) -> tuple[list[str], list[dict[str, Any]]]:
    """Index documents (create or replace by `doc_id`); returns (ids written, errors). Raises
    `WritesUnavailable` when shards stay unavailable for `WRITE_RETRY_S` (what was written stays)."""
    todo = {d["doc_id"]: d for d in docs}
    ok_ids: list[str] = []
    errors: list[dict[str, Any]] = []
    deadline, backoff = time.monotonic() + WRITE_RETRY_S, 1.0
    while todo:
        written, failed, again = _attempt(es, index, todo.values())
        ok_ids += written
        errors += failed
        if not again:
            break
        if time.monotonic() + backoff > deadline:
            reason = next(iter(again.values()))
            raise WritesUnavailable(
                f"{len(again)} documents could not be written: shards of the collection are unavailable "
                f"({reason}); send the request again later",
                ok_ids,
            )
        time.sleep(backoff)
        backoff = min(backoff * 2, 10.0)
        todo = {doc_id: todo[doc_id] for doc_id in again}
    if refresh and ok_ids:
        es.indices.refresh(index=index)
    return ok_ids, errors
