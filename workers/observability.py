"""Celery signal hooks: JSON logs, the request id from API to task, worker metrics and their exporter.

Imported by `workers.celery_app`, so the publishing side (the API) and the consuming side (workers) both
have them. The request id travels as the task header `mmsearch_request_id`.
"""

from __future__ import annotations

import logging
from typing import Any

from billiard.process import current_process
from celery import signals

from core.config import get_settings
from core.logs import REQUEST_ID, configure_logging
from workers.metrics import DOCUMENTS, RETRIES, TASKS, start_exporter

HEADER = "mmsearch_request_id"
log = logging.getLogger(__name__)
_tokens: dict[str, Any] = {}


@signals.setup_logging.connect
def _logging(**_: Any) -> None:
    """Connecting here keeps Celery from configuring logging itself: its lines go through ours too."""
    configure_logging(get_settings().api.log_format)


@signals.before_task_publish.connect
def _add_request_id(headers: dict[str, Any] | None = None, **_: Any) -> None:
    request_id = REQUEST_ID.get()
    if request_id and headers is not None:
        headers.setdefault(HEADER, request_id)


@signals.task_prerun.connect
def _enter_task(task_id: str, task: Any, **_: Any) -> None:
    request_id = getattr(task.request, HEADER, None)
    _tokens[task_id] = REQUEST_ID.set(request_id)


@signals.task_postrun.connect
def _leave_task(task_id: str, **_: Any) -> None:
    token = _tokens.pop(task_id, None)
    if token is not None:
        REQUEST_ID.reset(token)


@signals.task_success.connect
def _succeeded(sender: Any = None, result: Any = None, **_: Any) -> None:
    TASKS.labels(sender.name, "success").inc()
    if isinstance(result, dict):
        for outcome in ("encoded", "failed", "skipped"):
            if isinstance(result.get(outcome), int):
                DOCUMENTS.labels(outcome).inc(result[outcome])


@signals.task_failure.connect
def _failed(sender: Any = None, **_: Any) -> None:
    TASKS.labels(sender.name, "failure").inc()


@signals.task_retry.connect
def _retried(sender: Any = None, **_: Any) -> None:
    RETRIES.labels(sender.name).inc()


def _queues(sender: Any) -> list[str]:
    return sorted(q.name for q in sender.app.conf.task_queues or [])


@signals.worker_ready.connect
def _serve_main(sender: Any = None, **_: Any) -> None:
    """The worker's main process: everything for a solo pool (one process), queue depth for prefork."""
    settings = get_settings()
    if settings.workers.worker_metrics_port:
        start_exporter(settings.workers.worker_metrics_port, settings.broker.broker_url, _queues(sender))


@signals.worker_process_init.connect
def _serve_child(**_: Any) -> None:
    """A prefork child: its own encode metrics on port + 1 + its index (queue depth stays on the main)."""
    settings, index = get_settings(), getattr(current_process(), "index", None)
    # the solo pool fires this in its main process
    if settings.workers.worker_metrics_port and index is not None:
        start_exporter(settings.workers.worker_metrics_port + 1 + index, None, [])
