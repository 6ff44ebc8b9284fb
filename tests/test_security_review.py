"""The security review's findings (issue 17), one test each, on the Flask app without services.

As in `test_security`, Elasticsearch is a closed port: "503" means the request passed every check and
reached the cluster; a 4xx means it was stopped before any work.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import stat
import time
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch
from flask.testing import FlaskClient

from core.access import ADMIN
from core.config import EngineSettings, LimitSettings, SecuritySettings, Settings
from encoders.allowlist import ModelNotAllowed, check_model_ref
from ingest.documents import PayloadError, parse_documents
from search import security
from search.app import create_app
from tests.test_api_app import MAX_BODY, build, closed_port

KEYS = {scope: security.new_key(f"{scope}-key", scope) for scope in ("read", "write", "admin")}
MEDIA = "/v1/collections/c/documents/d/content"
HUGE_INT = "1" + "0" * 5000  # over Python's 4,300-digit limit of int() from a string


def auth(scope: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[scope][0]}"}


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> FlaskClient:
    entries = [entry for _, entry in KEYS.values()]
    data_dir = tmp_path_factory.mktemp("keyed")
    return build(api_keys=entries, rate_limit_storage="memory://", data_dir=data_dir).test_client()


@pytest.fixture(scope="module")
def open_app() -> FlaskClient:
    return build(rate_limit_storage="memory://").test_client()


def error_message(resp, status: int) -> str:  # noqa: ANN001 - a Flask test response
    assert resp.status_code == status, resp.get_data(as_text=True)
    return resp.get_json()["error"]["message"]


# --- 1. signed media URLs ---------------------------------------------------------------------------------


def test_signing_secret_cannot_be_derived_from_the_key_entries(tmp_path: Path) -> None:
    """The key entries (hashes) are meant to be safe to store; whoever reads them must not sign URLs."""
    settings = Settings(
        security=SecuritySettings(api_keys=[KEYS["read"][1]]), engine=EngineSettings(data_dir=tmp_path)
    )
    expires = int(time.time()) + 600
    material = json.dumps([k.model_dump() for k in settings.security.api_keys], sort_keys=True)
    derived = hashlib.sha256(b"mmsearch signed urls\n" + material.encode()).digest()
    forged = hmac.new(derived, f"{MEDIA}\n{expires}".encode(), hashlib.sha256).hexdigest()
    assert not security.valid_signature(settings, MEDIA, str(expires), forged)
    # a random secret, kept once under the data dir, owner-only, shared by every process of this machine
    secret_file = tmp_path / security.SECRET_FILE
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    again = Settings(
        security=SecuritySettings(api_keys=[KEYS["admin"][1]]), engine=EngineSettings(data_dir=tmp_path)
    )
    assert security.signing_secret(again) == security.signing_secret(settings)
    other = Settings(
        security=SecuritySettings(api_keys=[KEYS["read"][1]]),
        engine=EngineSettings(data_dir=tmp_path / "elsewhere"),
    )
    assert security.signing_secret(other) != security.signing_secret(settings)
    explicit = Settings(
        security=SecuritySettings(api_keys=[KEYS["read"][1]], url_signing_secret="s" * 32),
        engine=EngineSettings(data_dir=tmp_path),
    )
    assert security.signing_secret(explicit) == b"s" * 32


def test_signed_urls_expire_within_the_ttl_and_take_ascii_digits_only(keyed: FlaskClient) -> None:
    settings = keyed.application.extensions["mmsearch"].settings
    ten_years = time.time() + 10 * 365 * 86400 - settings.security.signed_url_ttl
    far = security.signed_url(settings, MEDIA, ADMIN, now=ten_years)  # correctly signed, yet too far ahead
    message = error_message(keyed.get(far), 403)
    assert "expires" in message and str(settings.security.signed_url_ttl) in message
    forged_far = f"{MEDIA}?expires={int(ten_years)}&sig=0"
    assert keyed.get(forged_far).status_code == 403
    for digits in ("²", "٣", "１２", "-1", "+5", " 5"):
        resp = keyed.get(MEDIA, query_string={"expires": digits, "sig": "0"})
        assert "ASCII digits" in error_message(resp, 400), digits
    soon = str(int(time.time()) + 60)
    assert keyed.get(MEDIA, query_string={"expires": soon, "sig": "é"}).status_code == 401  # not a 500
    assert (
        keyed.get(security.signed_url(settings, MEDIA, ADMIN)).status_code == 503
    )  # within the TTL: let through


# --- 2. reads: rate limit, query by example ---------------------------------------------------------------


def test_reads_are_rate_limited_per_key(tmp_path: Path) -> None:
    keys = [KEYS["read"][1], KEYS["write"][1]]
    client = build(
        api_keys=keys, rate_limit_storage="memory://", read_rate_limit="2/minute", data_dir=tmp_path
    ).test_client()
    for _ in range(2):
        assert client.get("/v1/collections", headers=auth("read")).status_code == 503
    limited = client.post("/v1/collections/c/search", json={"query": "x"}, headers=auth("read"))
    assert limited.status_code == 429 and limited.get_json()["error"]["status"] == 429
    # another key has its own budget, writes count against the write limit only, probes are not limited
    assert client.get("/v1/collections", headers=auth("write")).status_code == 503
    for _ in range(3):
        assert client.delete("/v1/collections/c/documents/1", headers=auth("write")).status_code == 503
    assert client.get("/healthz").status_code == 200


def test_query_by_example_looks_the_collection_up_before_decoding(open_app: FlaskClient) -> None:
    corrupt = b"\x89PNG\r\n\x1a\n" + b"\0garbage" * 100
    resp = open_app.post(
        "/v1/collections/c/search",
        data={"file": (io.BytesIO(corrupt), "x.png", "image/png"), "request": "{}"},
        content_type="multipart/form-data",
    )
    assert resp.status_code == 503, resp.get_data(as_text=True)  # the cluster was asked first


# --- 3. integers past Python's digit limit --------------------------------------------------------------


def test_huge_json_integers_answer_400_naming_the_problem(open_app: FlaskClient) -> None:
    for body in (
        '{"query": "a", "filters": {"n": ' + HUGE_INT + "}}",
        '{"query": "a", "size": -' + HUGE_INT + "}",
    ):
        resp = open_app.post("/v1/collections/c/search", data=body, content_type="application/json")
        assert "digits" in error_message(resp, 400)
    form = open_app.post(
        "/v1/collections/c/search",
        data={"request": '{"size": ' + HUGE_INT + "}"},
        content_type="multipart/form-data",
    )
    assert "digits" in error_message(form, 400)
    resp = open_app.post("/v1/collections", data='{"name": "c", "x": 1e999}', content_type="application/json")
    assert "finite" in error_message(resp, 400)
    with pytest.raises(PayloadError, match="digits"):
        parse_documents(('{"text": "a", "metadata": {"n": ' + HUGE_INT + "}}").encode(), None, 10, 100)
    ndjson = ('{"text": "ok"}\n{"text": "b", "metadata": {"n": ' + HUGE_INT + "}}\n").encode()
    parsed = parse_documents(ndjson, "application/x-ndjson", 10, 100)
    assert len(parsed.docs) == 1 and "digits" in parsed.errors[0]["error"]


# --- 4. chunked bodies over the limit ----------------------------------------------------------------------


def _chunked(client: FlaskClient, path: str, body: bytes, content_type: str) -> object:
    """A body without Content-Length, as a WSGI server hands a chunked one to the app."""
    return client.post(
        path,
        input_stream=io.BytesIO(body),
        headers={"Transfer-Encoding": "chunked", "Content-Type": content_type},
        environ_overrides={"wsgi.input_terminated": True},
    )


def test_chunked_body_over_the_limit_is_413(open_app: FlaskClient, keyed: FlaskClient) -> None:
    line = b'{"text": "a"}' + b" " * (MAX_BODY // 2) + b"\n"
    resp = _chunked(open_app, "/v1/collections/c/documents", line * 3, "application/x-ndjson")
    assert resp.status_code == 413, resp.get_data(as_text=True)
    # read only once the caller passed the key check: an anonymous caller is refused without buffering
    assert _chunked(keyed, "/v1/collections/c/documents", line * 3, "application/x-ndjson").status_code == 401
    # under the limit the whole body arrives: a malformed one is reported, a good one reaches the cluster
    bad = _chunked(open_app, "/v1/collections/c/search", b'{"query": "a",' + b" " * 1000, "application/json")
    assert "malformed JSON" in error_message(bad, 400)
    good = _chunked(open_app, "/v1/collections/c/search", b'{"query": "a"}', "application/json")
    assert good.status_code == 503


# --- 5. metrics, profiles, media headers, Host, data_dir, model allow-list ----------------------------------


def test_metrics_need_a_key_in_keyed_mode(keyed: FlaskClient, open_app: FlaskClient) -> None:
    assert keyed.get("/metrics").status_code == 401
    assert "needs 'admin'" in error_message(keyed.get("/metrics", headers=auth("read")), 403)
    assert keyed.get("/metrics", headers=auth("admin")).status_code == 200
    assert open_app.get("/metrics").status_code == 200
    scraper = build(
        api_keys=[KEYS["read"][1]], metrics_scope="read", rate_limit_storage="memory://"
    ).test_client()
    assert scraper.get("/metrics", headers=auth("read")).status_code == 200


def test_profiles_are_bounded_in_size() -> None:
    es = Elasticsearch(f"http://127.0.0.1:{closed_port()}", max_retries=0, request_timeout=5)
    roomy = create_app(
        Settings(
            limits=LimitSettings(max_body_bytes=4 << 20),
            security=SecuritySettings(rate_limit_storage="memory://"),
        ),
        es=es,
    ).test_client()
    big = {"scores": {"notes": "x" * 2_000_000}}  # under the body limit, far over a profile's
    resp = roomy.put("/v1/collections/c/profiles/p", json=big)
    assert "64 kB" in error_message(resp, 413)
    assert roomy.put("/v1/collections/c/profiles/p", json={"scores": {"ndcg": 0.7}}).status_code == 503


def test_media_responses_are_same_origin_resources(keyed: FlaskClient) -> None:
    for path in (MEDIA, MEDIA.replace("content", "thumbnail")):
        resp = keyed.get(path, headers=auth("read"))
        assert resp.headers["Cross-Origin-Resource-Policy"] == "same-origin", path
        assert resp.headers["X-Content-Type-Options"] == "nosniff"


def test_keyed_mode_answers_only_its_own_host_names(keyed: FlaskClient) -> None:
    assert keyed.get("/v1/collections", headers={"Host": "evil.example", **auth("read")}).status_code == 400
    assert keyed.get("/v1/collections", headers={"Host": "127.0.0.1:8000", **auth("read")}).status_code == 503
    named = build(
        api_keys=[KEYS["read"][1]], api_url="https://search.example", rate_limit_storage="memory://"
    ).test_client()
    assert named.get("/healthz", headers={"Host": "search.example"}).status_code == 200
    assert named.get("/healthz", headers={"Host": "other.example"}).status_code == 400
    anything = build(api_keys=[KEYS["read"][1]], trusted_hosts=["*"], rate_limit_storage="memory://")
    client = anything.test_client()
    assert client.get("/healthz", headers={"Host": "other.example"}).status_code == 200
    # even where any Host is accepted (a proxy checks it), a doubled slash is not redirected to that host
    for path in ("/v1//collections", "/v1/collections//c"):
        resp = client.get(path, headers={"Host": "other.example", **auth("read")})
        assert "other.example" not in resp.headers.get("Location", ""), (path, resp.status_code)


def test_relative_data_dir_is_made_absolute_once(tmp_path: Path) -> None:
    here = Path.cwd()
    try:
        os.chdir(tmp_path)
        settings = Settings(engine=EngineSettings(data_dir="data"))
    finally:
        os.chdir(here)
    assert settings.engine.data_dir == tmp_path / "data"


def test_model_allow_list_is_per_encoder(open_app: FlaskClient) -> None:
    settings = Settings()
    check_model_ref(settings, settings.models.clap_model, encoder="clap")
    check_model_ref(settings, settings.models.rerank_model, encoder="rerank")
    for encoder, ref in (
        ("text", settings.models.clap_model),
        ("clip", settings.models.text_model),
        ("text", settings.models.rerank_model),
    ):
        with pytest.raises(ModelNotAllowed, match=encoder):
            check_model_ref(settings, ref, encoder=encoder)
    extra = Settings(security=SecuritySettings(allowed_models=["text:org/my-model"]))
    check_model_ref(extra, "org/my-model", encoder="text")
    with pytest.raises(ModelNotAllowed):
        check_model_ref(extra, "org/my-model", encoder="clap")
    resp = open_app.post(
        "/v1/collections", json={"name": "c", "models": {"text": settings.models.clap_model}}
    )
    assert "not allowed" in error_message(resp, 400)
    profile = {"rerank": {"model": settings.models.text_model}}
    assert open_app.put("/v1/collections/c/profiles/p", json=profile).status_code == 400
