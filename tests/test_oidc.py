"""OIDC sign-in on the Flask app without services: real keys (RSA and EC made here), a real JWKS (a file,
and a URL served by a local HTTP server), tokens signed by PyJWT, and every way a token can be wrong.

As in `test_security`, Elasticsearch is a closed port: a call that passed authentication and reached the
cluster answers 503, so "503" means "let through"; `/v1/whoami` needs no cluster and shows the principal.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from flask.testing import FlaskClient
from pydantic import ValidationError

from core.access import ADMIN
from core.config import SecuritySettings, Settings
from search import security
from tests.test_api_app import build, closed_port

ISSUER = "https://idp.example.test/realms/acme"
AUDIENCE = "mmsearch"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
ROGUE_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # in no JWKS
API_KEY, API_ENTRY = security.new_key("ops", "read")


def public_jwk(key: Any, kid: str, alg: str) -> dict[str, Any]:
    algorithm = jwt.algorithms.RSAAlgorithm if alg.startswith("RS") else jwt.algorithms.ECAlgorithm
    return {**algorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid, "alg": alg, "use": "sig"}


JWKS = {"keys": [public_jwk(RSA_KEY, "rsa-1", "RS256"), public_jwk(EC_KEY, "ec-1", "ES256")]}


def token(key: Any = RSA_KEY, kid: str = "rsa-1", alg: str = "RS256", **claims: Any) -> str:
    now = int(time.time())
    payload = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "0f6c-alice",
        "preferred_username": "alice",
        "groups": ["hr", "staff"],
        "iat": now,
        "exp": now + 300,
        **claims,
    }
    return jwt.encode(
        {k: v for k, v in payload.items() if v is not None}, key, algorithm=alg, headers={"kid": kid}
    )


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def jwks_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("oidc") / "jwks.json"
    path.write_text(json.dumps(JWKS))
    return path


def oidc_app(jwks: str, **overrides: object) -> FlaskClient:
    settings: dict[str, object] = {
        "oidc_issuer": ISSUER,
        "oidc_audience": AUDIENCE,
        "oidc_jwks": jwks,
        "oidc_write_groups": ["editors"],
        "oidc_admin_groups": ["search-admins"],
        "rate_limit_storage": "memory://",
        **overrides,
    }
    return build(**settings).test_client()


@pytest.fixture(scope="module")
def app(jwks_file: Path) -> FlaskClient:
    return oidc_app(str(jwks_file), api_keys=[API_ENTRY])


@pytest.fixture(scope="module")
def jwks_url() -> Iterator[str]:
    """The JWKS served over HTTP by a local server, as an identity provider serves it."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server hook
            body = json.dumps(JWKS).encode()
            self.send_response(200 if self.path == "/certs" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/certs"
    server.shutdown()
    server.server_close()


def refused(client: FlaskClient, value: str, reason: str) -> None:
    response = client.get("/v1/whoami", headers=bearer(value))
    assert response.status_code == 401, response.json
    message = response.json["error"]["message"]
    assert reason in message, message
    assert "Traceback" not in message and "jwt." not in message


def test_a_valid_token_is_its_user_and_groups_with_read_scope(app: FlaskClient) -> None:
    for signed in (token(), token(key=EC_KEY, kid="ec-1", alg="ES256")):
        response = app.get("/v1/whoami", headers=bearer(signed))
        assert response.status_code == 200, response.json
        assert response.json == {
            "name": "oidc:alice",
            "user": "alice",
            "groups": ["hr", "staff"],
            "collections": ["*"],
            "admin": False,
            "scope": "read",
            "reader_terms": ["*", "user:alice", "group:hr", "group:staff"],
        }


def test_tokens_out_of_their_time_are_refused(app: FlaskClient) -> None:
    now = int(time.time())
    refused(app, token(exp=now - 120, iat=now - 600), "token expired")
    refused(app, token(nbf=now + 600), "not yet valid")
    refused(app, token(iat=now + 600), "not yet valid")
    ok = token(exp=now - 5)  # inside the clock-skew leeway
    assert app.get("/v1/whoami", headers=bearer(ok)).status_code == 200


def test_tokens_for_someone_else_are_refused(app: FlaskClient) -> None:
    refused(app, token(iss="https://evil.example.test/"), "another issuer")
    refused(app, token(aud="another-app"), "another audience")
    refused(app, token(aud=None), "lacks the `aud` claim")
    refused(app, token(exp=None), "lacks the `exp` claim")
    refused(app, token(sub=None), "lacks the `sub` claim")


def test_forged_tokens_are_refused(app: FlaskClient) -> None:
    claims = jwt.decode(token(), options={"verify_signature": False})
    body = b64(json.dumps(claims).encode())
    unsigned = f"{b64(json.dumps({'alg': 'none', 'typ': 'JWT', 'kid': 'rsa-1'}).encode())}.{body}."
    refused(app, unsigned, "algorithm 'none' is not allowed")
    # HS256 "signed" with the public key: the classic algorithm confusion
    pem = RSA_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    head = f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT', 'kid': 'rsa-1'}).encode())}.{body}"
    confused = f"{head}.{b64(hmac.new(pem, head.encode(), hashlib.sha256).digest())}"
    refused(app, confused, "algorithm 'HS256' is not allowed")
    refused(app, token(key=ROGUE_KEY, kid="rogue"), "unknown key")
    refused(app, token(key=ROGUE_KEY, kid="rsa-1"), "signature does not verify")
    head, _, signature = token().rpartition(".")
    header, _, _ = head.partition(".")
    tampered = {**claims, "groups": ["search-admins"]}
    refused(app, f"{header}.{b64(json.dumps(tampered).encode())}.{signature}", "signature does not verify")
    refused(
        app, token(key=EC_KEY, kid="rsa-1", alg="ES256"), "algorithm is not allowed"
    )  # kid of another alg
    refused(app, token(kid=""), "no `kid`")


def test_anything_else_is_refused_and_api_keys_still_work(app: FlaskClient) -> None:
    assert app.get("/v1/whoami").status_code == 401
    assert app.get("/v1/whoami", headers=bearer("eyJhbGciOi.garbage.x")).status_code == 401
    missing = app.get("/v1/whoami", headers=bearer("not-a-key"))
    assert missing.status_code == 401 and "OIDC token" in missing.json["error"]["message"]
    keyed = app.get("/v1/whoami", headers=bearer(API_KEY))
    assert keyed.status_code == 200 and keyed.json["scope"] == "read" and keyed.json["name"] == "ops"


def test_groups_grant_write_and_admin(app: FlaskClient) -> None:
    doc = {"id": "d1", "title": "t"}
    reader = app.post("/v1/collections/c/documents", json=doc, headers=bearer(token()))
    assert reader.status_code == 403 and "'oidc:alice' has scope 'read'" in reader.json["error"]["message"]
    editor = token(groups=["staff", "editors"])
    assert app.post("/v1/collections/c/documents", json=doc, headers=bearer(editor)).status_code == 503
    assert app.get("/v1/whoami", headers=bearer(editor)).json["scope"] == "write"
    assert app.delete("/v1/collections/c", headers=bearer(editor)).status_code == 403  # admin only
    admin = token(groups="search-admins staff")  # a space-separated string claim
    me = app.get("/v1/whoami", headers=bearer(admin)).json
    assert me["scope"] == "admin" and me["admin"] is True and me["reader_terms"] is None
    assert me["groups"] == ["search-admins", "staff"]
    assert app.delete("/v1/collections/c", headers=bearer(admin)).status_code == 503


def test_claims_and_collections_come_from_the_settings(jwks_file: Path) -> None:
    client = oidc_app(
        str(jwks_file),
        oidc_user_claim="email",
        oidc_groups_claim="realm_access.roles",
        oidc_collections=["hr-*", "wiki"],
    )
    signed = token(email="alice@acme.test", realm_access={"roles": ["hr", "board"]}, groups=None)
    me = client.get("/v1/whoami", headers=bearer(signed)).json
    assert (me["user"], me["groups"], me["collections"]) == (
        "alice@acme.test",
        ["board", "hr"],
        ["hr-*", "wiki"],
    )
    fallback = client.get("/v1/whoami", headers=bearer(token(realm_access={"roles": "hr,wiki-editors"}))).json
    assert fallback["user"] == "0f6c-alice" and fallback["groups"] == [
        "hr",
        "wiki-editors",
    ]  # `sub`; a comma string


def test_a_jwks_url_is_fetched_and_cached(jwks_url: str) -> None:
    client = oidc_app(jwks_url)
    assert client.get("/v1/whoami", headers=bearer(token())).json["user"] == "alice"
    assert (
        client.get("/v1/whoami", headers=bearer(token(key=EC_KEY, kid="ec-1", alg="ES256"))).status_code
        == 200
    )
    refused(client, token(key=ROGUE_KEY, kid="rogue"), "unknown key")
    refused(client, token(exp=int(time.time()) - 120), "token expired")


def test_an_unreachable_jwks_url_is_503_not_500() -> None:
    client = oidc_app(f"http://127.0.0.1:{closed_port()}/certs")
    response = client.get("/v1/whoami", headers=bearer(token()))
    assert response.status_code == 503 and "JWKS" in response.json["error"]["message"]
    assert "127.0.0.1" not in response.json["error"]["message"]


def test_oidc_alone_makes_the_api_keyed() -> None:
    oidc = {"oidc_issuer": ISSUER, "oidc_audience": AUDIENCE, "oidc_jwks": "/nonexistent/jwks.json"}
    settings = Settings(security=SecuritySettings(**oidc))
    assert settings.security.keyed and not settings.security.api_keys
    security.check_bind(settings.replace(api={"api_host": "0.0.0.0"}))  # no InsecureConfiguration
    assert security.signed_url(settings, "/v1/x", ADMIN).startswith("/v1/x?expires=")
    client = build(**oidc, rate_limit_storage="memory://").test_client()
    assert client.get("/v1/collections").status_code == 401
    unreadable = client.get("/v1/whoami", headers=bearer(token()))
    assert unreadable.status_code == 503 and "/nonexistent" not in unreadable.json["error"]["message"]
    with pytest.raises(ValidationError, match="OIDC needs all of"):
        SecuritySettings(oidc_issuer=ISSUER)
    with pytest.raises(ValidationError):
        SecuritySettings(**oidc, oidc_algorithms=["HS256"])
