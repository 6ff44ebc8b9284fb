"""Every error leaves as JSON `{"error": {status, type, message}}`; a 4xx when the client can fix it."""

from __future__ import annotations

import logging

from elastic_transport import ConnectionError as ESConnectionError
from elasticsearch import ApiError, BadRequestError, NotFoundError
from flask import Flask, jsonify
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from core.es import error_reason
from ingest.documents import PayloadError
from mappings.collections import CollectionError
from media.filetypes import IngestError
from search.service import SearchError

log = logging.getLogger(__name__)


class ApiProblem(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


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

    @app.errorhandler(ApiProblem)
    @app.errorhandler(PayloadError)
    @app.errorhandler(IngestError)
    @app.errorhandler(CollectionError)
    @app.errorhandler(SearchError)
    def _client(exc: Exception):  # noqa: ANN202 - our own errors carry their HTTP status
        status = getattr(exc, "status", None) or getattr(exc, "http_status", 400)
        return problem(status, type(exc).__name__, str(exc))

    @app.errorhandler(ValidationError)
    def _validation(exc: ValidationError):  # noqa: ANN202
        return problem(400, "invalid_request", _validation_message(exc))

    @app.errorhandler(NotFoundError)
    def _not_found(exc: NotFoundError):  # noqa: ANN202
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
