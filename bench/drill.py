"""The reliability drill: ingest N mixed documents while a worker is SIGKILLed mid-batch, Elasticsearch
restarted once and Redis restarted once; then check that nothing was lost or duplicated.

It runs its own embedded stack (Elasticsearch, Redis, one or more workers, the API) on ports and a data dir
of its own, so it can kill and restart them. Workers can be given queues, as a GPU box would run them
(`--workers 3 --worker-queues text --worker-queues media --worker-queues all`); the one killed is
`--kill-worker` (its index), each time while it holds a batch. The broker's visibility timeout stays at
its default (an hour) and `reconcile_after` at five minutes, so what brings the killed batches back is
the reconciler's healing (heartbeats), not the broker. At the end every accepted document must be
`encoded`, or `failed` with a reason, and the index must hold exactly the accepted documents; the table
says how long after the last kill the last document was done (time to heal).

    python -m bench.drill --docs 2000 --kills 10 --workers 3
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import signal
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import numpy as np
import psutil
import redis
import requests
from PIL import Image
from rich.console import Console

import stack
from bench.common import Report, save, show
from core.config import (
    ApiSettings,
    BrokerSettings,
    EngineSettings,
    SecuritySettings,
    Settings,
    WorkerSettings,
)
from core.es import make_client, scan
from workers.celery_app import MODALITY_QUEUES
from workers.heartbeat import HOLDING_PREFIX

DATA_DIR = Path("/tmp/mmsearch-drill")
IMAGE_SHARE = 0.15  # of the documents, the rest are text
POISON_EVERY = 97  # every so many images is a truncated PNG: accepted or refused, never lost
CHUNK = 50  # documents per ingest request
NDJSON = {"Content-Type": "application/x-ndjson"}


DEFAULT_LAYOUT = ("text", "media", "all")  # several workers: text on one, media on another, ...
# Names a `--worker-queues` entry may use besides queue and modality names.
QUEUE_GROUPS: dict[str, tuple[str, ...] | None] = {
    "all": None,  # every queue (a worker started without -Q)
    "media": ("image", "audio", "document"),
}


def worker_queues(spec: str) -> list[str] | None:
    """The queues of one worker from a spec: `all`, `media`, or a comma list of modalities (`text`) and
    queue names (`mmsearch`, or any other a deployment adds); None means every queue."""
    names: list[str] = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        if part in QUEUE_GROUPS:
            group = QUEUE_GROUPS[part]
            if group is None:
                return None
            names += [MODALITY_QUEUES[m] for m in group]
        else:
            names.append(MODALITY_QUEUES.get(part, part))
    return names or None


@dataclass
class Drill:
    settings: Settings
    env: dict[str, str]
    queues: list[list[str] | None] = field(default_factory=lambda: [None])  # one entry per worker
    kill_target: int = 0
    workers: list[Any] = field(default_factory=list)
    kills: int = 0
    idle_kills: int = 0  # kills of a worker that held no batch within the wait
    last_kill: float = 0.0  # epoch seconds
    last_busy_kill: float = 0.0  # epoch seconds of the last kill that interrupted a batch
    held: list[tuple[float, list[str]]] = field(default_factory=list)  # (kill time, ids the target held)
    es_restarts: int = 0
    redis_restarts: int = 0
    retried_requests: int = 0
    ingested: threading.Event = field(default_factory=threading.Event)  # every document was posted
    events: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def note(self, event: str) -> None:
        self.events.append(f"{time.monotonic() - self.started:7.1f}s {event}")

    def start_workers(self) -> None:
        self.workers = [stack.start_worker(self.settings, self.env, queues=q) for q in self.queues]

    def stop_workers(self) -> None:
        for worker in self.workers:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.pid, signal.SIGTERM)

    def kill_worker(self, *, holding: bool) -> None:
        """SIGKILL the target worker's process group (parent and children) and start it again."""
        target = self.workers[self.kill_target]
        os.killpg(target.pid, signal.SIGKILL)
        target.wait(timeout=60)
        self.last_kill = time.time()
        self.last_busy_kill = self.last_kill if holding else self.last_busy_kill
        self.kills += 1
        self.idle_kills += not holding
        self.note(
            f"worker {self.kill_target} SIGKILLed ({self.kills}{'' if holding else ', holding nothing'})"
        )
        self.workers[self.kill_target] = stack.start_worker(
            self.settings, self.env, queues=self.queues[self.kill_target]
        )

    def restart(self, name: str, down_s: float) -> None:
        stack.stop(self.settings, name)
        self.note(f"{name} stopped")
        time.sleep(down_s)
        (stack.ensure_elasticsearch if name == "elasticsearch" else stack.ensure_redis)(self.settings)
        self.note(f"{name} back")
        if name == "elasticsearch":
            self.es_restarts += 1
        else:
            self.redis_restarts += 1


def drill_settings(
    data_dir: Path, es_port: int, redis_port: int, api_port: int, *, reconcile_after: int = 300
) -> tuple[Settings, dict]:
    """Embedded services on the drill's own ports, healing every 3 s (heartbeats lasting 15 s), the
    last-resort deadline `reconcile_after` and the default (hour-long) visibility timeout; child processes
    get every setting from `stack.child_env`."""
    settings = Settings(
        engine=EngineSettings(ELASTICSEARCH_URL="", data_dir=data_dir, es_port=es_port, es_heap="512m"),
        broker=BrokerSettings(REDIS_URL="", redis_port=redis_port),
        api=ApiSettings(api_port=api_port, api_url=""),
        security=SecuritySettings(api_keys=[]),
        workers=WorkerSettings(
            task_batch_size=32,
            visibility_timeout=3600,
            reconcile_after=reconcile_after,
            reconcile_interval=5,
            heal_interval=3,
            heartbeat_ttl=15,
        ),
    )
    return settings, {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def documents(n: int, seed: int = 0) -> list[tuple[str, Any]]:
    """("text", document) and ("image", (filename, bytes)) items in a shuffled order."""
    rng = random.Random(seed)
    words = "retrieval vector lexical hybrid fusion worker broker shard replica encoder query index".split()
    items: list[tuple[str, Any]] = []
    for i in range(n):
        if rng.random() < IMAGE_SHARE:
            pixels = np.random.default_rng(i).integers(0, 256, (48, 48, 3), dtype=np.uint8)
            buf = io.BytesIO()
            Image.fromarray(pixels).save(buf, format="PNG")
            data = buf.getvalue()
            if i % POISON_EVERY == 0:
                data = data[: len(data) // 3]  # truncated: a lying, corrupt file
            items.append(("image", (f"drill-{i}.png", data)))
        else:
            text = " ".join(rng.choice(words) for _ in range(rng.randint(8, 40)))
            items.append(("text", {"id": f"t{i}", "title": f"doc {i}", "text": text}))
    return items


def post(drill: Drill, send: Callable[[], requests.Response]) -> dict[str, Any]:
    """Send until the API answers below 500: while a service restarts, requests fail and are retried;
    ids are fixed (text) or content-derived (files), so a retry never duplicates."""
    for attempt in range(600):
        try:
            resp = send()
            if resp.status_code < 500:
                if resp.status_code >= 400:
                    raise RuntimeError(f"HTTP {resp.status_code}: {resp.text[:300]}")
                return resp.json()
        except requests.RequestException:
            pass
        drill.retried_requests += attempt == 0
        time.sleep(1)
    raise RuntimeError("the API did not answer for 10 minutes")


def ingest(
    drill: Drill, base: str, name: str, items: list[tuple[str, Any]], *, rate: float | None = None
) -> set[str]:
    """Post the items in chunks (NDJSON for text, multipart for images), at most `rate` items a second
    when given (work keeps arriving, so every kill finds the worker busy); returns the accepted ids."""
    url = f"{base}/v1/collections/{name}"
    accepted: set[str] = set()
    began = time.monotonic()
    for start in range(0, len(items), CHUNK):
        if rate:
            time.sleep(max(0.0, began + start / rate - time.monotonic()))
        chunk = items[start : start + CHUNK]
        texts = [doc for kind, doc in chunk if kind == "text"]
        files = [doc for kind, doc in chunk if kind == "image"]
        if texts:
            body = "\n".join(json.dumps(d) for d in texts).encode()
            out = post(
                drill, lambda b=body: requests.post(f"{url}/documents", data=b, headers=NDJSON, timeout=60)
            )
            accepted.update(out["ids"])
        if files:
            parts = [("file", (fname, data, "image/png")) for fname, data in files]
            out = post(drill, lambda p=parts: requests.post(f"{url}/files", files=p, timeout=60))
            accepted.update(f["id"] for f in out["files"] if f["status"] in ("pending", "duplicate"))
    return accepted


def counts(settings: Settings, name: str) -> dict[str, int]:
    try:
        resp = requests.get(f"{settings.api.api_base}/v1/collections/{name}", timeout=10)
        return resp.json()["documents"] if resp.status_code == 200 else {}
    except (requests.RequestException, ValueError, KeyError):
        return {}


def held_batch(drill: Drill) -> list[str]:
    """The ids of the batch a process of the target worker (its main process or a pool child) holds
    now, by the holding records its heartbeats write (`workers.heartbeat`); [] when none."""
    try:
        leader = psutil.Process(drill.workers[drill.kill_target].pid)
        pids = {leader.pid, *(child.pid for child in leader.children(recursive=True))}
        broker = redis.Redis(port=drill.settings.broker.redis_port, socket_timeout=5)
        keys = [k for k in broker.keys(f"{HOLDING_PREFIX}*") if int(k.decode().rsplit(":", 1)[1]) in pids]
        bodies = [json.loads(raw) for raw in broker.mget(keys) if raw] if keys else []
    except (psutil.Error, redis.RedisError, ValueError):
        return []
    return [str(doc_id) for body in bodies for doc_id in body["ids"]]


def all_done(drill: Drill, name: str) -> bool:
    """Every document posted and none pending: a kill now finds no work to interrupt."""
    if not drill.ingested.is_set():
        return False
    now = counts(drill.settings, name)
    return bool(now.get("total")) and not now.get("pending")


def chaos(
    drill: Drill, kills: int, stop: threading.Event, *, name: str, n: int, hold_wait: float = 120
) -> None:
    """Kill the target worker `kills` times, spread over the encoding: kill k once k/(kills+1) of the `n`
    documents are encoded and the target holds a batch (or `hold_wait` seconds later without one),
    somewhere in that batch; restart Elasticsearch after a third of the kills and Redis after two
    thirds. The batch held at each kill is noted, to time its healing. Once every document is done (the
    encoding outpaced the kills and the killed worker's restarts) the remaining kills come at once, idle:
    the time to heal counts from the last kill that interrupted a batch."""
    es_at, redis_at = max(1, kills // 3), max(1, 2 * kills // 3)
    while drill.kills < kills and not stop.is_set():
        due = n * (drill.kills + 1) / (kills + 1)
        while counts(drill.settings, name).get("encoded", 0) < due and not all_done(drill, name):
            if stop.wait(1):
                return
        deadline = time.monotonic() + hold_wait
        while not held_batch(drill) and time.monotonic() < deadline and not all_done(drill, name):
            if stop.wait(0.5):
                return
        time.sleep(random.uniform(0.2, 1.5))  # mid-batch, somewhere
        held = held_batch(drill)
        drill.kill_worker(holding=bool(held))
        drill.held.append((drill.last_kill, held))
        if drill.kills == es_at and not drill.es_restarts:
            drill.restart("elasticsearch", 5)
        if drill.kills == redis_at and not drill.redis_restarts:
            drill.restart("redis", 5)


def check(settings: Settings, index_alias: str, accepted: set[str]) -> dict[str, Any]:
    """What the index holds against what the API accepted."""
    es = make_client(settings)
    es.indices.refresh(index=index_alias)
    fields = ["ingest.status", "ingest.error", "ingest.encoded_at", "updated_at"]
    stored: dict[str, dict[str, Any]] = {
        hit["_id"]: {**hit["_source"]["ingest"], "updated_at": hit["_source"].get("updated_at")}
        for hit in scan(es, index=index_alias, _source=fields)
    }
    failed = [b for b in stored.values() if b["status"] == "failed"]
    status = {"encoded": 0, "failed": 0, "pending": 0}
    for block in stored.values():
        status[block["status"]] = status.get(block["status"], 0) + 1
    return {
        **status,
        "indexed": len(stored),
        "missing": len(accepted - stored.keys()),
        "unexpected": len(stored.keys() - accepted),
        "failed_without_reason": sum(1 for b in failed if not b.get("error")),
        "reasons": sorted({(b.get("error") or "")[:80] for b in failed}),
        "done_at": (done := done_at(stored)),
        "last_done": max(done.values(), default=0.0),
    }


def done_at(stored: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Epoch seconds at which each document reached its final state (encoded, or failed)."""
    stamps = {
        doc_id: b.get("encoded_at") if b["status"] == "encoded" else b.get("updated_at")
        for doc_id, b in stored.items()
        if b["status"] in ("encoded", "failed")
    }
    return {doc_id: datetime.fromisoformat(stamp).timestamp() for doc_id, stamp in stamps.items() if stamp}


def batch_heal_seconds(drill: Drill, done: dict[str, float]) -> list[float]:
    """Per kill that found a batch: seconds until the last document of that batch was done."""
    return [
        round(max(done.get(doc_id, 0.0) for doc_id in ids) - killed, 1) for killed, ids in drill.held if ids
    ]


def wait_settled(
    settings: Settings, name: str, accepted: int, monkey: threading.Thread, *, timeout: float
) -> None:
    """Until every accepted document is in the collection, none is pending and the chaos thread is done
    (or `timeout` seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = counts(settings, name)
        if now.get("total") == accepted and not now.get("pending") and not monkey.is_alive():
            break
        time.sleep(2)


def report(
    n: int, accepted: int, result: dict[str, Any], drill: Drill, *, timings: dict[str, float]
) -> Report:
    """The drill's one row (PASS when nothing accepted is missing, pending, duplicated or failed
    without a reason) and its notes."""
    ok = result["missing"] == 0 and result["unexpected"] == 0 and result["pending"] == 0
    ok = ok and result["failed_without_reason"] == 0 and result["indexed"] == accepted
    row = {
        "submitted": n,
        "accepted": accepted,
        "indexed": result["indexed"],
        "encoded": result["encoded"],
        "failed": result["failed"],
        "pending": result["pending"],
        "missing": result["missing"],
        "duplicates/unexpected": result["unexpected"],
        "workers": len(drill.queues),
        "worker kills": drill.kills,
        "kills mid-batch": drill.kills - drill.idle_kills,
        "ES restarts": drill.es_restarts,
        "Redis restarts": drill.redis_restarts,
        **{label: round(seconds, 1) for label, seconds in timings.items()},
        "last kill -> last done s": heal_seconds(drill, result["last_done"]),
        "done after last kill": sum(1 for t in result["done_at"].values() if t > drill.last_busy_kill),
        "killed batch done s (max)": max(batch_heal_seconds(drill, result["done_at"]), default=None),
        "verdict": "PASS" if ok else "FAIL",
    }
    layout = [f"worker {i}: {','.join(q) if q else 'all queues'}" for i, q in enumerate(drill.queues)]
    notes = [f"failure reasons: {r}" for r in result["reasons"]] + [
        f"requests retried while a service restarted: {drill.retried_requests}",
        f"{'; '.join(layout)}; killed: worker {drill.kill_target} ({drill.idle_kills} kills found it idle)",
        f"seconds from each kill to the last document of the batch it interrupted done: "
        f"{batch_heal_seconds(drill, result['done_at'])}",
        "last kill -> last done: from the last kill that interrupted a batch; it counts the healing of "
        "that batch and the encoding of every document still waiting then ('done after last kill')",
        *drill.events,
    ]
    return Report(
        name="drill", title="Reliability drill (kills and restarts during ingest)", rows=[row], notes=notes
    )


def heal_seconds(drill: Drill, done: float) -> float | None:
    """Seconds from the last kill that interrupted a batch to the last document done."""
    return round(max(0.0, done - drill.last_busy_kill), 1) if drill.last_busy_kill else None


def run(
    n: int = 200,
    kills: int = 10,
    data_dir: Path = DATA_DIR,
    es_port: int = 9270,
    *,
    redis_port: int = 6392,
    api_port: int = 8139,
    timeout: float = 1800,
    queues: Sequence[str] = ("all",),
    kill_target: int = 0,
    reconcile_after: int = 300,
    rate: float | None = None,
) -> Report:
    """The drill on its own stack with one worker per entry of `queues` (see `worker_queues`), the
    `kill_target`-th of them killed `kills` times."""
    settings, env = drill_settings(data_dir, es_port, redis_port, api_port, reconcile_after=reconcile_after)
    drill = Drill(settings, env, queues=[worker_queues(q) for q in queues], kill_target=kill_target)
    stack.ensure_elasticsearch(settings)
    stack.ensure_redis(settings)
    drill.start_workers()
    api = stack.start_api(settings, env)
    stack.wait_for_api(settings, pid=api.pid)
    name = f"drill-{uuid.uuid4().hex[:8]}"
    base = settings.api.api_base
    post(
        drill,
        lambda: requests.post(f"{base}/v1/collections", json={"name": name, "encoders": ["text", "phash"]}),
    )
    items, stop = documents(n), threading.Event()
    monkey = threading.Thread(
        target=chaos, args=(drill, kills, stop), kwargs={"name": name, "n": n}, daemon=True
    )
    began = time.monotonic()
    if rate:
        drill.note(f"posting at most {rate:g} documents a second")
    monkey.start()
    try:
        accepted = ingest(drill, base, name, items, rate=rate)
        drill.ingested.set()
        ingest_s = time.monotonic() - began
        wait_settled(settings, name, len(accepted), monkey, timeout=timeout)
        stop.set()
        monkey.join(timeout=120)
        settled_s = time.monotonic() - began
        result = check(settings, f"{settings.engine.index_prefix}{name}", accepted)
    finally:
        stop.set()
        os.killpg(api.pid, signal.SIGTERM)
        drill.stop_workers()
    return report(n, len(accepted), result, drill, timings={"ingest s": ingest_s, "settled s": settled_s})


@click.command()
@click.option("--docs", "n", default=200, show_default=True)
@click.option("--kills", default=10, show_default=True)
@click.option(
    "--data-dir", type=click.Path(path_type=Path), default=Path("/tmp/mmsearch-drill"), show_default=True
)
@click.option("--es-port", default=9270, show_default=True)
@click.option("--redis-port", default=6392, show_default=True)
@click.option("--api-port", default=8139, show_default=True)
@click.option("--workers", default=1, show_default=True, help="worker processes (each its own Celery node)")
@click.option(
    "--worker-queues",
    multiple=True,
    help="queues of each worker in turn: all, media, or modalities/queue names joined by commas "
    f"(default for several workers: {', '.join(DEFAULT_LAYOUT)}, cycled)",
)
@click.option("--kill-worker", default=0, show_default=True, help="index of the worker that is killed")
@click.option("--reconcile-after", default=300, show_default=True, help="the last-resort deadline (s)")
@click.option("--down/--keep", default=True, help="stop the drill's Elasticsearch and Redis at the end")
@click.option("--rate", type=click.FloatRange(min=0.1), help="documents posted per second (default: at once)")
def main(
    *,
    n: int,
    kills: int,
    data_dir: Path,
    es_port: int,
    redis_port: int,
    api_port: int,
    workers: int,
    worker_queues: tuple[str, ...],
    kill_worker: int,
    reconcile_after: int,
    down: bool,
    rate: float | None,
) -> None:
    """Run the drill, print the table, write data/bench/drill.json; exit 1 when it fails."""
    console = Console(width=200)
    specs = worker_queues or (DEFAULT_LAYOUT if workers > 1 else ("all",))
    try:
        report = run(
            n,
            kills,
            data_dir,
            es_port,
            redis_port=redis_port,
            api_port=api_port,
            queues=[specs[i % len(specs)] for i in range(workers)],
            kill_target=kill_worker,
            reconcile_after=reconcile_after,
            rate=rate,
        )
    finally:
        if down:
            stack.down(drill_settings(data_dir, es_port, redis_port, api_port)[0])
    show(report, console)
    console.print(f"wrote {save(report)}")
    raise SystemExit(0 if report.rows[0]["verdict"] == "PASS" else 1)


if __name__ == "__main__":
    main()
