"""OIDC sign-in: a bearer JWT from the configured identity provider becomes a `Principal` and a scope.

The token is checked with PyJWT (signature against the provider's JWKS, `iss`, `aud`, `exp`, `nbf`,
`iat`), never by hand: only the configured asymmetric algorithms are accepted, so neither `alg: none`
nor an HMAC token "signed" with the public key gets through. The user and groups come from configured
claims; groups named in the settings raise the scope from `read` to `write` or `admin`.

A bad token is a 401 that says what was wrong with it (expired, wrong audience, bad signature, unknown
key) and nothing about the server; a JWKS URL that cannot be reached is a 503: the caller is not at fault.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from core.access import Principal
from core.config import SecuritySettings
from core.errors import Unauthorized, Unavailable

LEEWAY_S = 30  # clock skew allowed between the identity provider and this API
REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub"]
JWKS_LIFESPAN_S = 300  # a URL's key set is fetched again after this (and on an unknown `kid`)
JWKS_TIMEOUT_S = 5
# Three base64url segments, the first a JSON object (`{"` encodes as `eyJ`): an API key never looks so.
JWT_SHAPE = re.compile(r"^eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")
TOKEN_ERRORS: list[tuple[type[Exception], str]] = [  # most specific first
    (jwt.ExpiredSignatureError, "token expired"),
    (jwt.ImmatureSignatureError, "token not yet valid (nbf or iat lies in the future)"),
    (jwt.InvalidAudienceError, "token is for another audience"),
    (jwt.InvalidIssuerError, "token is from another issuer"),
    (jwt.InvalidSignatureError, "token signature does not verify"),
    (jwt.InvalidAlgorithmError, "token algorithm is not allowed"),
    (jwt.InvalidIssuedAtError, "token `iat` is not a time"),
    (jwt.DecodeError, "token is malformed"),
]


@dataclass(frozen=True)
class Identity:
    """Who a valid token speaks for, and the scope (read / write / admin) its groups grant."""

    principal: Principal
    scope: str
    claims: dict[str, Any]


def looks_like_jwt(token: str) -> bool:
    return len(token) < 16_384 and bool(JWT_SHAPE.match(token))


class KeySource:
    """The provider's public keys: a JWKS file (read again when it changes) or URL (PyJWKClient, cached)."""

    def __init__(self, location: str) -> None:
        self.location = location
        self._client = (
            jwt.PyJWKClient(location, lifespan=JWKS_LIFESPAN_S, timeout=JWKS_TIMEOUT_S)
            if location.startswith(("https://", "http://"))
            else None
        )
        self._lock = threading.Lock()
        self._file_state: tuple[float, jwt.PyJWKSet] | None = None

    def key_for(self, kid: str | None) -> jwt.PyJWK:
        """The signing key named by a token's `kid` (401 when unknown, 503 when the URL is down)."""
        if not kid:
            raise Unauthorized("token has no `kid` header naming its signing key")
        if self._client is None:
            try:
                return self._file_keys()[kid]
            except KeyError:
                raise Unauthorized("token signed by an unknown key (kid)") from None
        try:
            return self._client.get_signing_key(kid)
        except jwt.PyJWKClientConnectionError:
            raise Unavailable("the identity provider's keys (JWKS) cannot be fetched; try again") from None
        except jwt.PyJWKClientError:
            raise Unauthorized("token signed by an unknown key (kid)") from None

    def _file_keys(self) -> jwt.PyJWKSet:
        path = Path(self.location)
        try:
            mtime = path.stat().st_mtime
        except OSError:
            raise Unavailable("the identity provider's keys (JWKS file) cannot be read") from None
        with self._lock:
            if self._file_state is None or self._file_state[0] != mtime:
                self._file_state = (mtime, jwt.PyJWKSet.from_json(path.read_text()))
            return self._file_state[1]


class OidcVerifier:
    """Checks bearer JWTs against one issuer, audience and key source (one per app)."""

    def __init__(self, security: SecuritySettings) -> None:
        self.security = security
        self.keys = KeySource(security.oidc_jwks)

    def identify(self, token: str) -> Identity:
        """The identity of a valid token; `Unauthorized` naming what is wrong otherwise."""
        claims = self._claims(token)
        user = claim_at(claims, self.security.oidc_user_claim) or claims.get("sub")
        if not isinstance(user, str | int) or not str(user).strip():
            raise Unauthorized(f"token has no usable `{self.security.oidc_user_claim}` or `sub` claim")
        groups = frozenset(group_names(claim_at(claims, self.security.oidc_groups_claim)))
        scope = scope_of(groups, self.security)
        principal = Principal(
            name=f"oidc:{user}",
            user=str(user),
            groups=groups,
            collections=tuple(self.security.oidc_collections) or ("*",),
            admin=scope == "admin",
        )
        return Identity(principal=principal, scope=scope, claims=claims)

    def _claims(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise Unauthorized("token is malformed") from None
        if header.get("alg") not in self.security.oidc_algorithms:
            raise Unauthorized(
                f"token algorithm {str(header.get('alg'))[:16]!r} is not allowed "
                f"(allowed: {', '.join(self.security.oidc_algorithms)})"
            )
        key = self.keys.key_for(header.get("kid"))
        try:
            return jwt.decode(
                token,
                key=key,
                algorithms=list(self.security.oidc_algorithms),
                audience=self.security.oidc_audience,
                issuer=self.security.oidc_issuer,
                leeway=LEEWAY_S,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthorized(f"token lacks the `{exc.claim}` claim") from None
        except jwt.PyJWTError as exc:
            raise Unauthorized(token_error(exc)) from None


def token_error(exc: Exception) -> str:
    """What was wrong with a token, in words a client can act on (never PyJWT's internals)."""
    return next((message for kind, message in TOKEN_ERRORS if isinstance(exc, kind)), "token is invalid")


def claim_at(claims: dict[str, Any], path: str) -> Any:
    """A claim by name, or by dotted path into nested objects (`realm_access.roles`); None if absent.
    A name that exists as is (some providers put dots or URLs in claim names) wins over the path."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def group_names(value: Any) -> list[str]:
    """Groups from a claim that is a list of names or one string of names split at spaces or commas."""
    if isinstance(value, str):
        return [name for name in re.split(r"[\s,]+", value) if name]
    if isinstance(value, list):
        return [str(name) for name in value if isinstance(name, str | int) and str(name).strip()]
    return []


def scope_of(groups: frozenset[str], security: SecuritySettings) -> str:
    if groups & set(security.oidc_admin_groups):
        return "admin"
    return "write" if groups & set(security.oidc_write_groups) else "read"
