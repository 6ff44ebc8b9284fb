"""Who a request acts for, and the one rule of which documents that principal may read.

A document lists its readers as keyword terms in its `readers` field: `*` (everyone who may use the
collection), `user:<name>` or `group:<name>`. A principal reads a document when one of its own terms is
among them. Admin principals read everything; the filter is then absent. Both the read path
(`SearchService`) and the write path (`IngestService`) take a `Principal` and apply `read_filter` inside
every query they send, so a document a principal may not read does not exist for it.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from core.errors import NotFound

EVERYONE = "*"
READERS_FIELD = "readers"
# A reader term: `*`, `user:<name>` or `group:<name>`; names as a directory or an identity provider gives
# them (letters, digits, `._@-`, spaces inside), at most 256 characters.
READER_TERM = re.compile(r"^(\*|(user|group):[^\s:*,][^:*,\x00-\x1f]{0,255})$")


@dataclass(frozen=True)
class Principal:
    """A user and its groups, the collections it may use (name patterns), and whether it sees all."""

    name: str  # for logs and rate limits: the key's name or the token's subject
    user: str | None = None
    groups: frozenset[str] = frozenset()
    collections: tuple[str, ...] = (EVERYONE,)  # fnmatch patterns of collection names
    admin: bool = False

    def may_use(self, collection: str) -> bool:
        """Whether the collection exists for this principal at all (a 404 otherwise)."""
        return self.admin or any(fnmatch.fnmatchcase(collection, pattern) for pattern in self.collections)

    def reader_terms(self) -> list[str]:
        """The `readers` terms that let this principal read a document."""
        terms = [EVERYONE]
        if self.user:
            terms.append(f"user:{self.user}")
        return terms + [f"group:{group}" for group in sorted(self.groups)]


ADMIN = Principal(name="admin", admin=True)  # keyless local use, admin keys and internal jobs


class DocumentNotFound(NotFound):
    """A document that is missing or that the principal may not read: one answer for both (the HTTP layer
    renders it exactly as a missing id), so no route can tell them apart."""

    def __init__(self) -> None:
        super().__init__("not found")


def read_filter(principal: Principal) -> dict[str, Any] | None:
    """The filter clause that keeps only documents `principal` may read; None for an admin."""
    if principal.admin:
        return None
    return {"terms": {READERS_FIELD: principal.reader_terms()}}


def read_filters(principal: Principal) -> list[dict[str, Any]]:
    """`read_filter` as clauses to splice into a `bool` filter: none for an admin."""
    clause = read_filter(principal)
    return [clause] if clause is not None else []


def check_readers(readers: list[str]) -> list[str]:
    """Validated, de-duplicated reader terms (ValueError naming the first bad one)."""
    for term in readers:
        if not isinstance(term, str) or not READER_TERM.match(term):
            raise ValueError(
                f"reader {term!r} is not `*`, `user:<name>` or `group:<name>` (names without `:`, `*` or `,`)"
            )
    return sorted(set(readers))


def may_read(principal: Principal, readers: Iterable[str] | None) -> bool:
    """The rule of `read_filter` applied to one document's `readers` (a get by id, which is realtime,
    checks the source it fetched with this instead of searching): a document without readers is nobody's
    but an admin's, as the filter's `terms` clause decides."""
    if principal.admin:
        return True
    held = set(readers or ())
    return any(term in held for term in principal.reader_terms())


def principal_token(principal: Principal) -> str:
    """The principal as a compact URL-safe string (what a signed media URL carries in `p=`)."""
    fields = [principal.name, principal.user, sorted(principal.groups), list(principal.collections)]
    raw = json.dumps([*fields, principal.admin], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def principal_from_token(token: str) -> Principal:
    """The principal `principal_token` wrote (ValueError for anything else); only trust it once the
    signature covering it is checked."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        name, user, groups, collections, admin = json.loads(raw)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise ValueError(f"not a principal token: {exc}") from None
    if not (isinstance(name, str) and isinstance(admin, bool) and isinstance(groups, list)):
        raise ValueError("not a principal token")
    if not (isinstance(collections, list) and (user is None or isinstance(user, str))):
        raise ValueError("not a principal token")
    return Principal(name, user, frozenset(map(str, groups)), tuple(map(str, collections)), admin)
