"""Who the caller is, as the API sees it: the principal its key or token acts for, and its scope. For
operators checking an OIDC set-up (which claims became the user and groups) and for clients."""

from __future__ import annotations

from flask import Blueprint, g, jsonify

from search.api import principal as current_principal

bp = Blueprint("identity", __name__)


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
