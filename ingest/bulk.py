"""Bulk writes in the `elasticsearch.helpers` streaming style (either engine), reporting each outcome."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from core.es import Client, error_reason, streaming_bulk


def index_many(
    es: Client, index: str, docs: Iterable[dict[str, Any]], refresh: str | bool = False
) -> tuple[list[str], list[dict[str, Any]]]:
    """Index documents (create or replace by `doc_id`); returns (ids written, errors)."""
    actions = ({"_op_type": "index", "_index": index, "_id": d["doc_id"], "_source": d} for d in docs)
    ok_ids: list[str] = []
    errors: list[dict[str, Any]] = []
    for ok, item in streaming_bulk(
        es,
        actions,
        chunk_size=500,
        max_chunk_bytes=20 * 1024 * 1024,
        raise_on_error=False,
        raise_on_exception=False,
        max_retries=3,
        initial_backoff=1,
    ):
        result = item["index"]
        if ok:
            ok_ids.append(result["_id"])
        else:
            errors.append({"id": result.get("_id"), "error": error_reason(result.get("error"))})
    if refresh and ok_ids:
        es.indices.refresh(index=index)
    return ok_ids, errors
