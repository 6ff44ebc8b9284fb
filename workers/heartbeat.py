"""Worker heartbeats in Redis: how the reconciler knows within seconds that a worker died mid-batch.

Every process that runs encode tasks (each prefork child, or the main process of a solo/threads pool) has
an identity, `host:pid`, which its claims record on documents (`ingest.claimed_by`). A daemon thread in
that process refreshes `mmsearch:heartbeat:<id>` (expiring after `heartbeat_ttl` seconds) every third of
the TTL and stamps the id in the registry hash `mmsearch:workers`. A thread, not the task loop, so a long
encode keeps beating (torch, tokenizers and image decoders release the GIL, and the interpreter switches
threads every few milliseconds otherwise); a SIGKILL, an out-of-memory kill or a lost machine stops it.

While a task runs, `mmsearch:holding:<id>` names its batch (index and ids): the documents of a batch
that were not claimed yet when the worker died are found there, not on the documents.

A worker is dead when it is in this broker's registry and its heartbeat key was found gone by two
consecutive looks (healing passes), or its last beat is older than twice the TTL. One look is not enough:
on a machine loaded far past its cores a live worker's beat can come late and its key lapse for a moment,
and calling it dead then would hand its batch on while it still works on it (harmless, the writes are
guarded, but it spends an encode attempt). The first look records the worker as a suspect
(`mmsearch:suspects`); a beat seen on a later look clears it. Ids that were never registered here (another
deployment sharing the cluster under the same index prefix) are never called dead, so their documents are
left to their own reconciler.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass

import redis
from celery.signals import worker_process_init, worker_process_shutdown, worker_ready, worker_shutdown

from core.config import get_settings

log = logging.getLogger(__name__)

KEY_PREFIX = "mmsearch:heartbeat:"
HOLDING_PREFIX = "mmsearch:holding:"
REGISTRY = "mmsearch:workers"  # id -> the epoch second of its last beat
SUSPECTS = "mmsearch:suspects"  # id -> the epoch second a look first found its heartbeat key gone
FORGET_AFTER_S = 86_400  # registry entries of workers silent this long are dropped
HOLDING_TTL_S = 7 * 86_400  # a dead worker's holding record outlives any outage the reconciler waits for


def worker_id() -> str:
    """This process's identity: what its claims record and its heartbeat names."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Holding:
    """The batch a worker was working on: its physical index and document ids."""

    worker: str
    index: str
    ids: tuple[str, ...]


class Heartbeat:
    """The heartbeat of one process: `beat` once, then `run` refreshes it until `stop` is set."""

    def __init__(self, broker: redis.Redis, ttl: int, worker: str | None = None) -> None:
        self.broker = broker
        self.ttl = max(1, ttl)
        self.id = worker or worker_id()
        self.pid = os.getpid()
        self.stop = threading.Event()

    def beat(self) -> None:
        """Set the key (expiring after the TTL) and stamp the registry, in one round trip."""
        with self.broker.pipeline() as pipe:
            pipe.set(KEY_PREFIX + self.id, str(self.pid), ex=self.ttl)
            pipe.hset(REGISTRY, self.id, int(time.time()))
            pipe.execute()

    def run(self) -> None:
        """Refresh every third of the TTL, on a fixed schedule (a slow beat does not push the next one
        back); a failed beat (Redis restarting or starved) waits for the next turn."""
        period = self.ttl / 3
        due = time.monotonic() + period
        while not self.stop.wait(max(0.0, due - time.monotonic())):
            due = max(due + period, time.monotonic())
            try:
                self.beat()
            except redis.RedisError as exc:
                log.info("heartbeat of %s skipped: %s", self.id, exc)

    def hold(self, index: str, ids: Sequence[str]) -> None:
        """Record the batch under way (replacing the previous one: one task at a time per process)."""
        body = json.dumps({"index": index, "ids": list(ids)})
        self.broker.set(HOLDING_PREFIX + self.id, body, ex=HOLDING_TTL_S)

    def release(self) -> None:
        self.broker.delete(HOLDING_PREFIX + self.id)

    def end(self) -> None:
        """A clean exit: stop beating and drop the key, so nothing waits for it to expire."""
        self.stop.set()
        self.broker.delete(KEY_PREFIX + self.id, HOLDING_PREFIX + self.id)


_current: Heartbeat | None = None


def start(broker_url: str, ttl: int) -> str | None:
    """Start this process's heartbeat (once per process; a forked child starts its own). Returns the
    worker id, or None when `ttl` <= 0 (off) or the first beat could not reach Redis (then claims record
    no worker and only the reconciler's last-resort rule applies to them)."""
    global _current
    if ttl <= 0:
        return None
    if _current is not None and _current.pid == os.getpid():
        return _current.id
    timeout = max(1.0, ttl / 3)  # a beat never blocks past the next one's turn
    heartbeat = Heartbeat(
        redis.Redis.from_url(broker_url, socket_connect_timeout=timeout, socket_timeout=timeout), ttl
    )
    try:
        heartbeat.beat()
    except redis.RedisError as exc:
        log.warning("no heartbeat for %s (%s): its claims will not name it", heartbeat.id, exc)
        return None
    _current = heartbeat
    threading.Thread(target=heartbeat.run, name="mmsearch-heartbeat", daemon=True).start()
    return heartbeat.id


def current() -> Heartbeat | None:
    """This process's running heartbeat (None before `start`, or in a child forked after it started)."""
    return _current if _current is not None and _current.pid == os.getpid() else None


def stop() -> None:
    """End this process's heartbeat cleanly (worker shutdown)."""
    global _current
    heartbeat = current()
    _current = None
    if heartbeat is not None:
        with suppress(redis.RedisError):
            heartbeat.end()


@contextmanager
def holding(index: str, ids: Sequence[str]) -> Iterator[str | None]:
    """Around one encode task: the batch recorded as this worker's while it runs; yields the worker id
    its claims should record (None without a heartbeat). Redis errors never fail the task."""
    heartbeat = current()
    if heartbeat is None:
        yield None
        return
    try:
        heartbeat.hold(index, ids)
    except redis.RedisError as exc:
        log.info("holding record of %s not written: %s", heartbeat.id, exc)
    try:
        yield heartbeat.id
    finally:
        try:
            heartbeat.release()
        except redis.RedisError as exc:
            log.info("holding record of %s not removed: %s", heartbeat.id, exc)


# --- what the reconciler reads --------------------------------------------------------------------


def dead_workers(broker: redis.Redis, *, ttl: int = 0) -> set[str]:
    """Registered workers whose heartbeat key is gone on this look and was on the previous one too, or
    whose last beat is older than `2 * ttl` seconds (0: any worker without a key, on the first look).
    Workers seen without a key for the first time become suspects; suspects beating again are cleared.
    Silent ones past `FORGET_AFTER_S` are dropped from the registry (their documents have long been left
    to the last-resort rule)."""
    registered = {key.decode(): int(value) for key, value in broker.hgetall(REGISTRY).items()}
    if not registered:
        return set()
    ids = sorted(registered)
    with broker.pipeline() as pipe:
        for worker in ids:
            pipe.exists(KEY_PREFIX + worker)
        pipe.hgetall(SUSPECTS)
        *alive, raw_suspects = pipe.execute()
    suspects = {key.decode() for key in raw_suspects}
    now = time.time()
    silent = {worker for worker, up in zip(ids, alive, strict=True) if not up}
    dead = {w for w in silent if w in suspects or registered[w] <= now - 2 * ttl}
    with broker.pipeline() as pipe:
        if silent - suspects:
            pipe.hset(SUSPECTS, mapping={worker: int(now) for worker in silent - suspects})
        if suspects - silent:
            pipe.hdel(SUSPECTS, *(suspects - silent))
        forgotten = [w for w in dead if registered[w] < now - FORGET_AFTER_S]
        if forgotten:
            pipe.hdel(REGISTRY, *forgotten)
            pipe.hdel(SUSPECTS, *forgotten)
        pipe.execute()
    return dead


def holdings(broker: redis.Redis, workers: set[str]) -> list[Holding]:
    """The batches the given workers were holding when they stopped."""
    ids = sorted(workers)
    if not ids:
        return []
    found = broker.mget([HOLDING_PREFIX + worker for worker in ids])
    held = []
    for worker, raw in zip(ids, found, strict=True):
        if raw:
            body = json.loads(raw)
            held.append(Holding(worker, str(body["index"]), tuple(str(i) for i in body["ids"])))
    return held


def forget_holdings(broker: redis.Redis, workers: Sequence[str]) -> None:
    if workers:
        broker.delete(*(HOLDING_PREFIX + worker for worker in workers))


def uptime(broker: redis.Redis) -> float:
    """Seconds Redis has been up: right after a restart, live workers may not have beaten yet."""
    return float(broker.info("server").get("uptime_in_seconds", 0))


# --- Celery hooks: every process that may run tasks beats (prefork children and the main process) ------


@worker_process_init.connect
@worker_ready.connect
def _start(**_: object) -> None:
    settings = get_settings()
    start(settings.broker.broker_url, settings.workers.heartbeat_ttl)


@worker_process_shutdown.connect
@worker_shutdown.connect
def _stop(**_: object) -> None:
    stop()
