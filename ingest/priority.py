"""The priority of a write, decided in the write path: a few documents sent by someone waiting for them are
interactive; large NDJSON, crawls, requeues and re-encodes are bulk (see `workers.queues` for how the
workers serve each)."""

from __future__ import annotations

from enum import StrEnum

from core.config import Settings


class Priority(StrEnum):
    INTERACTIVE = "interactive"  # encoded ahead of every bulk batch
    BULK = "bulk"  # shared fairly between collections, batch by batch


def priority_for(count: int, settings: Settings, *, bulk: bool = False) -> Priority:
    """Interactive for at most `interactive_max_documents` documents, unless the caller is bulk work by
    nature (a crawl) whatever its size."""
    if bulk or count > settings.workers.interactive_max_documents:
        return Priority.BULK
    return Priority.INTERACTIVE
