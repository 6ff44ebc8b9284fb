"""Every error leaves as JSON `{"error": {status, type, message}}`; a 4xx when the client can fix it.

Our own errors all derive from `core.errors.MmsearchError` and carry their status, so one handler maps
them all; the others here are the framework's (HTTP, request validation) and Elasticsearch's.
"""

from __future__ import annotations

import logging

from elastic_transport import ConnectionError as ESConnectionError
from elasticsearch import ApiError, BadRequestError, NotFoundError
from flask import Flask, jsonify
from flask_limiter import RateLimitExceeded
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from core.access import DocumentNotFound
from core.errors import MmsearchError
from core.es import error_reason

log = logging.getLogger(__name__)


class InvalidRequest(MmsearchError):
    """A request the HTTP layer refuses before any work: unreadable body, bad query argument."""


def problem(status: int, kind: str, message: str):  # noqa: ANN201 - a Flask response tuple
    return jsonify(error={"status": status, "type": kind, "message": message}), status


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):  # noqa: ANN202
        message = f"{exc.name}: {exc.description}" if exc.description else exc.name
        return problem(exc.code or 500, exc.name.lower().replace(" ", "_"), message)

    @app.errorhandler(RateLimitExceeded)
    def _limited(exc: RateLimitExceeded):  # noqa: ANN202 - waiting one window always clears a fixed window
        body, status = problem(429, "too_many_requests", f"Too Many Requests: {exc.description}")
        return body, status, {"Retry-After": str(exc.limit.limit.get_expiry())}

    @app.errorhandler(MmsearchError)
    def _ours(exc: MmsearchError):  # noqa: ANN202 - every layer's errors carry their HTTP status
        if exc.status >= 500:
            log.warning("%s: %s", type(exc).__name__, exc)
        return problem(exc.status, type(exc).__name__, str(exc))

    @app.errorhandler(ValidationError)
    def _validation(exc: ValidationError):  # noqa: ANN202
        return problem(400, "invalid_request", _validation_message(exc))

    @app.errorhandler(NotFoundError)
    @app.errorhandler(DocumentNotFound)
    def _not_found(exc: NotFoundError | DocumentNotFound):  # noqa: ANN202 - one body: missing or hidden
        return problem(404, "not_found", "not found")

    @app.errorhandler(BadRequestError)
    def _bad_request(exc: BadRequestError):  # noqa: ANN202
        return problem(400, "bad_request", f"rejected by Elasticsearch: {error_reason(exc)}")

    @app.errorhandler(ESConnectionError)
    def _unavailable(exc: ESConnectionError):  # noqa: ANN202
        return problem(503, "unavailable", "Elasticsearch is unavailable; try again shortly")

    @app.errorhandler(ApiError)
    def _backend(exc: ApiError):  # noqa: ANN202
        log.exception("Elasticsearch error")
        return problem(502, "backend_error", f"Elasticsearch answered {exc.meta.status}: {error_reason(exc)}")

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):  # noqa: ANN202
        log.exception("unhandled error")
        return problem(500, "server_error", "internal error; it has been logged")
