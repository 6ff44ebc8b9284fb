"""Celery tasks and enqueueing.

An encode batch retries an unreachable Elasticsearch in-process, with backoff, for `es_retry_seconds`
(unacked all along, so a restart of Elasticsearch costs a wait, not the documents). It stops at
`task_soft_time_limit`: the documents of the chunk under way end `failed` (over the time limit), the rest
go back to the queue. A batch that still cannot reach Elasticsearch leaves its documents `pending`, for the
reconciler (`workers.reconcile`) to send again; any other error fails the batch's pending documents with
the reason. While it runs, the batch is this worker's holding (`workers.heartbeat`) and its claims name
the worker, so the reconciler hands it on within seconds if the worker dies.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded
from elastic_transport import ConnectionError as ESConnectionError
from elastic_transport import ConnectionTimeout
from elasticsearch import ApiError
from kombu.exceptions import OperationalError
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

from core.config import get_settings
from core.es import get_client
from workers.celery_app import DEFAULT_QUEUE, ENCODE_TASK, MODALITY_QUEUES, app
from workers.encoding import EncodeRun, ShardUnavailable, mark_failed
from workers.heartbeat import holding

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
    rest goes back to the queue it came from."""
    run = EncodeRun(index, ids, worker=worker)  # its progress survives the in-process retries
    try:
        result = _retrying()(run, get_client())
    except SoftTimeLimitExceeded:
        reason = f"over the task time limit ({get_settings().workers.task_soft_time_limit} s) while encoding"
        failed = mark_failed(get_client(), index, run.current, reason)
        rest = run.remaining()
        if rest:
            encode_batch.apply_async((index, rest), queue=task.request.delivery_info.get("routing_key"))
        log.error("encode batch in %s over its time limit: %d failed, %d requeued", index, failed, len(rest))
        return {"encoded": 0, "failed": failed, "skipped": 0}
    log.info("encoded %d, failed %d, skipped %d in %s", result.encoded, result.failed, result.skipped, index)
    return {"encoded": result.encoded, "failed": result.failed, "skipped": result.skipped}


def enqueue(index: str, docs: Iterable[tuple[str, str]], batch_size: int | None = None) -> int:
    """Group (id, modality) pairs into batch tasks on their modality's queue; returns the tasks sent.

    With the broker down the documents stay `pending` (they are indexed already) and the reconciler
    sends them once it is back: the caller is not failed for it."""
    size = batch_size or get_settings().workers.task_batch_size
    by_queue: dict[str, list[str]] = defaultdict(list)
    for doc_id, modality in docs:
        by_queue[MODALITY_QUEUES.get(modality, DEFAULT_QUEUE)].append(doc_id)
    sent = 0
    try:
        for queue, ids in by_queue.items():
            for start in range(0, len(ids), size):
                encode_batch.apply_async((index, ids[start : start + size]), queue=queue)
                sent += 1
    except OperationalError as exc:
        log.error("broker unreachable (%s): documents stay pending until the reconciler sends them", exc)
    return sent
