"""The reconciler: documents left `pending` with nothing queued for them are sent to the workers again.

Messages get lost in ways no single component can see: a worker SIGKILLed holds its batch unacked until
the broker's visibility timeout; documents indexed while Redis was down were never enqueued; a batch
that gave up on an unreachable Elasticsearch leaves its documents pending. The reconciler heals all of
them without a person running `requeue`.

It runs as a daemon thread in every worker's main process (started on Celery's `worker_ready`), and a
pass is taken by one worker at a time: a Redis key set with NX and an expiry of `reconcile_interval`.
A pass re-enqueues the documents of every collection index that are `pending` and untouched (`updated_at`,
which each encode run's claim refreshes) for `reconcile_after` seconds, but only while the encode
queues are empty: while a backlog drains, pending documents are simply waiting, and sending them twice
would only grow the queue. Sending one twice is harmless anyway: workers skip what is no longer pending.
It scans every index under `index_prefix`: deployments sharing a cluster with different brokers need
distinct prefixes, or each reconciler sends the other's documents to its own workers.

What it sends goes where the write path would have sent it (`ingest.priority`): a collection's few stale
documents (a lost interactive batch) to the interactive queue, more to the collection's bulk lane.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict

import redis
from celery.signals import worker_ready

from core.config import Settings, get_settings
from core.es import Client, get_client
from ingest.lifecycle import STATUS_FIELD, DocumentStatus
from ingest.priority import priority_for
from workers.queues import all_queues, depths
from workers.tasks import enqueue

log = logging.getLogger(__name__)

LOCK_KEY = "mmsearch:reconcile"
MAX_PER_PASS = 10_000


def queues_idle(broker: redis.Redis) -> bool:
    """No encode batch waits in any queue, lane or priority step (batches under way are unacked, not in
    the lists)."""
    return not any(depths(broker, all_queues()).values())


def stale_pending(es: Client, settings: Settings) -> dict[str, list[tuple[str, str]]]:
    """Physical index -> (id, modality) of the documents pending and untouched past the deadline."""
    query = {
        "bool": {
            "filter": [
                {"term": {STATUS_FIELD: DocumentStatus.PENDING.value}},
                {"range": {"updated_at": {"lte": f"now-{settings.workers.reconcile_after}s"}}},
            ]
        }
    }
    resp = es.search(
        index=f"{settings.engine.index_prefix}*",
        query=query,
        size=MAX_PER_PASS,
        source=["modality"],
        ignore_unavailable=True,
        allow_no_indices=True,
    )
    found: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for hit in resp["hits"]["hits"]:
        found[hit["_index"]].append((hit["_id"], hit["_source"].get("modality", "text")))
    return found


def reconcile_once(es: Client, broker: redis.Redis, settings: Settings, force: bool = False) -> int:
    """One pass (when this process wins the lock, or `force`); returns the documents sent again."""
    if not force and not broker.set(LOCK_KEY, "1", nx=True, ex=max(1, settings.workers.reconcile_interval)):
        return 0
    if not queues_idle(broker):
        return 0
    sent = 0
    for index, docs in stale_pending(es, settings).items():
        enqueue(index, docs, priority_for(len(docs), settings))
        sent += len(docs)
        log.warning(
            "reconciler: %d documents of %s were pending with nothing queued; sent again", len(docs), index
        )
    return sent


def run_forever(settings: Settings, stop: threading.Event) -> None:
    """The loop of the worker's reconciler thread: any error (Redis or Elasticsearch down) waits a turn."""
    broker = redis.Redis.from_url(settings.broker.broker_url, socket_connect_timeout=3, socket_timeout=10)
    while not stop.wait(settings.workers.reconcile_interval):
        try:
            reconcile_once(get_client(), broker, settings)
        except Exception as exc:  # noqa: BLE001 - a pass that cannot reach a service waits for the next one
            log.info("reconciler pass skipped: %s: %s", type(exc).__name__, exc)


@worker_ready.connect
def _start(**_: object) -> None:
    settings = get_settings()
    if settings.workers.reconcile_interval <= 0:
        return
    thread = threading.Thread(
        target=run_forever, args=(settings, threading.Event()), name="mmsearch-reconciler", daemon=True
    )
    thread.start()
    log.info(
        "reconciler: every %d s, documents pending %d s with idle queues are sent again (started %s)",
        settings.workers.reconcile_interval,
        settings.workers.reconcile_after,
        time.strftime("%H:%M:%S"),
    )
