"""JSON documents in (one, an array, or NDJSON), out, and deleted."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request, send_file
from pydantic import BaseModel, ConfigDict, Field

from ingest.uploads import clean_filename
from search.api import json_object, principal, readers_value, refresh_arg, services
from search.errors import InvalidRequest
from search.schema import SearchRequest
from search.security import add_media_urls

bp = Blueprint("documents", __name__, url_prefix="/v1/collections/<name>/documents")


@bp.post("")
def add(name: str):
    """Valid documents land (202); with invalid ones beside them, 207 lists each by position and reason.

    With an `Idempotency-Key` header, documents sent without an id get ids derived from the key and their
    position, so a retried request replaces what its first try wrote instead of duplicating it."""
    indexed = services().ingest.add_documents(
        name,
        request.get_data(cache=True),
        request.content_type,
        principal=principal(),
        key=idempotency_key(),
        refresh=refresh_arg(),
    )
    status = 207 if indexed.errors else 202
    body = {"indexed": len(indexed.ids), "ids": indexed.ids, "errors": indexed.errors, "tasks": indexed.tasks}
    return jsonify(**body, status="pending"), status


def idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (0 < len(key) <= 255 and key.isprintable()):
        raise InvalidRequest("Idempotency-Key must be 1-255 printable characters")
    return key


@bp.get("/<doc_id>")
def get(name: str, doc_id: str):
    return jsonify(id=doc_id, source=services().search.document(name, doc_id, principal=principal()))


@bp.delete("/<doc_id>")
def delete(name: str, doc_id: str):
    """Delete one document, and its stored file when no other document references the same bytes."""
    blobs = services().ingest.delete_document(name, doc_id, principal=principal(), refresh=refresh_arg())
    return jsonify(deleted=doc_id, blobs_deleted=blobs)


class DeleteIn(BaseModel):
    """Documents to delete in one request (a crawl's deleted files)."""

    model_config = ConfigDict(extra="forbid")
    ids: list[str] = Field(max_length=10_000)


@bp.post("/_delete")
def delete_many(name: str):
    """`{"ids": [...]}`: delete many documents in one bulk request (a crawl's deleted files), then their
    blobs that nothing references any more. Ids not found are listed, not an error."""
    ids = DeleteIn.model_validate(json_object()).ids
    deleted = services().ingest.delete_documents(name, ids, principal=principal(), refresh=refresh_arg())
    return jsonify(deleted=deleted.deleted, not_found=deleted.not_found, blobs_deleted=deleted.blobs_deleted)


@bp.get("/<doc_id>/content")
def content(name: str, doc_id: str):
    """The original bytes; `conditional=True` gives ETag and HTTP range requests (audio seeking)."""
    stored = services().search.stored_file(name, doc_id, principal=principal())
    return send_file(
        stored.path,
        mimetype=stored.mime,
        conditional=True,
        download_name=clean_filename(stored.filename),  # files stored before names were cleaned
        max_age=86400,
    )


@bp.get("/<doc_id>/thumbnail")
def thumbnail(name: str, doc_id: str):
    data = services().search.thumbnail(name, doc_id, principal=principal())
    return Response(data, mimetype="image/jpeg", headers={"Cache-Control": "max-age=86400"})


@bp.get("/<doc_id>/similar")
def similar(name: str, doc_id: str):
    """Near-duplicates and similar items: the document's own vectors as kNN queries."""
    svc = services()
    who = principal()
    collection = svc.search.collection(name, principal=who)
    req = SearchRequest.model_validate(
        {
            "like": doc_id,
            "mode": "vector",
            "explain": True,
            "from": request.args.get("from", 0),
            "size": request.args.get("size", 10),
        }
    )
    result = svc.search.search(collection, req, principal=who)
    return jsonify(add_media_urls(svc.settings, collection.name, result, who))


class ReadersIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    readers: list[Any] = Field(max_length=1000)


@bp.put("/<doc_id>/readers")
def set_readers(name: str, doc_id: str):
    """`{"readers": [...]}`: who may read the document from now on, in place (no re-encode); its passages
    and, for a mail, its attachments follow."""
    readers = readers_value(ReadersIn.model_validate(json_object()).readers, "readers")
    updated = services().ingest.set_readers(
        name, doc_id, readers or [], principal=principal(), refresh=refresh_arg()
    )
    return jsonify(id=doc_id, readers=readers, updated=updated)
