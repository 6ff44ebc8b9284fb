"""The OpenAPI 3.1 description of the API, generated from the app's routes and the pydantic models that
validate its requests (and describe its responses), served at `/openapi.json` with a docs page at `/docs`.

Paths and methods come from Flask's URL map; what each endpoint takes and answers is declared once in
`OPERATIONS`, by endpoint name. A route missing from it fails `tests/test_openapi.py`, so the description
cannot silently fall behind the app.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import swagger_ui_bundle
from flask import Blueprint, Flask, Response, current_app, jsonify, send_from_directory
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

import search.responses as r
from ingest.documents import DocumentIn
from mappings.catalog import NAME_PATTERN
from search.api.collections import CollectionIn
from search.api.documents import DeleteIn, ReadersIn
from search.api.jobs import ReencodeIn
from search.api.profiles import PROFILE_NAME
from search.api.ui import STATIC
from search.schema import Profile, SearchRequest
from search.security import METRICS_ENDPOINT, required_scope

REF = "#/components/schemas/{model}"
NOT_DESCRIBED = {"static", "ui.static", "openapi.asset"}  # files, not API operations


@dataclass(frozen=True)
class Op:
    summary: str
    response: type[BaseModel] | dict[str, Any]  # a model (JSON), or a raw `content` object
    body: type[BaseModel] | str | None = None  # a model (JSON), or a key of BODIES
    status: tuple[int, ...] = (200,)
    query: dict[str, dict[str, Any]] = field(default_factory=dict)
    tag: str = "collections"


REFRESH = {"refresh": {"type": "string", "enum": ["true", "false", "wait_for"]}}
BINARY = {"type": "string", "contentMediaType": "application/octet-stream"}
SIGNED = {"expires": {"type": "string"}, "p": {"type": "string"}, "sig": {"type": "string"}}

OPERATIONS: dict[str, Op] = {
    "health.healthz": Op("Liveness", r.Health, tag="health"),
    "health.readyz": Op("Readiness: Client and Redis reachable", r.Ready, status=(200, 503), tag="health"),
    "health.metrics": Op("Prometheus metrics", {"text/plain": {"schema": {"type": "string"}}}, tag="health"),
    "identity.whoami": Op("The caller's principal and scope", r.WhoAmI, tag="health"),
    "ui.index": Op("The search page", {"text/html": {"schema": {"type": "string"}}}, tag="pages"),
    "openapi.description": Op(
        "This description", {"application/json": {"schema": {"type": "object"}}}, tag="pages"
    ),
    "openapi.docs": Op("The API docs page", {"text/html": {"schema": {"type": "string"}}}, tag="pages"),
    "collections.create": Op("Create a collection", r.CollectionOut, CollectionIn, (201,)),
    "collections.list_all": Op("List collections", r.CollectionList),
    "collections.show": Op("A collection: encoders, status counts, profiles, jobs", r.CollectionOut),
    "collections.delete": Op("Delete a collection and its indices", r.CollectionDeleted),
    "collections.requeue": Op(
        "Send stale pending (or failed) documents to the workers again",
        r.Requeued,
        query={
            "status": {"type": "string", "enum": ["pending", "failed"]},
            "older_than": {"type": "integer", "minimum": 0},
        },
    ),
    "documents.add": Op(
        "Index JSON documents (one, an array, or NDJSON)", r.DocumentsAdded, "documents", (202, 207), REFRESH
    ),
    "documents.get": Op("A document", r.DocumentOut, tag="documents"),
    "documents.delete": Op("Delete a document", r.Deleted, query=REFRESH, tag="documents"),
    "documents.delete_many": Op(
        "Delete many documents by id", r.DeletedMany, DeleteIn, query=REFRESH, tag="documents"
    ),
    "documents.set_readers": Op(
        "Replace who may read a document (no re-encode; a mail's attachments follow)",
        r.ReadersSet,
        ReadersIn,
        query=REFRESH,
        tag="documents",
    ),
    "manifest.manifest": Op(
        "What a collection holds of the files crawled from one folder (NDJSON)",
        {"application/x-ndjson": {"schema": {"type": "string"}}},
        query={"root": {"type": "string", "minLength": 1}},
        tag="documents",
    ),
    "documents.content": Op(
        "The stored file (ranges, ETag); non-media types as a download",
        {"*/*": {"schema": BINARY}},
        status=(200, 206, 304),
        query=SIGNED,
        tag="documents",
    ),
    "documents.thumbnail": Op(
        "A JPEG thumbnail of an image document",
        {"image/jpeg": {"schema": BINARY}},
        query=SIGNED,
        tag="documents",
    ),
    "documents.similar": Op(
        "Near-duplicates and similar items",
        r.SearchResponse,
        query={
            "from": {"type": "integer", "minimum": 0, "maximum": 10_000},
            "size": {"type": "integer", "minimum": 1, "maximum": 100},
        },
        tag="search",
    ),
    "files.upload": Op(
        "Upload files (multipart)",
        r.FilesUploaded,
        "files",
        (202, 207),
        {**REFRESH, "duplicates": {"type": "string", "enum": ["reject", "allow"]}},
        tag="documents",
    ),
    "search.search": Op(
        "Hybrid search, by text (JSON) or by example (multipart); `partial` says when shards were "
        "missing or timed out (503 instead with `allow_partial: false`)",
        r.SearchResponse,
        "search",
    ),
    "profiles.list_profiles": Op("Search profiles", r.ProfileList, tag="profiles"),
    "profiles.show": Op("A search profile", r.ProfileOut, tag="profiles"),
    "profiles.put": Op("Save a search profile", r.ProfileOut, Profile, (200, 201), tag="profiles"),
    "profiles.delete": Op("Delete a search profile", r.Deleted, tag="profiles"),
    "jobs.start": Op("Start a re-encode job", r.Job, ReencodeIn, (202,), tag="jobs"),
    "jobs.list_all": Op("Re-encode jobs", r.JobList, tag="jobs"),
    "jobs.show": Op("A re-encode job with its progress", r.Job, tag="jobs"),
    "jobs.cancel": Op("Cancel a job before its alias switch", r.Job, tag="jobs"),
}

PATH_PARAMS = {
    "name": {"type": "string", "pattern": NAME_PATTERN.pattern},
    "profile": {"type": "string", "pattern": PROFILE_NAME.pattern},
    "doc_id": {"type": "string", "minLength": 1, "maxLength": 512, "pattern": r"^[^\x00-\x1f/]+$"},
    "job_id": {"type": "string", "minLength": 1, "maxLength": 64},
}


def _bodies(ref: dict[type[BaseModel], dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The request bodies that are not one JSON model."""
    return {
        "documents": {
            "application/json": {
                "schema": {"anyOf": [ref[DocumentIn], {"type": "array", "items": ref[DocumentIn]}]}
            },
            "application/x-ndjson": {
                "schema": {"type": "string", "description": "one document object a line"}
            },
        },
        "files": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "array", "items": BINARY},
                        "metadata": {
                            "type": "string",
                            "description": "a JSON object, or a list of one per file",
                        },
                        "ids": {
                            "type": "string",
                            "description": "a JSON list: a document id (or null) per file; an id replaces",
                        },
                        "sources": {
                            "type": "string",
                            "description": "a JSON list: {root, path, mtime_ns} (or null) per file",
                        },
                        "readers": {
                            "type": "string",
                            "description": "JSON: reader terms for every file, or a list (or null) per file",
                        },
                    },
                }
            }
        },
        "search": {
            "application/json": {"schema": ref[SearchRequest]},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {**BINARY, "description": "an image or audio clip to search by"},
                        "request": {"type": "string", "description": "SearchRequest as JSON"},
                    },
                }
            },
        },
    }


def _models() -> list[type[BaseModel]]:
    found = {r.ErrorResponse, DocumentIn, SearchRequest}
    for op in OPERATIONS.values():
        for item in (op.response, op.body):
            if isinstance(item, type) and issubclass(item, BaseModel):
                found.add(item)
    return sorted(found, key=lambda m: m.__name__)


def _operation(
    endpoint: str, op: Op, method: str, params: list[str], *, ref: dict, bodies: dict
) -> dict[str, Any]:
    json_response = isinstance(op.response, type)
    content = {"application/json": {"schema": ref[op.response]}} if json_response else op.response
    out: dict[str, Any] = {
        "operationId": endpoint.replace(".", "_"),
        "summary": op.summary,
        "tags": [op.tag],
        "parameters": [
            {"name": p, "in": "path", "required": True, "schema": PATH_PARAMS.get(p, {"type": "string"})}
            for p in params
        ]
        + [{"name": q, "in": "query", "required": False, "schema": s} for q, s in op.query.items()],
        "responses": {
            **{str(code): {"description": "success", "content": content} for code in op.status},
            "default": {
                "description": "an error",
                "content": {"application/json": {"schema": ref[r.ErrorResponse]}},
            },
        },
    }
    if op.body is not None:
        content_in = (
            bodies[op.body] if isinstance(op.body, str) else {"application/json": {"schema": ref[op.body]}}
        )
        out["requestBody"] = {"required": True, "content": content_in}
    if endpoint.split(".")[0] not in ("health", "ui", "openapi"):
        out["security"] = [{"bearer": []}]
        out["x-scope"] = required_scope(method, endpoint)
    elif endpoint == METRICS_ENDPOINT:
        out["security"] = [{"bearer": []}]  # with keys set: a key of scope MMSEARCH_METRICS_SCOPE
    return out


def describe(app: Flask) -> dict[str, Any]:
    models = _models()
    refs, defs = models_json_schema([(m, "validation") for m in models], ref_template=REF)
    ref = {model: refs[(model, "validation")] for model in models}
    bodies = _bodies(ref)
    paths: dict[str, dict[str, Any]] = {}
    for rule in app.url_map.iter_rules():
        op = OPERATIONS.get(rule.endpoint)
        if op is None:
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            paths.setdefault(path, {})[method.lower()] = _operation(
                rule.endpoint, op, method, list(rule.arguments), ref=ref, bodies=bodies
            )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "mmsearch",
            "version": "1",
            "description": "Multimodal hybrid search on Elasticsearch. Every error is "
            '`{"error": {"status", "type", "message"}}`. With API keys configured, /v1 calls need '
            "`Authorization: Bearer <key>` of the scope in `x-scope` (read < write < admin).",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def undescribed(app: Flask) -> list[str]:
    """Endpoints of the app that the description lacks (a test keeps this empty)."""
    return sorted({rule.endpoint for rule in app.url_map.iter_rules()} - set(OPERATIONS) - NOT_DESCRIBED)


bp = Blueprint("openapi", __name__)
SWAGGER_DIR = swagger_ui_bundle.swagger_ui_path
DOCS_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


@bp.get("/openapi.json")
def description():  # noqa: ANN201 - a Flask response
    cached = current_app.extensions.setdefault("mmsearch.openapi", describe(current_app))
    return jsonify(cached)


@bp.get("/docs")
def docs() -> Response:
    """Swagger UI from the `swagger-ui-bundle` wheel: no CDN, works offline."""
    response = send_from_directory(STATIC, "docs.html", max_age=0)
    response.headers["Content-Security-Policy"] = DOCS_CSP
    return response


@bp.get("/docs/assets/<path:filename>")
def asset(filename: str) -> Response:
    return send_from_directory(SWAGGER_DIR, filename, max_age=3600)


def install(app: Flask) -> None:
    app.register_blueprint(bp)
