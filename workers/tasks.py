"""Celery tasks. Transient Elasticsearch errors retry with backoff; exhausted retries end `failed`."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable

from celery import Task
from elastic_transport import ConnectionError as ESConnectionError
from elastic_transport import ConnectionTimeout
from elasticsearch import ApiError

from core.config import get_settings
from core.es import get_client
from workers.celery_app import DEFAULT_QUEUE, MODALITY_QUEUES, app
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


def enqueue(index: str, docs: Iterable[tuple[str, str]], batch_size: int | None = None) -> int:
    """Group (id, modality) pairs into batch tasks on their modality's queue; returns the tasks sent."""
    size = batch_size or get_settings().task_batch_size
    by_queue: dict[str, list[str]] = defaultdict(list)
    for doc_id, modality in docs:
        by_queue[MODALITY_QUEUES.get(modality, DEFAULT_QUEUE)].append(doc_id)
    sent = 0
    for queue, ids in by_queue.items():
        for start in range(0, len(ids), size):
            encode_batch.apply_async((index, ids[start : start + size]), queue=queue)
            sent += 1
    return sent
