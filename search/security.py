"""Who may call what, from where: scoped API keys and OIDC tokens (search/oidc.py), the principal each
request acts for, cross-site and Host checks, signed media URLs (minted for a principal), per-key read and
write rate limits, and the response headers that keep uploaded content inert.

Everything hangs off `install(app, settings)` (before/after request hooks and the limiter), so the
blueprints stay unaware of it; what a route needs is declared here, by endpoint name.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import os
import re
import secrets
import socket
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, g, request
from flask_limiter import ApplicationLimit, Limiter
from flask_limiter.util import get_remote_address

from core.access import ADMIN, Principal, principal_from_token, principal_token
from core.config import ApiKey, Settings
from core.errors import Forbidden, MmsearchError, Unauthorized, UnsupportedMediaType
from search.oidc import OidcVerifier, looks_like_jwt

SCOPE_RANK = {"read": 0, "write": 1, "admin": 2}
# Unsafe methods by endpoint; any other unsafe endpoint needs `admin` (a new route is closed by default).
WRITE_ENDPOINTS = {
    "documents.add",
    "documents.delete",
    "documents.delete_many",
    "files.upload",
    "collections.requeue",
    "documents.set_readers",
}
READ_POSTS = {"search.search"}  # a search is a read, whatever its method
# Request bodies each endpoint takes; JSON-only everywhere else. text/plain and urlencoded forms are what a
# foreign page can send without a CORS preflight, so no endpoint takes them.
BODY_TYPES = {
    "documents.add": {"application/json", "application/x-ndjson"},
    "files.upload": {"multipart/form-data"},
    "search.search": {"application/json", "multipart/form-data"},
}
MEDIA_ENDPOINTS = {"documents.content", "documents.thumbnail"}  # may be opened by a signed URL
METRICS_ENDPOINT = "health.metrics"  # outside /v1, yet it needs a key (scope `metrics_scope`) when keyed
LOOPBACK_NAMES = ["localhost", "127.0.0.1", "::1", "[::1]"]
INLINE_TYPES = ("image/", "audio/", "video/")  # served inline; anything else is a download
SANDBOX_CSP = "sandbox; default-src 'none'; img-src 'self'; media-src 'self'"
KEY_PREFIX = "mms_"
SECRET_FILE = "url-signing.key"  # under the data dir: the generated signing secret, owner-only


class InsecureConfiguration(RuntimeError):
    """The API would listen where anyone can reach it with no keys; refused at start-up."""


# --- keys -----------------------------------------------------------------------------------------------


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key(
    name: str,
    scope: str,
    *,
    user: str | None = None,
    groups: tuple[str, ...] = (),
    collections: tuple[str, ...] = ("*",),
) -> tuple[str, ApiKey]:
    """A fresh random key (shown once) and the entry the server stores for it, with the principal it
    acts for (user, groups, collection patterns)."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    entry = ApiKey(
        name=name, scope=scope, sha256=hash_key(key), user=user, groups=groups, collections=collections
    )
    return key, entry


def principal_for_key(key: ApiKey) -> Principal:
    """Whom a key acts for: everything for an admin key; else its user, groups and collection patterns
    (a key with neither user nor groups reads what everyone may read: documents with reader `*`)."""
    if key.scope == "admin":
        return ADMIN
    return Principal(
        name=key.name, user=key.user, groups=frozenset(key.groups), collections=tuple(key.collections)
    )


def authenticating(settings: Settings) -> bool:
    """Whether requests must prove who they are (keys configured); otherwise every request is `ADMIN`
    (local keyless use, behaviour unchanged)."""
    return settings.security.keyed


def find_key(settings: Settings, token: str) -> ApiKey | None:
    """The entry whose hash matches; every entry is compared, in constant time, whatever matched."""
    if not token:
        return None
    digest = hash_key(token)
    found = None
    for entry in settings.security.api_keys:
        if hmac.compare_digest(digest, entry.sha256):
            found = entry
    return found


def required_scope(method: str, endpoint: str | None) -> str:
    if method in ("GET", "HEAD", "OPTIONS") or endpoint in READ_POSTS:
        return "read"
    return "write" if endpoint in WRITE_ENDPOINTS else "admin"


# --- where the API may listen, which Host it answers ------------------------------------------------------


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(settings: Settings) -> None:
    """Refuse a non-loopback address without keys, unless `MMSEARCH_ALLOW_OPEN_API` says it is meant."""
    if (
        not settings.security.keyed
        and not settings.security.allow_open_api
        and not is_loopback(settings.api.api_host)
    ):
        raise InsecureConfiguration(
            f"refusing to serve on {settings.api.api_host} with no API keys: set MMSEARCH_API_KEYS "
            "(`mmsearch keys create`), bind to 127.0.0.1, or set MMSEARCH_ALLOW_OPEN_API=true"
        )


def trusted_hosts(settings: Settings) -> list[str] | None:
    """Host names the app answers; None = any (`["*"]`). Without keys only loopback names: a page on a
    rebound DNS name would otherwise reach a keyless local API with the browser's help. With keys also the
    API's own names, so a forged Host cannot steer redirects or links built from it."""
    if settings.security.trusted_hosts:
        return None if "*" in settings.security.trusted_hosts else settings.security.trusted_hosts
    return LOOPBACK_NAMES + own_host_names(settings) if authenticating(settings) else LOOPBACK_NAMES


def own_host_names(settings: Settings) -> list[str]:
    """The names this API is known by: where it binds (unless a wildcard), the host of `api_url`, and the
    machine's name. Others (a proxy's public name, a compose service name) go in MMSEARCH_TRUSTED_HOSTS."""
    names = [urlsplit(settings.api.api_base).hostname or "", socket.gethostname()]  # no getfqdn: a DNS query
    wildcard = settings.api.api_host in ("0.0.0.0", "::", "[::]", "")
    names += [] if wildcard else [settings.api.api_host]
    return sorted({name for name in names if name})


# --- signed media URLs ------------------------------------------------------------------------------------


class BadSignedUrl(MmsearchError):
    """A signed URL whose `expires` is not a Unix time in ASCII digits."""


MAX_PRINCIPAL_CHARS = 8192  # the `p=` of a signed URL: a principal with many groups, base64


def signing_secret(settings: Settings) -> bytes:
    """The explicit secret, else the random one kept under the data dir. Never derived from the key
    entries: those are hashes meant to be safe to store, and whoever read them could sign URLs."""
    if settings.security.url_signing_secret:
        return settings.security.url_signing_secret.encode()
    return _secret_file(settings.engine.data_dir / SECRET_FILE)


@functools.lru_cache(maxsize=8)
def _secret_file(path: Path) -> bytes:
    """Read the secret, creating it first if missing: written to a private temporary file and linked into
    place, so API processes starting together all end up reading the one that won."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".url-signing-")  # mode 0600
        try:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(32))
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process was first; use its secret
        finally:
            os.unlink(tmp)
    secret = path.read_text().strip()
    if len(secret) < 32:
        raise RuntimeError(f"{path} holds no usable URL signing secret; delete it to have a new one made")
    return secret.encode()


def _signature(settings: Settings, path: str, expires: int, principal: str) -> str:
    message = f"{path}\n{expires}\n{principal}".encode()
    return hmac.new(signing_secret(settings), message, hashlib.sha256).hexdigest()


def signed_url(settings: Settings, path: str, principal: Principal, now: float | None = None) -> str:
    """`path` itself for an admin without keys; else `path?expires=..&p=..&sig=..`, a GET that needs no
    header (img, audio) and opens only what `principal` (encoded in `p`, covered by the signature) may
    read when it is opened."""
    if not authenticating(settings) and principal.admin:
        return path
    expires = int(now or time.time()) + settings.security.signed_url_ttl
    who = principal_token(principal)
    return f"{path}?expires={expires}&p={who}&sig={_signature(settings, path, expires, who)}"


def check_signature(
    settings: Settings, path: str, expires: str | None, sig: str | None, *, principal: str | None = None
) -> Principal:
    """The principal a signed URL was minted for. Raise unless `sig` signs `path` and that principal
    until `expires`, which lies in the future but no further than the configured TTL (a URL minted for
    ten years is refused, whoever signed it)."""
    if not expires or not expires.isascii() or not expires.isdigit() or len(expires) > 20:
        raise BadSignedUrl("`expires` of a signed URL must be a Unix time in ASCII digits")
    now = time.time()
    ttl = settings.security.signed_url_ttl
    if int(expires) > now + ttl + 60:  # a minute of clock skew between API hosts
        raise Forbidden(
            f"signed URL `expires` lies beyond the {ttl} s a signed URL may live "
            "(MMSEARCH_SIGNED_URL_TTL); search again for fresh links"
        )
    who = principal or ""
    expected = _signature(settings, path, int(expires), who).encode()
    signed = bool(sig) and hmac.compare_digest(expected, (sig or "").encode())  # bytes: any sig compares
    if int(expires) < now or not signed or not who or len(who) > MAX_PRINCIPAL_CHARS:
        raise Unauthorized("invalid or expired signed URL; search again for fresh links")
    try:
        return principal_from_token(who)
    except ValueError:  # signed by us yet unreadable: a secret shared with an incompatible version
        raise Unauthorized("invalid or expired signed URL; search again for fresh links") from None


def valid_signature(
    settings: Settings, path: str, expires: str | None, sig: str | None, *, principal: str | None = None
) -> bool:
    try:
        check_signature(settings, path, expires, sig, principal=principal)
    except MmsearchError:
        return False
    return True


def add_media_urls(
    settings: Settings, collection: str, result: dict[str, Any], principal: Principal
) -> dict[str, Any]:
    """Give each hit with a stored file its `urls` (content, and thumbnail for images), signed for the
    principal the result was searched for."""
    for hit in result.get("hits", []):
        source = hit.get("source") or {}
        if not (source.get("source") or {}).get("sha256"):
            continue
        base = f"/v1/collections/{collection}/documents/{hit['id']}"
        urls = {"content": signed_url(settings, f"{base}/content", principal)}
        if source.get("modality") == "image":
            urls["thumbnail"] = signed_url(settings, f"{base}/thumbnail", principal)
        hit["urls"] = urls
    return result


# --- the hooks --------------------------------------------------------------------------------------------


def _authenticate(settings: Settings, oidc: OidcVerifier | None) -> None:
    """Set `g.principal` (whom the request acts for) and `g.api_key` (the key, for limits and caching)."""
    g.api_key = None
    g.principal = ADMIN
    metrics = request.endpoint == METRICS_ENDPOINT
    if not authenticating(settings) or not (request.path.startswith("/v1/") or metrics):
        return
    if request.method == "GET" and request.endpoint in MEDIA_ENDPOINTS and "sig" in request.args:
        args = request.args
        g.principal = check_signature(
            settings, request.path, args.get("expires"), args.get("sig"), principal=args.get("p")
        )
        g.api_key = ApiKey(name="signed-url", scope="read", sha256="0" * 64)
        return
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip() if scheme.lower() == "bearer" else ""
    key = find_key(settings, token)
    found = (principal_for_key(key), key.scope) if key else _token_principal(oidc, token)
    if found is None:
        raise Unauthorized(
            "missing or invalid API key (Authorization: Bearer <key>)"
            + (" or OIDC token" if oidc is not None else "")
        )
    principal, scope = found
    needed = settings.security.metrics_scope if metrics else required_scope(request.method, request.endpoint)
    if SCOPE_RANK[scope] < SCOPE_RANK[needed]:
        raise Forbidden(f"{principal.name!r} has scope {scope!r}; this call needs {needed!r}")
    # a token's principal stands in for a key, so rate limits and logs treat both alike
    g.api_key = key or ApiKey(
        name=re.sub(r"[^A-Za-z0-9_.@-]", "-", principal.name)[:64], scope=scope, sha256="0" * 64
    )
    g.principal = principal


def _token_principal(oidc: OidcVerifier | None, token: str) -> tuple[Principal, str] | None:
    """(principal, scope) of a bearer value that is no API key: an OIDC token when sign-in is set up;
    None (a 401) for anything else. A bad token raises its own 401 saying why."""
    if oidc is None or not looks_like_jwt(token):
        return None
    identity = oidc.identify(token)
    return identity.principal, identity.scope


def _refuse_cross_site() -> None:
    """Browsers mark where a request comes from; a foreign page's POST is refused before anything runs."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        raise Forbidden("cross-site requests are refused")
    origin = request.headers.get("Origin")
    if origin and urlsplit(origin).netloc != request.host:
        raise Forbidden(f"cross-origin request from {origin} refused")


def _check_body_type() -> None:
    chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    if request.method in ("GET", "HEAD", "OPTIONS") or not (request.content_length or chunked):
        return
    allowed = BODY_TYPES.get(request.endpoint or "", {"application/json"})
    if request.mimetype not in allowed:
        wanted = " or ".join(sorted(allowed))
        sent = request.mimetype or "(none)"
        raise UnsupportedMediaType(f"Content-Type {sent!r} is not accepted here; send {wanted}")


def _harden(response: Response) -> Response:
    """nosniff everywhere; stored media only for pages of this origin; uploaded non-media files as
    sandboxed downloads; nothing authenticated in a shared cache."""
    response.headers["X-Content-Type-Options"] = "nosniff"
    if request.endpoint in MEDIA_ENDPOINTS:
        response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
    if request.endpoint == "documents.content":
        mime = response.mimetype or ""
        if not mime.startswith(INLINE_TYPES) or mime == "image/svg+xml":
            disposition = response.headers.get("Content-Disposition", "attachment")
            response.headers["Content-Disposition"] = (
                "attachment" + disposition.partition(";")[1] + (disposition.partition(";")[2])
            )
        response.headers["Content-Security-Policy"] = SANDBOX_CSP
    if getattr(g, "api_key", None) is not None or "Authorization" in request.headers:
        max_age = response.cache_control.max_age
        response.cache_control.public = False
        response.cache_control.private = True
        if max_age is not None:
            response.cache_control.max_age = max_age
        response.vary.add("Authorization")
    return response


def _rate_key() -> str:
    key = getattr(g, "api_key", None)
    if key is not None:
        return f"key:{key.name}"
    principal = getattr(g, "principal", None)
    if principal is not None and not principal.admin:  # a bearer token that is not a key (OIDC)
        return f"principal:{principal.name}"
    return f"addr:{get_remote_address()}"


def _is_read() -> bool:
    return required_scope(request.method, request.endpoint) == "read" or not request.path.startswith("/v1/")


def _not_a_v1_read() -> bool:
    """Writes have their own limit; probes, metrics and the page are not limited."""
    return not request.path.startswith("/v1/") or required_scope(request.method, request.endpoint) != "read"


def rate_limits(settings: Settings) -> list[ApplicationLimit]:
    """One budget per key (or client address) for writes, another for reads: a search loop cannot spend
    the write budget, nor a bulk load the read one."""
    limits = []
    if settings.security.write_rate_limit:
        limits.append(
            ApplicationLimit(settings.security.write_rate_limit, scope="writes", exempt_when=_is_read)
        )
    if settings.security.read_rate_limit:
        limits.append(
            ApplicationLimit(settings.security.read_rate_limit, scope="reads", exempt_when=_not_a_v1_read)
        )
    return limits


def install(app: Flask, settings: Settings) -> Limiter | None:
    """Register the checks (in order: Host, cross-site, body type, key) and the read and write limits."""
    check_bind(settings)
    app.config["TRUSTED_HOSTS"] = trusted_hosts(settings)
    oidc = OidcVerifier(settings.security) if settings.security.oidc_enabled else None

    @app.before_request
    def _guard() -> None:
        request.host  # noqa: B018 - raises SecurityError (400) for a Host outside TRUSTED_HOSTS
        _refuse_cross_site()
        _check_body_type()
        _authenticate(settings, oidc)

    app.after_request(_harden)
    limits = rate_limits(settings)
    if not limits:
        return None
    return Limiter(
        _rate_key,
        app=app,
        application_limits=limits,
        storage_uri=settings.security.rate_limit_storage or settings.broker.broker_url,
        storage_options={"socket_timeout": 2, "socket_connect_timeout": 2},
        key_prefix="mmsearch-ratelimit",
        swallow_errors=True,
        # No X-RateLimit-* headers on every answer: they cost two more Redis round trips per request
        # (the window's count and expiry), a tenth of a search's time; a 429 says `Retry-After` instead.
        headers_enabled=False,
    )
