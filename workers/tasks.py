"""Celery tasks. Transient Elasticsearch errors retry with backoff; exhausted retries end `failed`."""

from __future__ import annotations

import logging

from celery import Task
from elastic_transport import ConnectionError as ESConnectionError
from elastic_transport import ConnectionTimeout
from elasticsearch import ApiError

from mmsearch.config import get_settings
from mmsearch.es import get_client
from workers.celery_app import app
from workers.encoding import encode_documents, mark_failed

log = logging.getLogger(__name__)


class EncodeTask(Task):
    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:  # noqa: ANN001 - Celery's signature
        index, ids = args[0], args[1]
        log.error("encode batch of %d in %s failed for good: %s", len(ids), index, exc)
        mark_failed(get_client(), index, ids, f"{type(exc).__name__}: {exc}")


@app.task(
    bind=True,
    base=EncodeTask,
    name="mmsearch.encode_batch",
    acks_late=True,
    autoretry_for=(ESConnectionError, ConnectionTimeout, ApiError),
    retry_backoff=2,
    retry_backoff_max=120,
    retry_jitter=True,
    max_retries=get_settings().task_max_retries,
)
def encode_batch(self: Task, index: str, ids: list[str]) -> dict[str, int]:
    result = encode_documents(get_client(), index, ids)
    log.info("encoded %d, failed %d, skipped %d in %s", result.encoded, result.failed, result.skipped, index)
    return {"encoded": result.encoded, "failed": result.failed, "skipped": result.skipped}


def enqueue(index: str, ids: list[str], batch_size: int | None = None) -> int:
    """Group ids into batch tasks; returns the number of tasks sent."""
    size = batch_size or get_settings().task_batch_size
    chunks = [ids[i : i + size] for i in range(0, len(ids), size)]
    for chunk in chunks:
        encode_batch.apply_async((index, chunk))
    return len(chunks)
