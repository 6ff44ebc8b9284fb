"""The Flask app without services: routing, request validation and error mapping, in milliseconds.

The app gets a real Elasticsearch client pointed at a closed port, so whatever reaches the cluster fails
the way an outage does (a 503), and everything refused before that proves it never needed the cluster.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from elasticsearch import Elasticsearch
from flask import Flask
from flask.testing import FlaskClient

from core.config import Settings, env_names
from core.errors import MmsearchError
from ingest.documents import PayloadError
from mappings.catalog import CollectionExists, CollectionNotFound
from media.decode import MediaError
from media.filetypes import EmptyFile, IngestError, UnsupportedType
from search.app import create_app
from search.service import SearchError
from workers.reencode import JobNotFound, ReencodeConflict, ReencodeError

MAX_BODY = 64 * 1024


def closed_port() -> int:
    """A port nothing listens on: bound once to get a free number, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sectioned(**fields: object) -> Settings:
    """Settings from flat field names (each sent to its section), the rest from the environment."""
    section_of = {name: section for section, name, _ in env_names()}
    by_section: dict[str, dict[str, object]] = {}
    for name, value in fields.items():
        by_section.setdefault(section_of[name], {})[name] = value
    return Settings(**{s: Settings.model_fields[s].annotation(**v) for s, v in by_section.items()})


def build(**overrides: object) -> Flask:
    """The app with a small body limit, an unreachable cluster and `overrides` (flat setting names)."""
    settings = sectioned(max_body_bytes=MAX_BODY, **overrides)
    es = Elasticsearch(f"http://127.0.0.1:{closed_port()}", max_retries=0, request_timeout=5)
    app = create_app(settings, es=es)

    def conflict() -> None:
        raise CollectionExists("collection 'x' already exists")

    def teapot() -> None:
        raise MmsearchError("short and stout", status=418)

    def crash() -> None:
        raise RuntimeError("secret internals")

    app.add_url_rule("/test/conflict", view_func=conflict)
    app.add_url_rule("/test/teapot", view_func=teapot)
    app.add_url_rule("/test/crash", view_func=crash)
    return app


@pytest.fixture(scope="module")
def client() -> Iterator[FlaskClient]:
    yield build().test_client()


def error(resp, status: int) -> dict:  # noqa: ANN001 - a Flask test response
    """The JSON error body, after checking the status and that the body repeats it."""
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.is_json, resp.get_data(as_text=True)
    body = resp.get_json()["error"]
    assert set(body) == {"status", "type", "message"} and body["status"] == status
    return body


def test_every_error_the_api_raises_is_one_model() -> None:
    """One handler maps `MmsearchError`; each layer's errors must be one, with the status it means."""
    expected = {
        IngestError: 400,
        EmptyFile: 400,
        UnsupportedType: 415,
        MediaError: 422,
        CollectionNotFound: 404,
        CollectionExists: 409,
        PayloadError: 400,
        SearchError: 400,
        ReencodeError: 400,
        ReencodeConflict: 409,
        JobNotFound: 404,
    }
    for cls, status in expected.items():
        assert issubclass(cls, MmsearchError), cls
        assert cls("x").status == status, cls
    assert MmsearchError("x", status=418).status == 418 and MmsearchError.status == 400


def test_unknown_route_and_method(client: FlaskClient) -> None:
    body = error(client.get("/v1/nowhere"), 404)
    assert body["type"] == "not_found"
    error(client.delete("/healthz"), 405)


def test_malformed_json(client: FlaskClient) -> None:
    def search(raw: bytes) -> dict:
        resp = client.post("/v1/collections/docs/search", data=raw, content_type="application/json")
        return error(resp, 400)

    body = search(b'{"query": "cats",')
    assert "malformed JSON" in body["message"] and "line 1" in body["message"]
    assert "NaN is not a JSON value" in search(b'{"query": "cats", "size": NaN}')["message"]
    assert "UTF-8" in search('{"query": "café"}'.encode("latin-1"))["message"]
    assert search(b"[1, 2]")["message"] == "expected a JSON object, got list"
    assert "empty request body" in error(client.post("/v1/collections", data=b""), 400)["message"]


def test_wrong_field_types_name_the_field(client: FlaskClient) -> None:
    body = error(client.post("/v1/collections/docs/search", json={"query": "cats", "size": "ten"}), 400)
    assert body["type"] == "invalid_request" and body["message"].startswith("size:")
    body = error(client.post("/v1/collections/docs/search", json={"query": "cats", "size": 101}), 400)
    assert body["message"].startswith("size:") and "100" in body["message"]
    body = error(client.post("/v1/collections", json={"name": "x", "colour": "red"}), 400)
    assert body["message"].startswith("colour:")
    body = error(client.post("/v1/collections", json={"name": "x", "encoders": ["no-such-model"]}), 400)
    assert body["type"] == "InvalidRequest" and "no-such-model" in body["message"]


def test_names_and_arguments_refused_before_elasticsearch(client: FlaskClient) -> None:
    """These would be 503 if they reached the (closed) cluster."""
    body = error(client.get("/v1/collections/Bad%20Name"), 400)
    assert body["type"] == "CollectionError" and "invalid collection name" in body["message"]
    body = error(client.put("/v1/collections/docs/profiles/..bad", json={}), 400)
    assert "invalid profile name" in body["message"]
    body = error(client.post("/v1/collections/docs/requeue?status=done"), 400)
    assert body["message"] == "status must be pending or failed"
    error(client.delete("/v1/collections/docs/documents/1?refresh=sometimes"), 400)


def test_oversize_body(client: FlaskClient) -> None:
    body = error(client.post("/v1/collections/docs/documents", data=b"x" * (MAX_BODY + 1)), 413)
    assert body["type"] == "request_entity_too_large"


def test_elasticsearch_down_is_503(client: FlaskClient) -> None:
    body = error(client.get("/v1/collections"), 503)
    assert body["type"] == "unavailable" and "Elasticsearch" in body["message"]
    error(client.post("/v1/collections/docs/search", json={"query": "cats"}), 503)
    resp = client.get("/readyz")
    assert resp.status_code == 503 and resp.get_json()["ready"] is False
    assert resp.get_json()["checks"]["elasticsearch"].startswith("down")
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_our_errors_keep_their_status(client: FlaskClient) -> None:
    body = error(client.get("/test/conflict"), 409)
    assert body == {"status": 409, "type": "CollectionExists", "message": "collection 'x' already exists"}
    assert error(client.get("/test/teapot"), 418)["message"] == "short and stout"
    body = error(client.get("/test/crash"), 500)
    assert body["type"] == "server_error" and "secret" not in body["message"]
