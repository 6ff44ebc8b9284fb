"""The one error of the embedded stack, so callers catch a single type whatever part failed."""

from __future__ import annotations


class StackError(RuntimeError):
    """A local service could not be started or reached; the message says why and shows its log."""
