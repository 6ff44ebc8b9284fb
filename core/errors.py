"""The one error base: every error a client can cause or fix says so with its HTTP status.

Layers raise subclasses of `MmsearchError` (ingest, collections, search, jobs); the Flask layer turns any
of them into `{"error": {"status", "type", "message"}}` with the error's `status`, so no layer above the
floor needs to know HTTP, and no error needs registering twice.
"""

from __future__ import annotations


class MmsearchError(Exception):
    """A failure the caller can understand from its message; `status` is the HTTP status it maps to.

    The class sets the status; an instance may override it when it is only known at run time (e.g. the
    worst of several rejected uploads).
    """

    status: int = 400

    def __init__(self, message: str = "", *, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class Unauthorized(MmsearchError):
    status = 401


class Forbidden(MmsearchError):
    status = 403


class NotFound(MmsearchError):
    status = 404


class Conflict(MmsearchError):
    status = 409


class UnsupportedMediaType(MmsearchError):
    status = 415


class Unavailable(MmsearchError):
    """A dependency (Elasticsearch, the broker) is down; retrying later may succeed."""

    status = 503


class BackendError(MmsearchError):
    """A dependency answered with an error that is not the caller's fault."""

    status = 502
