"""File uploads (multipart): type from the bytes, blob store by sha256, text indexed at once, models later."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, jsonify, request

from core.errors import MmsearchError
from ingest.blobrefs import release
from ingest.blobstore import BlobStore
from ingest.bulk import index_many
from ingest.documents import index_document, parse_json
from ingest.extract import extract
from mappings import collections
from media.filetypes import IngestError
from search.api import file_fields, services
from search.errors import InvalidRequest
from workers.tasks import enqueue

bp = Blueprint("files", __name__, url_prefix="/v1/collections/<name>/files")


class UploadRejected(MmsearchError):
    """Every file of an upload was refused; the status is the worst of theirs (e.g. 415 or 422)."""


@dataclass
class Ingested:
    """What one file gives: the outcome for the response, the index documents to write (none, the file's,
    its attachments'), and the bytes of each, stored only once its document is indexed."""

    outcome: dict[str, Any]
    docs: list[dict[str, Any]] = field(default_factory=list)
    data: dict[str, bytes] = field(default_factory=dict)


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


def ingest_bytes(
    collection: collections.Collection,
    data: bytes,
    filename: str | None,
    mime: str | None,
    metadata: dict[str, Any],
    dedup: bool = True,
    doc_id: str | None = None,
    origin: dict[str, Any] | None = None,
    attachments: bool = True,
) -> Ingested:
    """One file: extracted and indexed as a document (id: the client's, else its sha256 when
    deduplicating). An e-mail's attachments become child documents `<parent id>.<n>` with
    `metadata.parent_id`, extracted like uploads of their own (one level: attachments of an attached mail
    are counted, not indexed). The bytes are hashed here but stored only once the document is indexed
    (`_store_blobs`), so a blob release racing this upload sees the reference or finds the blob touched."""
    svc = services()
    outcome: dict[str, Any] = {"filename": filename, "size": len(data)}
    try:
        found = extract(data, filename, mime, svc.settings)
    except IngestError as exc:
        return Ingested({**outcome, "status": "rejected", "http_status": exc.status, "error": str(exc)})
    sha256 = hashlib.sha256(data).hexdigest()
    given = doc_id is not None
    doc_id = doc_id or (sha256 if dedup else None)
    outcome.update(sha256=sha256, mime=found.mime, modality=found.modality, mislabelled=found.mislabelled)
    if not given and doc_id and svc.es.exists(index=collection.alias, id=doc_id):
        return Ingested({**outcome, "id": doc_id, "status": "duplicate"})
    doc = index_document(
        collection.name,
        doc_id,
        title=found.title,
        content=found.content,
        modality=found.modality,
        metadata={**found.metadata, **metadata},
        source={
            "uri": f"blob:{sha256}",
            "filename": filename,
            "mime": found.mime,
            "size": len(data),
            "sha256": sha256,
            **(origin or {}),
        },
        pages=found.pages,
    )
    result = Ingested(outcome, [doc], {doc["doc_id"]: data})
    children = []
    for number, attachment in enumerate(found.attachments if attachments else [], start=1):
        child = ingest_bytes(
            collection,
            attachment.data,
            attachment.filename,
            attachment.mime,
            {"parent_id": doc["doc_id"], "attachment_number": number},
            dedup=False,
            doc_id=f"{doc['doc_id']}.{number}",
            attachments=False,
        )
        children.append(child.outcome)
        result.docs += child.docs
        result.data.update(child.data)
    outcome.update(id=doc["doc_id"], status="pending")
    if children:
        outcome["attachments"] = children
    return result


def _previous_blobs(collection: collections.Collection, ids: list[str]) -> dict[str, str | None]:
    """The blob each client-given id referenced before this upload replaces it (ids absent: not listed)."""
    if not ids:
        return {}
    found = services().es.mget(index=collection.alias, ids=ids, source_includes=["source.sha256"])
    return {d["_id"]: d["_source"].get("source", {}).get("sha256") for d in found["docs"] if d.get("found")}


def _store_blobs(
    ids: list[str], data: dict[str, bytes], previous: dict[str, str | None], outcomes: list[dict]
) -> None:
    """Store the bytes of the documents indexed, then release the blobs of the versions they replaced."""
    svc = services()
    store = BlobStore.from_settings(svc.settings)
    new_sha = {doc_id: store.put(data[doc_id]).sha256 for doc_id in ids}
    for outcome in outcomes:
        if outcome.get("id") in previous:
            outcome["replaced"] = True
    release(svc.es, svc.settings, (sha for i, sha in previous.items() if i in new_sha and sha != new_sha[i]))


@bp.post("")
def upload(name: str):
    svc = services()
    collection = collections.CACHE.get(svc.es, svc.settings, name)
    files = request.files.getlist("file") or request.files.getlist("files")
    if not files:
        raise InvalidRequest("no files: send multipart/form-data with one or more `file` parts")
    allow_duplicates = request.args.get("duplicates", "reject") == "allow"
    count = len(files)
    given_ids = file_fields.ids_for(count)
    per_file = zip(files, _metadata_for(count), given_ids, file_fields.sources_for(count), strict=True)
    outcomes, docs, data = [], [], {}
    for upload_, metadata, given_id, origin in per_file:
        one = ingest_bytes(
            collection,
            upload_.read(),
            upload_.filename,
            upload_.mimetype,
            metadata,
            dedup=not allow_duplicates,
            doc_id=given_id,
            origin=origin,
        )
        outcomes.append(one.outcome)
        docs += one.docs
        data.update(one.data)
    previous = _previous_blobs(collection, [i for i in given_ids if i])
    ids, errors = index_many(
        svc.es, collection.index, docs, refresh=request.args.get("refresh") in ("true", "wait_for")
    )
    _store_blobs(ids, data, previous, outcomes)
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
