"""Logging for the API and the workers: JSON lines carrying the request id that caused them.

The id lives in a context variable: the API sets it per request (from `X-Request-ID` or a new one), the
Celery publish hook copies it into the task's headers and the worker sets it again around the task, so
`grep <id>` over both logs follows a document from its upload to its vectors.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# attributes every LogRecord has; anything else on a record came in through `extra=` and is logged
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "request_id"}


def request_id_from(header: str | None) -> str:
    """The caller's id when it is a sane token (it ends up in logs and headers), else a new one."""
    if header and _VALID_ID.match(header):
        return header
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, `extra=` fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if getattr(record, "request_id", None):
            entry["request_id"] = record.request_id
        entry |= {k: v for k, v in vars(record).items() if k not in _STANDARD}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(log_format: str = "json", level: int = logging.INFO) -> None:
    """Root handler on stderr, JSON or the classic text line (`MMSEARCH_LOG_FORMAT=text`); idempotent."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s")
        )
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if not getattr(h, "_mmsearch", False)]
    handler._mmsearch = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    # Both engines' clients log a line per request at INFO: two JSON records per search on the API's
    # handler (opensearch-py's went on, the elasticsearch client's did not: work only OpenSearch paid).
    for name in ("elastic_transport.transport", "opensearch"):
        logging.getLogger(name).setLevel(logging.WARNING)
