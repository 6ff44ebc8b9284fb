"""The Celery application: Redis broker, late acks, so a killed worker's batch is delivered again.

Workers run the prefork pool (one child by default): the parent survives a child killed for memory and
enforces the tasks' time limits, which the solo pool cannot. The reconciler (`workers.reconcile`) runs
as a thread in each worker's parent process.

Importing this module reads no settings: what comes from them (broker, visibility timeout, the tasks'
time limits and retries) is filled in by `from_settings` when the app's configuration is first used
(Celery's `on_configure`: a worker starting, or the API's first enqueue), so importing the API builds
nothing and a process configured by its environment gets that environment's values.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from celery.signals import celeryd_after_setup
from kombu import Queue

from core.config import Settings, get_settings
from workers.queues import DEFAULT_QUEUE, MODALITY_QUEUES, PRIORITY_STEPS, all_queues, with_lanes

__all__ = ["DEFAULT_QUEUE", "ENCODE_TASK", "MODALITY_QUEUES", "app", "from_settings"]

ENCODE_TASK = "mmsearch.encode_batch"
JOB_TASKS = ("mmsearch.reencode_copy", "mmsearch.reencode_finish", "mmsearch.drop_index")

app = Celery(
    "mmsearch", include=["workers.tasks", "workers.reencode", "workers.reconcile", "workers.migrate"]
)
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,  # progress lives on the documents in Elasticsearch
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_default_queue=DEFAULT_QUEUE,
    # Interactive queues and bulk lanes (`workers.queues`): with one task prefetched and acked late, a
    # waiting interactive batch is the next one taken, never one stuck behind a prefetched bulk batch.
    task_queues=[Queue(name) for name in all_queues()],
    broker_connection_retry_on_startup=True,
    # With Redis down, a request that indexed documents answers at once; the reconciler enqueues them later.
    task_publish_retry_policy={
        "max_retries": 2,
        "interval_start": 0,
        "interval_step": 0.5,
        "interval_max": 1,
    },
    worker_hijack_root_logger=False,
)


def from_settings(settings: Settings) -> dict[str, Any]:
    """The configuration that comes from settings; per-task options go in as annotations, which Celery
    applies to each task when the app is finalized (after this)."""
    limit = settings.workers.task_soft_time_limit
    return {
        "broker_url": settings.broker.broker_url,
        "broker_transport_options": {
            "visibility_timeout": settings.workers.visibility_timeout,
            "socket_connect_timeout": 3,
            "priority_steps": PRIORITY_STEPS,
            "queue_order_strategy": "round_robin",  # bulk lanes take turns (see workers.queues)
        },
        "task_annotations": {
            ENCODE_TASK: {"soft_time_limit": limit, "time_limit": limit + 60},
            **{name: {"max_retries": settings.workers.task_max_retries} for name in JOB_TASKS},
        },
    }


@app.on_configure.connect
def _configure(sender: Celery, **_: Any) -> None:
    sender.conf.update(from_settings(get_settings()))


@celeryd_after_setup.connect
def _consume_bulk_lanes(instance: Any, **_: Any) -> None:
    """A worker started with `--queues mmsearch.text` serves that modality's bulk lanes too."""
    queues = instance.app.amqp.queues
    selected = list(queues.consume_from)
    for name in with_lanes(selected):
        if name not in selected:
            queues.select_add(name)


# one INFO line per Elasticsearch request drowns the task log
logging.getLogger("elastic_transport.transport").setLevel(logging.WARNING)

from workers import observability  # noqa: E402, F401 - signal hooks: logs, request ids, metrics
