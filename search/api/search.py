"""Hybrid search over one collection."""

from __future__ import annotations

import time

from flask import Blueprint, jsonify

from mmsearch import collections
from search.api import json_object, services
from search.metrics import SEARCH_LATENCY
from search.schema import SearchRequest

bp = Blueprint("search", __name__, url_prefix="/v1/collections/<name>")


@bp.post("/search")
def search(name: str):
    started = time.perf_counter()
    svc = services()
    req = SearchRequest.model_validate(json_object())
    collection = collections.CACHE.get(svc.es, svc.settings, name)
    result = svc.search.search(collection, req)
    SEARCH_LATENCY.labels(mode=req.mode).observe(time.perf_counter() - started)
    return jsonify(result)
