"""Prometheus metrics of the encode workers, and the queue depth read from Redis at scrape time.

Each worker process serves its own registry over HTTP (`start_exporter`) rather than sharing files in
prometheus-client's multiprocess mode, so a scrape never reads another host's state. Workers run the
prefork pool (one child by default, for the task time limits): the main process serves queue depth on
`MMSEARCH_WORKER_METRICS_PORT`, child i its encode metrics on port + 1 + i (see `workers.observability`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import redis
from prometheus_client import REGISTRY, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from workers.queues import depths

log = logging.getLogger(__name__)

ENCODER_ITEMS = Counter(
    "mmsearch_worker_encoder_items_total", "Items an encoder encoded or failed on", ["encoder", "outcome"]
)
ENCODE_BATCH_SECONDS = Histogram(
    "mmsearch_worker_encode_batch_seconds",
    "Seconds one encoder spent on one batch",
    ["encoder"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
ENCODE_ITEM_SECONDS = Histogram(
    "mmsearch_worker_encode_item_seconds",
    "Seconds per item within a batch (batch seconds / items)",
    ["encoder"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
)
BATCH_SIZE = Histogram(
    "mmsearch_worker_encode_batch_size",
    "Items per encoder batch",
    ["encoder"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
DOCUMENTS = Counter("mmsearch_worker_documents_total", "Documents an encode task finished", ["outcome"])
TASKS = Counter("mmsearch_worker_tasks_total", "Celery tasks finished", ["task", "state"])
RETRIES = Counter("mmsearch_worker_task_retries_total", "Celery task retries", ["task"])


def record_encode(encoder: str, encoded: int, failed: int, seconds: float) -> None:
    """One encoder's pass over one batch: items done and failed, time per batch and per item."""
    total = encoded + failed
    ENCODER_ITEMS.labels(encoder, "encoded").inc(encoded)
    ENCODER_ITEMS.labels(encoder, "failed").inc(failed)
    ENCODE_BATCH_SECONDS.labels(encoder).observe(seconds)
    BATCH_SIZE.labels(encoder).observe(total)
    if total:
        ENCODE_ITEM_SECONDS.labels(encoder).observe(seconds / total)


class QueueDepth(Collector):
    """`mmsearch_queue_depth{queue}`: messages waiting in each Celery queue, every interactive queue and
    bulk lane (`mmsearch.text`, `mmsearch.text.bulk.3`: `workers.queues`) with all its priority steps, and
    `mmsearch_queue_unacked`, delivered not acked."""

    def __init__(self, broker_url: str, queues: list[str]) -> None:
        self.client = redis.Redis.from_url(broker_url, socket_timeout=2, socket_connect_timeout=2)
        self.queues = queues

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily(
            "mmsearch_queue_depth", "Messages waiting per Celery queue", labels=["queue"]
        )
        unacked = GaugeMetricFamily("mmsearch_queue_unacked", "Messages delivered to workers, not yet acked")
        try:
            waiting = depths(self.client, self.queues)
            delivered = self.client.hlen("unacked")
        except redis.RedisError as exc:
            log.warning("queue depth unavailable: %s", exc)
            return
        for queue, count in waiting.items():
            depth.add_metric([queue], count)
        unacked.add_metric([], delivered)
        yield depth
        yield unacked


def start_exporter(port: int, broker_url: str | None, queues: list[str]) -> bool:
    """Serve this process's metrics on `port` (all interfaces: Prometheus scrapes from elsewhere)."""
    if broker_url:
        REGISTRY.register(QueueDepth(broker_url, queues))
    try:
        start_http_server(port)
    except OSError as exc:
        log.error("worker metrics: cannot listen on port %d: %s", port, exc)
        return False
    log.info("worker metrics on :%d/metrics", port)
    return True
