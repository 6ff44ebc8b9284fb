"""Security by default, one test per rule, on the Flask app without services (milliseconds).

As in `test_api_app`, Elasticsearch is a closed port: a request that passed every check reaches the
cluster and answers 503, so "503" below means "let through", and a 4xx means "stopped before any work".
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from pydantic import ValidationError

from core import access
from core.config import ApiSettings, EngineSettings, LimitSettings, ModelSettings, SecuritySettings, Settings
from encoders.allowlist import ModelNotAllowed, check_model_ref
from search import security
from search.app import create_app
from tests.test_api_app import MAX_BODY, build

KEYS = {scope: security.new_key(f"{scope}-key", scope) for scope in ("read", "write", "admin")}


def auth(scope: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[scope][0]}"}


@pytest.fixture(scope="module")
def keyed() -> FlaskClient:
    return build(api_keys=[entry for _, entry in KEYS.values()], rate_limit_storage="memory://").test_client()


@pytest.fixture(scope="module")
def open_app() -> FlaskClient:
    return build(rate_limit_storage="memory://").test_client()


def test_keys_are_stored_hashed_and_empty_keys_refused() -> None:
    key, entry = security.new_key("ci", "read")
    assert key.startswith("mms_") and len(key) > 40 and key not in entry.model_dump_json()
    assert security.find_key(Settings(security=SecuritySettings(api_keys=[entry])), key) == entry
    assert security.find_key(Settings(security=SecuritySettings(api_keys=[entry])), "") is None
    with pytest.raises(ValidationError, match="empty key"):
        Settings(
            security=SecuritySettings(
                api_keys=[{"name": "x", "scope": "read", "sha256": security.hash_key("")}]
            )
        )
    with pytest.raises(ValidationError):  # the old plain-text list is refused, not taken as a key
        Settings(security=SecuritySettings(api_keys=["s3cret"]))


def test_each_scope_reaches_only_its_calls(keyed: FlaskClient) -> None:
    assert keyed.get("/v1/collections").status_code == 401
    assert keyed.get("/v1/collections", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert keyed.get("/v1/collections", headers=auth("read")).status_code == 503
    assert (
        keyed.post("/v1/collections/c/search", json={"query": "x"}, headers=auth("read")).status_code == 503
    )
    # a read key cannot write; a write key cannot administer
    write = keyed.post("/v1/collections/c/documents", json={"text": "x"}, headers=auth("read"))
    assert write.status_code == 403 and "needs 'write'" in write.get_json()["error"]["message"]
    assert keyed.delete("/v1/collections/c", headers=auth("write")).status_code == 403
    assert keyed.post("/v1/collections", json={"name": "c"}, headers=auth("write")).status_code == 403
    assert (
        keyed.post("/v1/collections/c/documents", json={"text": "x"}, headers=auth("write")).status_code
        == 503
    )
    assert keyed.delete("/v1/collections/c", headers=auth("admin")).status_code == 503
    # health probes, the page and the description need no key
    for path in ("/healthz", "/", "/openapi.json"):
        assert keyed.get(path).status_code == 200, path


def test_cross_site_posts_are_refused(open_app: FlaskClient) -> None:
    # what a foreign page can send without a CORS preflight: text/plain (and forms)
    resp = open_app.post("/v1/collections", data='{"name": "pwned"}', content_type="text/plain")
    assert resp.status_code == 415 and "application/json" in resp.get_json()["error"]["message"]
    form = open_app.post("/v1/collections/c/documents", data={"text": "x"})
    assert form.status_code == 415
    # a browser marks a foreign page's requests; multipart (no preflight either) is refused that way
    foreign = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
    assert (
        open_app.post("/v1/collections/c/files", data={"file": (b"x", "a.txt")}, headers=foreign).status_code
        == 403
    )
    resp = open_app.post("/v1/collections", json={"name": "c"}, headers={"Origin": "https://evil.example"})
    assert resp.status_code == 403
    # the page itself (same origin) and tools without those headers get through
    same = {"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}
    assert open_app.post("/v1/collections/c/search", json={"query": "x"}, headers=same).status_code == 503


def test_unknown_hosts_are_refused_without_keys(open_app: FlaskClient, keyed: FlaskClient) -> None:
    """DNS rebinding: a page on attacker.example resolving to 127.0.0.1 sends `Host: attacker.example`.
    With keys the API's own names are accepted too (`test_security_review`), and a foreign one is not."""
    assert open_app.get("/v1/collections", headers={"Host": "attacker.example"}).status_code == 400
    assert open_app.get("/v1/collections", headers={"Host": "127.0.0.1:8000"}).status_code == 503
    assert keyed.get("/v1/collections", headers={"Host": "search.example", **auth("read")}).status_code == 400
    pinned = build(trusted_hosts=["search.example"], rate_limit_storage="memory://").test_client()
    assert pinned.get("/healthz", headers={"Host": "search.example"}).status_code == 200
    assert pinned.get("/healthz", headers={"Host": "localhost"}).status_code == 400


def test_non_loopback_bind_needs_keys() -> None:
    with pytest.raises(security.InsecureConfiguration, match="MMSEARCH_API_KEYS"):
        create_app(Settings(api=ApiSettings(api_host="0.0.0.0")))
    for settings in (
        Settings(api=ApiSettings(api_host="0.0.0.0"), security=SecuritySettings(api_keys=[KEYS["admin"][1]])),
        Settings(api=ApiSettings(api_host="0.0.0.0"), security=SecuritySettings(allow_open_api=True)),
        Settings(api=ApiSettings(api_host="::1")),
    ):
        security.check_bind(settings)


def test_model_references_outside_the_allow_list_are_refused(open_app: FlaskClient, tmp_path: Path) -> None:
    settings = Settings(
        engine=EngineSettings(data_dir=tmp_path), models=ModelSettings(models_dir=tmp_path / "models-dir")
    )
    (tmp_path / "models-dir" / "mine").mkdir(parents=True)
    for encoder, ref in (
        ("text", "all-MiniLM-L6-v2"),
        ("clip", "clip-ViT-B-32"),
        ("text", "mine"),
        ("clap", str(tmp_path / "models-dir" / "mine")),
    ):
        check_model_ref(settings, ref, encoder=encoder)
    for ref in (
        "/etc",
        "/no/such/dir",
        "../../etc",
        "org/any-hub-model",
        str(tmp_path / "models" / ".." / "x"),
    ):
        with pytest.raises(ModelNotAllowed):
            check_model_ref(settings, ref, encoder="text")
    check_model_ref(
        Settings(security=SecuritySettings(allowed_models=["text:org/any-hub-model"])),
        "org/any-hub-model",
        encoder="text",
    )
    # over HTTP: refused before the cluster is asked, and the answer does not tell whether the path exists
    messages = []
    for path in ("/etc", "/no/such/dir"):
        resp = open_app.post("/v1/collections", json={"name": "c", "models": {"text": path}})
        assert resp.status_code == 400
        messages.append(resp.get_json()["error"]["message"].replace(path, "PATH"))
    assert messages[0] == messages[1]


def test_writes_are_rate_limited_per_key() -> None:
    keys = [KEYS["write"][1], KEYS["admin"][1]]
    client = build(api_keys=keys, rate_limit_storage="memory://", write_rate_limit="2/minute").test_client()
    for _ in range(2):
        answer = client.delete("/v1/collections/c/documents/1", headers=auth("write"))
        assert answer.status_code == 503 and "X-RateLimit-Limit" not in answer.headers
    limited = client.delete("/v1/collections/c/documents/1", headers=auth("write"))
    assert limited.status_code == 429 and limited.get_json()["error"]["status"] == 429
    assert limited.headers["Retry-After"] == "60"  # one window of `2/minute` always clears it
    # another key has its own budget; reads are not limited
    assert client.delete("/v1/collections/c/documents/1", headers=auth("admin")).status_code == 503
    assert client.get("/v1/collections", headers=auth("write")).status_code == 503


def test_signed_media_urls() -> None:
    secret = "test-secret-" + "x" * 32
    settings = Settings(
        security=SecuritySettings(api_keys=[KEYS["read"][1]], signed_url_ttl=60, url_signing_secret=secret),
        limits=LimitSettings(max_body_bytes=MAX_BODY),
    )
    path = "/v1/collections/c/documents/d/thumbnail"
    reader = security.principal_for_key(KEYS["read"][1])
    url = security.signed_url(settings, path, reader)
    query = dict(part.split("=") for part in url.split("?")[1].split("&"))
    assert (
        security.check_signature(settings, path, query["expires"], query["sig"], principal=query["p"])
        == reader
    )
    assert not security.valid_signature(settings, path, query["expires"], query["sig"])  # `p` is required
    assert not security.valid_signature(
        settings, path.replace("/d/", "/e/"), query["expires"], query["sig"], principal=query["p"]
    )
    assert not security.valid_signature(
        settings, path, str(int(query["expires"]) + 1), query["sig"], principal=query["p"]
    )
    # the principal is signed: a URL minted for one reader cannot be turned into an admin's
    forged = access.principal_token(access.ADMIN)
    assert not security.valid_signature(settings, path, query["expires"], query["sig"], principal=forged)
    expired = security.signed_url(settings, path, reader, now=time.time() - 120).split("?")[1]
    old = dict(part.split("=") for part in expired.split("&"))
    assert not security.valid_signature(settings, path, old["expires"], old["sig"], principal=old["p"])
    assert security.signed_url(Settings(), path, access.ADMIN) == path  # no keys: plain paths
    client = build(
        api_keys=[KEYS["read"][1]], rate_limit_storage="memory://", url_signing_secret=secret
    ).test_client()
    assert client.get(f"{path}?expires={int(time.time()) + 30}&sig=forged").status_code == 401
    # a valid signature opens that GET only (the cluster answers next: 503), not other routes
    app_settings = client.application.extensions["mmsearch"].settings
    assert client.get(security.signed_url(app_settings, path, reader)).status_code == 503
    other = security.signed_url(app_settings, "/v1/collections", reader).split("?")[1]
    assert client.get(f"/v1/collections?{other}").status_code == 401


def test_deep_nesting_answers_400(open_app: FlaskClient) -> None:
    deep = "[" * 20_000 + "]" * 20_000  # the C parser's recursion limit, under the body limit
    for resp in (
        open_app.post("/v1/collections", data=deep, content_type="application/json"),
        open_app.post("/v1/collections", json={"name": "c", "models": json.loads("[" * 70 + "]" * 70)}),
        open_app.post("/v1/collections/c/search", data=deep, content_type="application/json"),
        open_app.post("/v1/collections/c/search", data={"request": deep}, content_type="multipart/form-data"),
    ):
        assert resp.status_code == 400 and "nested too deeply" in resp.get_json()["error"]["message"]


def test_openapi_describes_every_route(open_app: FlaskClient) -> None:
    from search.openapi import undescribed

    assert undescribed(open_app.application) == ["conflict", "crash", "teapot"]  # test-only routes
    spec = open_app.get("/openapi.json").get_json()
    assert spec["openapi"] == "3.1.0"
    search = spec["paths"]["/v1/collections/{name}/search"]["post"]
    assert search["x-scope"] == "read"
    schema = spec["components"]["schemas"]["SearchRequest"]
    assert schema["properties"]["size"]["maximum"] == 100  # from the pydantic model that validates it
    assert spec["paths"]["/v1/collections"]["post"]["x-scope"] == "admin"
    docs = open_app.get("/docs")
    assert docs.status_code == 200 and b"swagger-ui-bundle.js" in docs.data
    assert open_app.get("/docs/assets/swagger-ui-bundle.js").status_code == 200


def test_cli_creates_a_key_and_its_hashed_entry() -> None:
    from click.testing import CliRunner

    from mmsearch.cli import main

    result = CliRunner().invoke(main, ["keys", "create", "--name", "bot", "--scope", "write"])
    assert result.exit_code == 0, result.output
    lines = dict(line.split(":", 1) for line in result.stdout.splitlines() if line[:4] in ("key:", "entr"))
    key, entry = lines["key"].strip(), json.loads(lines["entry"])
    assert entry["scope"] == "write" and entry["sha256"] == security.hash_key(key)
    assert security.find_key(Settings(security=SecuritySettings(api_keys=[entry])), key).name == "bot"
