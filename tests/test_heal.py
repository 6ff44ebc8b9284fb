"""Healing in seconds: worker heartbeats in Redis, claims that name their worker, and the reconciler
handing a dead worker's documents on long before `reconcile_after`. Real Redis, Elasticsearch/OpenSearch,
Celery workers and API."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

import stack
from client.api import ApiClient
from core.config import Settings
from core.es import Client
from ingest.documents import new_document
from ingest.lifecycle import CLAIMED_BY_FIELD
from mappings import catalog
from workers import heartbeat
from workers.reconcile import heal_once

pytestmark = pytest.mark.integration

HEALING_ENV = {
    "MMSEARCH_HEAL_INTERVAL": "2",
    "MMSEARCH_HEARTBEAT_TTL": "4",
    "MMSEARCH_RECONCILE_INTERVAL": "0",  # the last resort off: only healing may bring the batch back
    "MMSEARCH_RECONCILE_AFTER": "3600",
    "MMSEARCH_VISIBILITY_TIMEOUT": "3600",  # and not the broker either
    "MMSEARCH_ENCODE_CHUNK_SIZES": '{"text": 2, "document": 2, "image": 2, "audio": 1}',
}


@pytest.fixture
def broker(settings: Settings, services: None) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.broker.broker_url)
    yield client
    client.close()


def _wait(check, timeout: float, what: str) -> float:  # noqa: ANN001 - a predicate
    """Poll until `check()`; returns the seconds it took."""
    began = time.monotonic()
    while not check():
        assert time.monotonic() - began < timeout, f"{what} not within {timeout:.0f} s"
        time.sleep(0.5)
    return time.monotonic() - began


def test_a_heartbeat_keeps_its_worker_alive_until_it_stops(broker: redis.Redis) -> None:
    beat = heartbeat.Heartbeat(broker, ttl=1, worker=f"test-{uuid.uuid4().hex[:8]}")
    try:
        beat.beat()
        runner = threading.Thread(target=beat.run, daemon=True)
        runner.start()
        time.sleep(2.5)  # past the TTL: only the refreshes keep it
        assert beat.id not in heartbeat.dead_workers(broker)
        beat.stop.set()  # a killed process: no more beats, nothing cleaned up
        runner.join(timeout=5)
        _wait(lambda: beat.id in heartbeat.dead_workers(broker), 5, "the silent worker called dead")
    finally:
        broker.hdel(heartbeat.REGISTRY, beat.id)


def test_a_lapse_of_one_look_is_not_death(broker: redis.Redis) -> None:
    """A heartbeat key missing on one look makes a suspect, not a corpse (a live worker's beat can come
    late under load); missing on the next look too, or silent past twice the TTL, it is dead."""
    late, old = (f"test-{kind}-{uuid.uuid4().hex[:8]}" for kind in ("late", "old"))
    try:
        broker.hset(heartbeat.REGISTRY, late, int(time.time()))  # registered, its key lapsed
        assert late not in heartbeat.dead_workers(broker, ttl=60)
        assert broker.hexists(heartbeat.SUSPECTS, late)
        heartbeat.Heartbeat(broker, ttl=60, worker=late).beat()  # it beats again: cleared
        assert late not in heartbeat.dead_workers(broker, ttl=60)
        assert not broker.hexists(heartbeat.SUSPECTS, late)
        broker.delete(heartbeat.KEY_PREFIX + late)  # and now it stops for good
        assert late not in heartbeat.dead_workers(broker, ttl=60)
        assert late in heartbeat.dead_workers(broker, ttl=60)
        broker.hset(heartbeat.REGISTRY, old, int(time.time()) - 121)  # silent past 2 x TTL
        assert old in heartbeat.dead_workers(broker, ttl=60)
    finally:
        broker.hdel(heartbeat.REGISTRY, late, old)
        broker.hdel(heartbeat.SUSPECTS, late, old)
        broker.delete(heartbeat.KEY_PREFIX + late)


def _pending(es: Client, index: str, doc_id: str, ingest: dict) -> None:
    doc = new_document("heal", doc_id, title=f"doc {doc_id}", content="healing in seconds")
    es.index(index=index, id=doc_id, document={**doc, "ingest": {**doc["ingest"], **ingest}})


def _ingest_of(es: Client, index: str, doc_id: str) -> dict:
    return es.get(index=index, id=doc_id)["_source"]["ingest"]


def test_healing_hands_on_what_dead_workers_held_and_nothing_else(
    settings: Settings, es: Client, broker: redis.Redis, api: ApiClient, collection: str
) -> None:
    """Claimed by a registered dead worker or left unclaimed in its batch: sent again (and a poison one
    past its attempts fails with the reason); claimed by a live worker or one this broker never knew:
    left alone. The session worker (which does not heal) encodes what is sent."""
    index = catalog.get(es, settings, collection).index
    dead, live, foreign = (f"test-{kind}-{uuid.uuid4().hex[:6]}" for kind in ("dead", "live", "foreign"))
    alive = heartbeat.Heartbeat(broker, ttl=60, worker=live)
    try:
        alive.beat()
        broker.hset(heartbeat.REGISTRY, dead, int(time.time()))  # registered, no heartbeat key
        _pending(es, index, "claimed", {"attempts": 1, "claimed_by": dead})
        _pending(es, index, "unclaimed", {})
        _pending(es, index, "poison", {"attempts": 3, "claimed_by": dead})
        _pending(es, index, "theirs", {"attempts": 1, "claimed_by": foreign})
        _pending(es, index, "busy", {"attempts": 1, "claimed_by": live})
        es.indices.refresh(index=index)
        heartbeat.Heartbeat(broker, ttl=60, worker=dead).hold(index, ["claimed", "unclaimed", "busy"])

        assert heal_once(es, broker, settings.replace(workers={"heartbeat_ttl": 0}), force=True) == 3
        assert broker.get(heartbeat.HOLDING_PREFIX + dead) is None  # handed on once

        def settled() -> bool:
            return {_ingest_of(es, index, d)["status"] for d in ("claimed", "unclaimed", "poison")} == {
                "encoded",
                "failed",
            } and _ingest_of(es, index, "poison")["status"] == "failed"

        _wait(settled, 120, "the dead worker's documents encoded")
        assert _ingest_of(es, index, "claimed")["status"] == "encoded"
        assert _ingest_of(es, index, "unclaimed")["status"] == "encoded"
        assert "gave up after 3 encode attempts" in _ingest_of(es, index, "poison")["error"]
        for doc_id, owner in (("theirs", foreign), ("busy", live)):
            assert _ingest_of(es, index, doc_id) == {**_ingest_of(es, index, doc_id), "status": "pending"}
            assert _ingest_of(es, index, doc_id)["claimed_by"] == owner
    finally:
        alive.end()
        broker.hdel(heartbeat.REGISTRY, dead, live)


def _claimed_pending(es: Client, index: str) -> dict[str, str]:
    """Pending documents that a claim names a worker on: id -> worker."""
    es.indices.refresh(index=index)
    query = {
        "bool": {"filter": [{"term": {"ingest.status": "pending"}}, {"exists": {"field": CLAIMED_BY_FIELD}}]}
    }
    hits = es.search(index=index, query=query, size=1000, source=[CLAIMED_BY_FIELD])["hits"]["hits"]
    return {hit["_id"]: hit["_source"]["ingest"]["claimed_by"] for hit in hits}


def test_a_worker_killed_mid_batch_is_healed_in_seconds(
    settings: Settings,
    es: Client,
    broker: redis.Redis,
    api: ApiClient,
    worker,
    collection: str,  # noqa: ANN001
) -> None:
    """SIGKILL a worker mid-batch with the broker's redelivery and the last-resort rule an hour away: its
    documents are encoded by the next worker within seconds, each claimed at most twice."""
    index = catalog.get(es, settings, collection).index
    worker.kill(signal.SIGTERM)  # the session worker neither heals nor may take the batches
    first = stack.start_worker(settings, HEALING_ENV)
    second = None
    try:
        docs = [
            {"id": f"k{i}", "title": f"doc {i}", "text": f"worker heartbeats heal batch {i}"}
            for i in range(480)
        ]
        api.add_documents(collection, docs)
        # kill while a batch is in flight, with most of the work still to come (on an idle machine the
        # worker gets through a few hundred short texts in seconds)
        _wait(lambda: bool(_claimed_pending(es, index)), 240, "a batch in flight")
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
        killed = time.monotonic()
        held = _claimed_pending(es, index)
        holdings = heartbeat.holdings(broker, heartbeat.dead_workers(broker) | set(held.values()))
        assert held or holdings, "the kill fell between two batches: nothing was in flight"
        second = stack.start_worker(settings, HEALING_ENV)
        _wait(lambda: api.collection(collection)["documents"].get("encoded") == len(docs), 240, "healed")
        healed_s = time.monotonic() - killed
        assert healed_s < 240  # reconcile_after and the visibility timeout are 3600 s
        es.indices.refresh(index=index)
        attempts = [_ingest_of(es, index, doc["id"])["attempts"] for doc in docs]
        assert max(attempts) <= 2
        print(f"healed {len(held)} claimed documents {healed_s:.1f} s after the kill")
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=60)
        worker.ensure_running()
