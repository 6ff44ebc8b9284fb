"""HTTP blueprints, one per resource."""

from __future__ import annotations

import json
from typing import Any

from flask import current_app, request

from ingest.documents import parse_json
from search.errors import ApiProblem


def services() -> Any:
    return current_app.extensions["mmsearch"]


def json_body(required: bool = True) -> Any:
    """The request's JSON, with a 4xx that says what is wrong (Flask's default is terse HTML)."""
    raw = request.get_data(cache=True)
    if not raw:
        if required:
            raise ApiProblem(400, "empty request body; expected JSON")
        return {}
    try:
        return parse_json(raw)
    except UnicodeDecodeError:
        raise ApiProblem(400, "request body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise ApiProblem(400, f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None


def json_object(required: bool = True) -> dict[str, Any]:
    body = json_body(required)
    if not isinstance(body, dict):
        raise ApiProblem(400, f"expected a JSON object, got {type(body).__name__}")
    return body
