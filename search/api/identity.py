"""Who the caller is, as the API sees it: the principal its key or token acts for, and its scope. For
operators checking an OIDC set-up (which claims became the user and groups) and for clients."""

from __future__ import annotations

from flask import Blueprint, g, jsonify

from core.access import ADMIN, Principal

bp = Blueprint("identity", __name__)


def current_principal() -> Principal:
    """The request's principal: set by the security hooks, else ADMIN without keys or for an admin key,
    else a key's own name with no user or groups."""
    principal = getattr(g, "principal", None)
    if principal is not None:
        return principal
    key = getattr(g, "api_key", None)
    if key is None or key.scope == "admin":
        return ADMIN
    return Principal(name=key.name)


@bp.get("/v1/whoami")
def whoami():
    principal = current_principal()
    key = getattr(g, "api_key", None)
    return jsonify(
        name=principal.name,
        user=principal.user,
        groups=sorted(principal.groups),
        collections=list(principal.collections),
        admin=principal.admin,
        scope=key.scope if key is not None else "admin",
        reader_terms=None if principal.admin else principal.reader_terms(),
    )
