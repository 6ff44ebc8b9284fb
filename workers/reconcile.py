"""The reconciler: documents left `pending` with nothing queued for them are sent to the workers again.

Messages get lost in ways no single component can see: a worker SIGKILLed holds its batch unacked until
the broker's visibility timeout; documents indexed while Redis was down were never enqueued; a batch
that gave up on an unreachable Elasticsearch leaves its documents pending. The reconciler heals all of
them without a person running `requeue`, by two rules.

**Healing** (every `heal_interval` seconds, a few): the pending documents a dead worker held
(`workers.heartbeat`: registered in this broker, heartbeat key gone on two consecutive passes) are handed
on at once, ahead of every bulk backlog: they go to their modality's interactive queue, so a batch that
was already being encoded when its worker died does not wait behind the thousands queued after it in its
lane. Fairness between collections holds: what a pass sends is bounded by the batches dead workers held
(one per process), not by any collection's backlog. Those its
claims name (`ingest.claimed_by`) have the claim cleared (a guarded write: one claimed again meanwhile is
left alone), and they and the rest of its batch still pending are enqueued again, queues busy or not.
Clearing the claim is what keeps the next pass from sending them twice.

**The last resort** (every `reconcile_interval` seconds) re-enqueues the documents of every collection
index that are `pending` and untouched (`updated_at`, which each encode run's claim refreshes) for
`reconcile_after` seconds, but only while the encode queues are empty: while a backlog drains, pending
documents are simply waiting, and sending them twice would only grow the queue. Sending one twice is
harmless anyway: workers skip what is no longer pending. It scans every index under `index_prefix`:
deployments sharing a cluster with different brokers need distinct prefixes, or each reconciler sends
the other's documents to its own workers (healing only touches workers registered in its own broker).

It runs as a daemon thread in every worker's main process (started on Celery's `worker_ready`), and a
pass of each rule is taken by one worker at a time: a Redis key set with NX and an expiry of the rule's
interval.

What the last resort sends goes where the write path would have sent it (`ingest.priority`): a
collection's few stale documents (a lost interactive batch) to the interactive queue, more to the
collection's bulk lane.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import redis
from celery.signals import worker_ready
from elasticsearch import NotFoundError

from core.config import Settings, get_settings
from core.es import Client, get_client, streaming_bulk
from ingest.lifecycle import CLAIMED_BY_FIELD, STATUS_FIELD, DocumentStatus, claimed_by_of, status_of
from ingest.priority import Priority, priority_for
from workers import heartbeat
from workers.heartbeat import Holding
from workers.queues import all_queues, depths
from workers.tasks import enqueue

log = logging.getLogger(__name__)

Doc = Mapping[str, Any]  # a search hit or mget doc: `_index`, `_id`, `_seq_no`, `_primary_term`, `_source`
LOCK_KEY = "mmsearch:reconcile"
HEAL_LOCK_KEY = "mmsearch:reconcile:heal"
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


# --- healing: the documents of dead workers ---------------------------------------------------------


def claimed_by_dead(es: Client, settings: Settings, dead: set[str]) -> list[Doc]:
    """The pending documents whose claim names one of the `dead` workers (with their sequence numbers)."""
    query = {
        "bool": {
            "filter": [
                {"term": {STATUS_FIELD: DocumentStatus.PENDING.value}},
                {"terms": {CLAIMED_BY_FIELD: sorted(dead)}},
            ]
        }
    }
    resp = es.search(
        index=f"{settings.engine.index_prefix}*",
        query=query,
        size=MAX_PER_PASS,
        source=["modality", CLAIMED_BY_FIELD],
        seq_no_primary_term=True,
        ignore_unavailable=True,
        allow_no_indices=True,
    )
    return list(resp["hits"]["hits"])


def held_by_dead(es: Client, held: list[Holding], dead: set[str]) -> list[Doc]:
    """The documents of dead workers' batches that are still pending and claimed by no live worker
    (never claimed, or claimed by a dead one)."""
    found: list[Doc] = []
    for holding in held:
        try:
            resp = es.mget(
                index=holding.index,
                ids=list(holding.ids),
                source_includes=["modality", "ingest.status", CLAIMED_BY_FIELD],
            )
        except NotFoundError:  # the collection is gone: nothing of it to hand on
            continue
        found += [
            {**doc, "_index": holding.index}
            for doc in resp["docs"]
            if doc.get("found")
            and status_of(doc["_source"]) == DocumentStatus.PENDING
            and claimed_by_of(doc["_source"]) in (None, *dead)
        ]
    return found


def release_claims(es: Client, docs: list[Doc]) -> set[tuple[str, str]]:
    """Clear the claims of `docs` (guarded: a document changed since it was read is someone's now);
    returns (index, id) of every document that is free to send again, unclaimed ones included."""
    claimed = {(d["_index"], d["_id"]): d for d in docs if claimed_by_of(d["_source"])}
    free = {(d["_index"], d["_id"]) for d in docs if not claimed_by_of(d["_source"])}
    actions = [
        {
            "_op_type": "update",
            "_index": index,
            "_id": doc_id,
            "if_seq_no": doc["_seq_no"],
            "if_primary_term": doc["_primary_term"],
            "doc": {"ingest": {"claimed_by": None}},
        }
        for (index, doc_id), doc in claimed.items()
    ]
    for ok, item in streaming_bulk(es, actions, raise_on_error=False, raise_on_exception=False):
        out = item["update"]
        if ok:
            free.add((out["_index"], out["_id"]))
    return free


def heal_once(es: Client, broker: redis.Redis, settings: Settings, force: bool = False) -> int:
    """One healing pass (when this process wins its lock, or `force`); returns the documents sent again.
    Skipped right after a Redis restart, before live workers have beaten again."""
    interval = max(1, settings.workers.heal_interval)
    if not force and not broker.set(HEAL_LOCK_KEY, "1", nx=True, ex=interval):
        return 0
    if heartbeat.uptime(broker) < settings.workers.heartbeat_ttl:
        return 0
    dead = heartbeat.dead_workers(broker, ttl=settings.workers.heartbeat_ttl)
    if not dead:
        return 0
    held = heartbeat.holdings(broker, dead)
    docs = {(d["_index"], d["_id"]): d for d in claimed_by_dead(es, settings, dead)}
    docs.update({(d["_index"], d["_id"]): d for d in held_by_dead(es, held, dead)})
    free = release_claims(es, list(docs.values()))
    by_index: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for index, doc_id in sorted(free):
        by_index[index].append((doc_id, docs[(index, doc_id)]["_source"].get("modality", "text")))
    for index, pairs in by_index.items():
        enqueue(index, pairs, Priority.INTERACTIVE)
        log.warning("healing: %d documents of %s held by a dead worker; sent again", len(pairs), index)
    heartbeat.forget_holdings(broker, [holding.worker for holding in held])
    return len(free)


# --- the thread -------------------------------------------------------------------------------------


def tick(settings: Settings) -> int:
    """Seconds between the thread's turns: the shorter of the two rules' intervals that are on."""
    return min(i for i in (settings.workers.heal_interval, settings.workers.reconcile_interval) if i > 0)


def run_forever(settings: Settings, stop: threading.Event) -> None:
    """The loop of the worker's reconciler thread: each turn a healing pass and a last-resort pass (each
    taken when its Redis lock allows); any error (Redis or Elasticsearch down) waits a turn."""
    broker = redis.Redis.from_url(settings.broker.broker_url, socket_connect_timeout=3, socket_timeout=10)
    passes = [
        (rule, interval)
        for rule, interval in (
            (heal_once, settings.workers.heal_interval),
            (reconcile_once, settings.workers.reconcile_interval),
        )
        if interval > 0
    ]
    while not stop.wait(tick(settings)):
        for rule, _ in passes:
            try:
                rule(get_client(), broker, settings)
            except Exception as exc:  # noqa: BLE001 - a pass that cannot reach a service waits for the next
                log.info("%s skipped: %s: %s", rule.__name__, type(exc).__name__, exc)


@worker_ready.connect
def _start(**_: object) -> None:
    settings = get_settings()
    if settings.workers.reconcile_interval <= 0 and settings.workers.heal_interval <= 0:
        return
    thread = threading.Thread(
        target=run_forever, args=(settings, threading.Event()), name="mmsearch-reconciler", daemon=True
    )
    thread.start()
    log.info(
        "reconciler: healing every %d s (heartbeats last %d s); every %d s, documents pending %d s with "
        "idle queues are sent again (0: off; started %s)",
        settings.workers.heal_interval,
        settings.workers.heartbeat_ttl,
        settings.workers.reconcile_interval,
        settings.workers.reconcile_after,
        time.strftime("%H:%M:%S"),
    )
