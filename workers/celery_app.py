"""The Celery application: Redis broker, late acks, so a killed worker's batch is delivered again."""

from __future__ import annotations

import logging

from celery import Celery
from kombu import Queue

from core.config import get_settings

settings = get_settings()

DEFAULT_QUEUE = "mmsearch"  # re-encode jobs and anything unrouted
# Encoding batches go to a queue per modality, so a GPU worker can take images and audio
# (`mmsearch worker --queues mmsearch.image,mmsearch.audio`) while a CPU worker takes the rest.
# A worker started without --queues consumes all of them.
MODALITY_QUEUES = {m: f"{DEFAULT_QUEUE}.{m}" for m in ("text", "image", "audio", "document")}

app = Celery("mmsearch", broker=settings.broker_url, include=["workers.tasks", "workers.reencode"])
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,  # progress lives on the documents in Elasticsearch
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_default_queue=DEFAULT_QUEUE,
    task_queues=[Queue(name) for name in (DEFAULT_QUEUE, *MODALITY_QUEUES.values())],
    broker_connection_retry_on_startup=True,
    broker_transport_options={"visibility_timeout": settings.visibility_timeout},
    worker_hijack_root_logger=False,
)
# one INFO line per Elasticsearch request drowns the task log
logging.getLogger("elastic_transport.transport").setLevel(logging.WARNING)

from workers import observability  # noqa: E402, F401 - signal hooks: logs, request ids, metrics
