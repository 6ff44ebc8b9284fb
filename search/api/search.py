"""Hybrid search over one collection, by text (JSON) or by example (multipart with an image/audio file)."""

from __future__ import annotations

import json
import time
from typing import Any

from flask import Blueprint, jsonify, request
from werkzeug.datastructures import FileStorage

from ingest.documents import parse_json
from search.api import json_object, principal, services
from search.errors import InvalidRequest
from search.metrics import SEARCH_LATENCY
from search.schema import SearchRequest
from search.security import add_media_urls

bp = Blueprint("search", __name__, url_prefix="/v1/collections/<name>")


def _parts() -> tuple[dict[str, Any], FileStorage | None]:
    """(search parameters, the uploaded example or None); nothing decoded yet."""
    if request.mimetype not in ("multipart/form-data", "application/x-www-form-urlencoded"):
        return json_object(), None
    try:
        params = parse_json(request.form.get("request") or "{}")
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"the `request` form field is not valid JSON: {exc.msg}") from None
    if not isinstance(params, dict):
        raise InvalidRequest("the `request` form field must be a JSON object")
    return params, request.files.get("file")


@bp.post("/search")
def search(name: str):
    started = time.perf_counter()
    svc = services()
    params, upload = _parts()
    req = SearchRequest.model_validate(params)
    who = principal()
    collection = svc.search.collection(name, profile=req.profile, principal=who)
    # Decoding is the costly step: only once the collection is known to exist.
    example = svc.search.decode_example(upload.read(), upload.filename, upload.mimetype) if upload else None
    result = svc.search.search(collection, req, example=example, principal=who)
    SEARCH_LATENCY.labels(mode=req.mode).observe(time.perf_counter() - started)
    return jsonify(add_media_urls(svc.settings, collection.name, result, who))
