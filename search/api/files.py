"""File uploads (multipart): type from the bytes, blob store by sha256, text indexed at once, models later."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, jsonify, request
from pydantic import ValidationError

from ingest.documents import check_metadata, parse_json
from ingest.uploads import Upload, clean_filename
from search.api import file_fields, principal, refresh_arg, services
from search.errors import InvalidRequest

bp = Blueprint("files", __name__, url_prefix="/v1/collections/<name>/files")


def _metadata_for(count: int) -> list[dict[str, Any]]:
    """The `metadata` form field: one JSON object for every file, or a JSON list with one per file, each
    under the same rules as a JSON document's metadata."""
    raw = request.form.get("metadata")
    if not raw:
        return [{} for _ in range(count)]
    try:
        value = parse_json(raw)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"metadata is not valid JSON: {exc.msg}") from None
    if isinstance(value, dict):
        value = [value] * count
    if not (isinstance(value, list) and len(value) == count and all(isinstance(v, dict) for v in value)):
        raise InvalidRequest(f"metadata must be a JSON object or a list of {count} objects, one per file")
    try:
        return [check_metadata(one) for one in value]
    except (ValueError, ValidationError) as exc:
        raise InvalidRequest(f"metadata: {exc}") from None


@bp.post("")
def upload(name: str):
    files = request.files.getlist("file") or request.files.getlist("files")
    if not files:
        raise InvalidRequest("no files: send multipart/form-data with one or more `file` parts")
    count = len(files)
    per_file = zip(
        files,
        _metadata_for(count),
        file_fields.ids_for(count),
        file_fields.sources_for(count),
        file_fields.readers_for(count),
        strict=True,
    )
    uploads = [
        Upload(
            part.read(),
            clean_filename(part.filename),
            part.mimetype,
            metadata,
            doc_id=doc_id,
            origin=origin,
            readers=readers,
        )
        for part, metadata, doc_id, origin, readers in per_file
    ]
    indexed = services().ingest.add_files(
        name,
        uploads,
        principal=principal(),
        dedup=request.args.get("duplicates", "reject") != "allow",
        refresh=refresh_arg(),
    )
    return jsonify(files=indexed.files, tasks=indexed.tasks), 207 if indexed.partial else 202
