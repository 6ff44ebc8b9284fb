"""The Celery application: Redis broker, late acks, so a killed worker's batch is delivered again."""

from __future__ import annotations

import logging

from celery import Celery

from mmsearch.config import get_settings

settings = get_settings()

app = Celery("mmsearch", broker=settings.broker_url, include=["workers.tasks", "workers.reencode"])
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,  # progress lives on the documents in Elasticsearch
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_default_queue="mmsearch",
    broker_connection_retry_on_startup=True,
    broker_transport_options={"visibility_timeout": settings.visibility_timeout},
    worker_hijack_root_logger=False,
)
# one INFO line per Elasticsearch request drowns the task log
logging.getLogger("elastic_transport.transport").setLevel(logging.WARNING)
