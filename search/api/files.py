"""File uploads (multipart): type from the bytes, blob store by sha256, text indexed at once, models later."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, jsonify, request
from werkzeug.datastructures import FileStorage

from core.errors import MmsearchError
from ingest.blobstore import BlobStore
from ingest.bulk import index_many
from ingest.documents import index_document, parse_json
from ingest.extract import extract
from mappings import collections
from media.filetypes import IngestError
from search.api import services
from search.errors import InvalidRequest
from workers.tasks import enqueue

bp = Blueprint("files", __name__, url_prefix="/v1/collections/<name>/files")


class UploadRejected(MmsearchError):
    """Every file of an upload was refused; the status is the worst of theirs (e.g. 415 or 422)."""


def _metadata_for(count: int) -> list[dict[str, Any]]:
    """The `metadata` form field: one JSON object for every file, or a JSON list with one per file."""
    raw = request.form.get("metadata")
    if not raw:
        return [{} for _ in range(count)]
    try:
        value = parse_json(raw)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"metadata is not valid JSON: {exc.msg}") from None
    if isinstance(value, dict):
        return [value for _ in range(count)]
    if isinstance(value, list) and len(value) == count and all(isinstance(v, dict) for v in value):
        return value
    raise InvalidRequest(f"metadata must be a JSON object or a list of {count} objects, one per file")


def ingest_file(
    collection: collections.Collection, upload: FileStorage, metadata: dict[str, Any], allow_duplicates: bool
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(outcome for the response, index document or None when nothing is to be written)."""
    svc = services()
    data = upload.read()
    outcome: dict[str, Any] = {"filename": upload.filename, "size": len(data)}
    try:
        found = extract(data, upload.filename, upload.mimetype, svc.settings)
    except IngestError as exc:
        return {**outcome, "status": "rejected", "http_status": exc.status, "error": str(exc)}, None
    stored = BlobStore.from_settings(svc.settings).put(data)
    doc_id = None if allow_duplicates else stored.sha256
    outcome.update(
        sha256=stored.sha256, mime=found.mime, modality=found.modality, mislabelled=found.mislabelled
    )
    if doc_id and svc.es.exists(index=collection.alias, id=doc_id):
        return {**outcome, "id": doc_id, "status": "duplicate"}, None
    doc = index_document(
        collection.name,
        doc_id,
        title=found.title,
        content=found.content,
        modality=found.modality,
        metadata={**found.metadata, **metadata},
        pages=found.pages,
        source={
            "uri": f"blob:{stored.sha256}",
            "filename": upload.filename,
            "mime": found.mime,
            "size": stored.size,
            "sha256": stored.sha256,
        },
    )
    return {**outcome, "id": doc["doc_id"], "status": "pending"}, doc


@bp.post("")
def upload(name: str):
    svc = services()
    collection = collections.CACHE.get(svc.es, svc.settings, name)
    files = request.files.getlist("file") or request.files.getlist("files")
    if not files:
        raise InvalidRequest("no files: send multipart/form-data with one or more `file` parts")
    allow_duplicates = request.args.get("duplicates", "reject") == "allow"
    outcomes, docs = [], []
    for upload_, metadata in zip(files, _metadata_for(len(files)), strict=True):
        outcome, doc = ingest_file(collection, upload_, metadata, allow_duplicates)
        outcomes.append(outcome)
        if doc:
            docs.append(doc)
    ids, errors = index_many(
        svc.es, collection.index, docs, refresh=request.args.get("refresh") in ("true", "wait_for")
    )
    for error in errors:
        outcomes.append(
            {"id": error["id"], "status": "rejected", "http_status": 500, "error": error["error"]}
        )
    modality = {doc["doc_id"]: doc["modality"] for doc in docs}
    tasks = enqueue(collection.index, ((doc_id, modality[doc_id]) for doc_id in ids))
    rejected = [o for o in outcomes if o["status"] == "rejected"]
    if rejected and len(rejected) == len(outcomes):
        status = max(o["http_status"] for o in rejected)
        message = "; ".join(f"{o['filename']}: {o['error']}" for o in rejected)
        raise UploadRejected(message, status=status)
    return jsonify(files=outcomes, tasks=tasks), 207 if rejected else 202
