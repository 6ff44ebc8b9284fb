"""Per-request id and access line: `X-Request-ID` in (or a new id), the same id out, one JSON log line.

The id is set in `core.logs.REQUEST_ID` for the request's duration, so every log line of the request and
the Celery tasks it enqueues (see `workers.observability`) carry it.
"""

from __future__ import annotations

import logging
import time

from flask import Flask, Response, g, request

from core.logs import REQUEST_ID, request_id_from

HEADER = "X-Request-ID"
log = logging.getLogger("mmsearch.access")


def register_request_ids(app: Flask) -> None:
    @app.before_request
    def _start() -> None:
        g.request_id_token = REQUEST_ID.set(request_id_from(request.headers.get(HEADER)))
        g.started = time.perf_counter()

    @app.after_request
    def _finish(response: Response) -> Response:
        response.headers[HEADER] = REQUEST_ID.get() or ""
        if request.path not in ("/healthz", "/readyz", "/metrics"):  # probes would drown the log
            log.info(
                "%s %s %s",
                request.method,
                request.path,
                response.status_code,
                extra={
                    "status": response.status_code,
                    "ms": round((time.perf_counter() - g.started) * 1000, 1),
                },
            )
        return response

    @app.teardown_request
    def _clear(_exc: BaseException | None) -> None:
        token = g.pop("request_id_token", None)
        if token is not None:
            REQUEST_ID.reset(token)
