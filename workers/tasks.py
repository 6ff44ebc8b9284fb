"""Celery tasks and enqueueing.

An encode batch retries an unreachable Elasticsearch in-process, with backoff, for `es_retry_seconds`
(unacked all along, so a restart of Elasticsearch costs a wait, not the documents). It stops at
`task_soft_time_limit`: the documents of the chunk under way end `failed` (over the time limit), the rest
go back to the queue. A batch that still cannot reach Elasticsearch leaves its documents `pending`, for the
reconciler (`workers.reconcile`) to send again; any other error fails the batch's pending documents with
the reason. While it runs, the batch is this worker's holding (`workers.heartbeat`) and its claims name
the worker, so the reconciler hands it on within seconds if the worker dies.

A bulk batch makes way for interactive work between its chunks: when an interactive batch waits in a
queue this worker serves, it stops after the chunk under way and sends the rest of its documents back to
its lane, so a single document waits for one chunk, not for a whole bulk batch (`workers.queues`).
"""

from __future__ import annotations

import functools
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import redis
from celery import Task
from celery.exceptions import SoftTimeLimitExceeded
from elastic_transport import ConnectionError as ESConnectionError
from elastic_transport import ConnectionTimeout
from elasticsearch import ApiError
from kombu.exceptions import OperationalError
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

from core.config import get_settings
from core.es import get_client
from ingest.priority import Priority
from workers.celery_app import ENCODE_TASK, app
from workers.encoding import EncodeRun, ShardUnavailable, mark_failed
from workers.heartbeat import holding
from workers.queues import MESSAGE_PRIORITY, MODALITY_QUEUES, depths, route

log = logging.getLogger(__name__)


def unreachable(exc: BaseException) -> bool:
    """Elasticsearch down, restarting or overloaded: worth waiting for, not the documents' fault."""
    if isinstance(exc, ESConnectionError | ConnectionTimeout | ShardUnavailable):
        return True
    return isinstance(exc, ApiError) and exc.meta.status in (429, 502, 503, 504)


class EncodeTask(Task):
    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:  # noqa: ANN001 - Celery's signature
        index, ids = args[0], args[1]
        if unreachable(exc):
            log.error("batch of %d in %s: Client unreachable (%s); left pending", len(ids), index, exc)
            return
        log.error("encode batch of %d in %s failed: %s", len(ids), index, exc)
        try:
            mark_failed(get_client(), index, ids, f"{type(exc).__name__}: {exc}")
        except Exception:  # noqa: BLE001 - the reconciler sends what stays pending again
            log.exception("could not mark the batch failed; its documents stay pending")


def _retrying() -> Retrying:
    return Retrying(
        retry=retry_if_exception(unreachable),
        wait=wait_exponential(multiplier=1, min=1, max=30),
        stop=stop_after_delay(get_settings().workers.es_retry_seconds),
        before_sleep=lambda state: log.warning(
            "Elasticsearch unreachable (%s); retrying", state.outcome.exception() if state.outcome else None
        ),
        reraise=True,
    )


# Time limits come from settings when the app is configured (`workers.celery_app.from_settings`).
@app.task(bind=True, base=EncodeTask, name=ENCODE_TASK, acks_late=True)
def encode_batch(self: Task, index: str, ids: list[str]) -> dict[str, int]:
    with holding(index, ids) as worker:
        return _encode(self, index, ids, worker)


def _encode(task: Task, index: str, ids: list[str], worker: str | None) -> dict[str, int]:
    """The batch's run with in-process retries; at the time limit the chunk under way fails and the
    rest goes back to the queue it came from, as does the rest of a bulk batch that made way."""
    delivery = task.request.delivery_info or {}
    bulk = delivery.get("priority") == MESSAGE_PRIORITY[Priority.BULK]
    # its progress survives the in-process retries
    run = EncodeRun(index, ids, yield_to=interactive_waiting if bulk else None, worker=worker)
    try:
        result = _retrying()(run, get_client())
    except SoftTimeLimitExceeded:
        reason = f"over the task time limit ({get_settings().workers.task_soft_time_limit} s) while encoding"
        failed = mark_failed(get_client(), index, run.current, reason)
        rest = run.remaining()
        send_again(index, rest, delivery)
        log.error("encode batch in %s over its time limit: %d failed, %d requeued", index, failed, len(rest))
        return {"encoded": 0, "failed": failed, "skipped": 0}
    if run.yielded:
        send_again(index, run.remaining(), delivery)
        log.info("bulk batch in %s made way for interactive work; the rest sent back", index)
    log.info("encoded %d, failed %d, skipped %d in %s", result.encoded, result.failed, result.skipped, index)
    return {"encoded": result.encoded, "failed": result.failed, "skipped": result.skipped}


def send_again(index: str, ids: list[str], delivery: Mapping[str, Any]) -> None:
    """Documents of a batch that stopped early, back to the queue and priority it came from."""
    if ids:
        encode_batch.apply_async(
            (index, ids), queue=delivery.get("routing_key"), priority=delivery.get("priority")
        )


@functools.cache
def _broker() -> redis.Redis:
    return redis.Redis.from_url(get_settings().broker.broker_url, socket_timeout=2, socket_connect_timeout=2)


def interactive_waiting() -> bool:
    """An interactive batch waits in a queue this worker serves (a Redis error counts as none)."""
    interactive = set(MODALITY_QUEUES.values())
    served = sorted(interactive & set(app.amqp.queues.consume_from) or interactive)
    try:
        return any(depths(_broker(), served).values())
    except redis.RedisError:
        return False


def enqueue(
    index: str,
    docs: Iterable[tuple[str, str]],
    priority: Priority = Priority.BULK,
    batch_size: int | None = None,
) -> int:
    """Group (id, modality) pairs into batch tasks on their modality's queue (interactive) or their
    collection's bulk lane (`workers.queues.route`); returns the tasks sent.

    With the broker down the documents stay `pending` (they are indexed already) and the reconciler
    sends them once it is back: the caller is not failed for it."""
    settings = get_settings().workers
    size = batch_size or settings.task_batch_size
    priority = priority if settings.fair_queues else Priority.INTERACTIVE  # one FIFO queue per modality
    by_route: dict[tuple[str, int], list[str]] = defaultdict(list)
    for doc_id, modality in docs:
        by_route[route(index, modality, priority)].append(doc_id)
    sent = 0
    try:
        for (queue, message_priority), ids in by_route.items():
            for start in range(0, len(ids), size):
                batch = ids[start : start + size]
                encode_batch.apply_async((index, batch), queue=queue, priority=message_priority)
                sent += 1
    except OperationalError as exc:
        log.error("broker unreachable (%s): documents stay pending until the reconciler sends them", exc)
    return sent
