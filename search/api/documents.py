"""JSON documents in (one, an array, or NDJSON), out, and deleted."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from ingest.bulk import index_many
from ingest.documents import from_json, parse_documents
from mmsearch import collections
from search.api import services
from search.errors import ApiProblem
from workers.tasks import enqueue

bp = Blueprint("documents", __name__, url_prefix="/v1/collections/<name>/documents")


def refresh_arg() -> bool:
    value = request.args.get("refresh", "false").lower()
    if value not in ("true", "false", "wait_for", ""):
        raise ApiProblem(400, "refresh must be true, false or wait_for")
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
    tasks = enqueue(collection.index, ids) if ids else 0
    status = 202 if not errors else 207
    return jsonify(indexed=len(ids), ids=ids, errors=errors, tasks=tasks, status="pending"), status


@bp.get("/<path:doc_id>")
def get(name: str, doc_id: str):
    svc = services()
    collection = collections.CACHE.get(svc.es, svc.settings, name)
    doc = svc.es.get(index=collection.alias, id=doc_id, source_excludes=["vectors", "search_stemmed"])
    return jsonify(id=doc["_id"], source=doc["_source"])


@bp.delete("/<path:doc_id>")
def delete(name: str, doc_id: str):
    svc = services()
    collection = collections.CACHE.get(svc.es, svc.settings, name)
    svc.es.delete(index=collection.index, id=doc_id, refresh=refresh_arg())
    return jsonify(deleted=doc_id)
