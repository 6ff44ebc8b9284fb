"""Hybrid search over one collection, by text (JSON) or by example (multipart with an image/audio file)."""

from __future__ import annotations

import json
import time
from typing import Any

from flask import Blueprint, jsonify, request
from werkzeug.datastructures import FileStorage

from ingest.documents import parse_json
from mappings import collections
from media.decode import load_audio, load_image
from media.filetypes import UnsupportedType, detect
from search.api import json_object, services
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


def _decode(upload: FileStorage) -> tuple[str, Any]:
    """(kind, decoded example): the costly step, so it runs only once the collection is known."""
    data = upload.read()
    kind = detect(data, upload.filename, upload.mimetype).modality
    settings = services().settings
    if kind == "image":
        return "image", load_image(data, max_pixels=settings.max_image_pixels)
    if kind == "audio":
        return "audio", load_audio(data, max_seconds=min(settings.max_audio_seconds, 600))
    raise UnsupportedType(f"query by example takes an image or an audio clip, not {kind}")


@bp.post("/search")
def search(name: str):
    started = time.perf_counter()
    svc = services()
    params, upload = _parts()
    req = SearchRequest.model_validate(params)
    collection = collections.CACHE.get(svc.es, svc.settings, name)
    if req.profile and req.profile not in collection.profiles:
        # Another API process may have saved it within the cache's TTL.
        collection = collections.CACHE.get(svc.es, svc.settings, name, fresh=True)
    example = _decode(upload) if upload is not None else None
    result = svc.search.search(collection, req, example=example)
    SEARCH_LATENCY.labels(mode=req.mode).observe(time.perf_counter() - started)
    return jsonify(add_media_urls(svc.settings, collection.name, result))
