"""JSON documents in (one, an array, or NDJSON), out, and deleted."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request, send_file
from pydantic import BaseModel, ConfigDict, Field

from core.errors import NotFound
from core.es import streaming_bulk
from ingest.blobrefs import release
from ingest.blobstore import BlobStore
from ingest.bulk import index_many
from ingest.documents import from_json, parse_documents
from mappings import collections
from search.api import json_object, services
from search.errors import InvalidRequest
from search.schema import SearchRequest
from search.security import add_media_urls
from workers.tasks import enqueue

bp = Blueprint("documents", __name__, url_prefix="/v1/collections/<name>/documents")


def refresh_arg() -> bool:
    value = request.args.get("refresh", "false").lower()
    if value not in ("true", "false", "wait_for", ""):
        raise InvalidRequest("refresh must be true, false or wait_for")
    return value in ("true", "wait_for", "")


@bp.post("")
def add(name: str):
    svc = services()
    collection = collections.CACHE.get(svc.es, svc.settings, name)
    docs = parse_documents(
        request.get_data(cache=True),
        request.content_type,
        svc.settings.max_documents_per_request,
        svc.settings.max_text_chars,
    )
    ids, errors = index_many(
        svc.es, collection.index, (from_json(collection.name, d) for d in docs), refresh=refresh_arg()
    )
    tasks = enqueue(collection.index, ((doc_id, "text") for doc_id in ids))
    status = 202 if not errors else 207
    return jsonify(indexed=len(ids), ids=ids, errors=errors, tasks=tasks, status="pending"), status


@bp.get("/<doc_id>")
def get(name: str, doc_id: str):
    svc = services()
    collection = collections.CACHE.get(svc.es, svc.settings, name)
    doc = svc.es.get(index=collection.alias, id=doc_id, source_excludes=["vectors", "search_stemmed"])
    return jsonify(id=doc["_id"], source=doc["_source"])


@bp.delete("/<doc_id>")
def delete(name: str, doc_id: str):
    """Delete one document, and its stored file when no other document references the same bytes."""
    refresh = refresh_arg()
    svc = services()
    collection = collections.CACHE.get(svc.es, svc.settings, name)
    source = svc.es.get(index=collection.alias, id=doc_id, source_includes=["source.sha256"])["_source"]
    svc.es.delete(index=collection.index, id=doc_id, refresh=refresh)
    blobs = release(svc.es, svc.settings, [source.get("source", {}).get("sha256")])
    return jsonify(deleted=doc_id, blobs_deleted=len(blobs))


class DeleteIn(BaseModel):
    """Documents to delete in one request (a crawl's deleted files)."""

    model_config = ConfigDict(extra="forbid")
    ids: list[str] = Field(max_length=10_000)


@bp.post("/_delete")
def delete_many(name: str):
    """`{"ids": [...]}`: delete many documents in one bulk request (a crawl's deleted files), then their
    blobs that nothing references any more. Ids not found are listed, not an error."""
    ids = [i for i in DeleteIn.model_validate(json_object()).ids if i]
    svc = services()
    collection = collections.CACHE.get(svc.es, svc.settings, name)
    found = (
        svc.es.mget(index=collection.alias, ids=ids, source_includes=["source.sha256"])["docs"] if ids else []
    )
    shas = [d["_source"].get("source", {}).get("sha256") for d in found if d.get("found")]
    actions = ({"_op_type": "delete", "_index": collection.index, "_id": i} for i in ids)
    deleted, missing = [], []
    for ok, item in streaming_bulk(svc.es, actions, raise_on_error=False, refresh=refresh_arg()):
        (deleted if ok else missing).append(item["delete"]["_id"])
    blobs = release(svc.es, svc.settings, shas)
    return jsonify(deleted=deleted, not_found=missing, blobs_deleted=len(blobs))


def _blob_source(name: str, doc_id: str) -> dict:
    svc = services()
    collection = collections.CACHE.get(svc.es, svc.settings, name)
    source = svc.es.get(index=collection.alias, id=doc_id, source_includes=["source", "modality"])["_source"]
    if not source.get("source", {}).get("sha256"):
        raise NotFound(f"document {doc_id!r} has no stored file (it was ingested as JSON text)")
    return source


@bp.get("/<doc_id>/content")
def content(name: str, doc_id: str):
    """The original bytes; `conditional=True` gives ETag and HTTP range requests (audio seeking)."""
    source = _blob_source(name, doc_id)
    meta = source["source"]
    path = BlobStore.from_settings(services().settings).path(meta["sha256"])
    if not path.exists():
        raise NotFound(f"the stored file of document {doc_id!r} is missing from the blob store")
    return send_file(
        path, mimetype=meta.get("mime"), conditional=True, download_name=meta.get("filename"), max_age=86400
    )


@bp.get("/<doc_id>/thumbnail")
def thumbnail(name: str, doc_id: str):
    source = _blob_source(name, doc_id)
    if source.get("modality") != "image":
        raise NotFound(f"document {doc_id!r} is {source.get('modality')}, thumbnails exist for images")
    settings = services().settings
    data = BlobStore.from_settings(settings).thumbnail(source["source"]["sha256"], settings.thumbnail_side)
    return Response(data, mimetype="image/jpeg", headers={"Cache-Control": "max-age=86400"})


@bp.get("/<doc_id>/similar")
def similar(name: str, doc_id: str):
    """Near-duplicates and similar items: the document's own vectors as kNN queries."""
    svc = services()
    collection = collections.CACHE.get(svc.es, svc.settings, name)
    req = SearchRequest.model_validate(
        {
            "like": doc_id,
            "mode": "vector",
            "explain": True,
            "from": request.args.get("from", 0),
            "size": request.args.get("size", 10),
        }
    )
    return jsonify(add_media_urls(svc.settings, collection.name, svc.search.search(collection, req)))
