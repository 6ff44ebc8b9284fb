"""HTTP blueprints, one per resource, and what they share: the app's services and JSON body parsing."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from elasticsearch import Elasticsearch
from flask import current_app, request

from core.config import Settings
from ingest.documents import parse_json
from search.errors import InvalidRequest
from search.service import SearchService


@dataclass
class Services:
    """What the routes work with, built once per app (`create_app` takes each one, for tests)."""

    settings: Settings
    es: Elasticsearch
    search: SearchService


def services() -> Services:
    return current_app.extensions["mmsearch"]


def json_body(required: bool = True) -> Any:
    """The request's JSON, with a 4xx that says what is wrong (Flask's default is terse HTML)."""
    raw = request.get_data(cache=True)
    if not raw:
        if required:
            raise InvalidRequest("empty request body; expected JSON")
        return {}
    try:
        return parse_json(raw)
    except UnicodeDecodeError:
        raise InvalidRequest("request body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None


def json_object(required: bool = True) -> dict[str, Any]:
    body = json_body(required)
    if not isinstance(body, dict):
        raise InvalidRequest(f"expected a JSON object, got {type(body).__name__}")
    return body
