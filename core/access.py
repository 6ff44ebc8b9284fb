"""Who a request acts for, and the one rule of which documents that principal may read.

A document lists its readers as keyword terms in its `readers` field: `*` (everyone who may use the
collection), `user:<name>` or `group:<name>`. A principal reads a document when one of its own terms is
among them. Admin principals read everything; the filter is then absent. Both the read path
(`SearchService`) and the write path (`IngestService`) take a `Principal` and apply `read_filter` inside
every query they send, so a document a principal may not read does not exist for it.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Any

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


def read_filter(principal: Principal) -> dict[str, Any] | None:
    """The filter clause that keeps only documents `principal` may read; None for an admin."""
    if principal.admin:
        return None
    return {"terms": {READERS_FIELD: principal.reader_terms()}}


def check_readers(readers: list[str]) -> list[str]:
    """Validated, de-duplicated reader terms (ValueError naming the first bad one)."""
    for term in readers:
        if not isinstance(term, str) or not READER_TERM.match(term):
            raise ValueError(
                f"reader {term!r} is not `*`, `user:<name>` or `group:<name>` (names without `:`, `*` or `,`)"
            )
    return sorted(set(readers))
