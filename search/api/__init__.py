"""HTTP blueprints, one per resource, and what they share: the app's services and request parsing.

Blueprints translate HTTP into calls of the read path (`search.service`), the write path
(`ingest.service`) and the job runner, and their results into responses: they never touch the engine,
extract files or write in bulk themselves (`tests/test_layers.py` holds them to it)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from flask import current_app, g, request

from core.access import ADMIN, Principal, check_readers
from core.config import Settings
from ingest.documents import parse_json
from ingest.service import IngestService
from search.errors import InvalidRequest
from search.service import SearchService
from workers.jobs import ReencodeJobs


@dataclass
class Services:
    """What the routes work with, built once per app (`create_app` takes each one, for tests)."""

    settings: Settings
    search: SearchService
    ingest: IngestService
    jobs: ReencodeJobs


def services() -> Services:
    return current_app.extensions["mmsearch"]


def principal() -> Principal:
    """Whom the request acts for (set by `search.security`; `ADMIN` outside a request's checks)."""
    return getattr(g, "principal", ADMIN)


def readers_value(value: Any, where: str) -> list[str] | None:
    """A `readers` value a client sent (None: not given): a JSON list of reader terms, checked, or a
    400 naming the bad term."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise InvalidRequest(
            f"{where} must be a JSON list of reader terms (`*`, `user:<name>`, `group:<name>`)"
        )
    try:
        return check_readers(value)
    except ValueError as exc:
        raise InvalidRequest(f"{where}: {exc}") from None


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


def refresh_arg() -> bool:
    """`?refresh` of a write: true, wait_for or bare (`?refresh`) wait until it is searchable; false not."""
    value = request.args.get("refresh", "false").lower()
    if value not in ("true", "false", "wait_for", ""):
        raise InvalidRequest("refresh must be true, false or wait_for")
    return value in ("true", "wait_for", "")
