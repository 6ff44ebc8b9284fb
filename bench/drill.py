"""The reliability drill: ingest N mixed documents while the worker is SIGKILLed mid-batch, Elasticsearch
restarted once and Redis restarted once; then check that nothing was lost or duplicated.

It runs its own embedded stack (Elasticsearch, Redis, one worker, the API) on ports and a data dir of its
own, so it can kill and restart them; the broker's visibility timeout stays at its default (an hour), so
what heals the killed batches is the reconciler, not the broker. At the end every accepted document must
be `encoded`, or `failed` with a reason, and the index must hold exactly the accepted documents.

    python -m bench.drill --docs 10000 --kills 10
"""

from __future__ import annotations

import io
import json
import os
import random
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import numpy as np
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

DATA_DIR = Path("/tmp/mmsearch-drill")
IMAGE_SHARE = 0.15  # of the documents, the rest are text
POISON_EVERY = 97  # every so many images is a truncated PNG: accepted or refused, never lost
CHUNK = 50  # documents per ingest request
NDJSON = {"Content-Type": "application/x-ndjson"}


@dataclass
class Drill:
    settings: Settings
    env: dict[str, str]
    worker: Any = None
    kills: int = 0
    es_restarts: int = 0
    redis_restarts: int = 0
    retried_requests: int = 0
    events: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def note(self, event: str) -> None:
        self.events.append(f"{time.monotonic() - self.started:7.1f}s {event}")

    def start_worker(self) -> None:
        self.worker = stack.start_worker(self.settings, self.env)

    def kill_worker(self) -> None:
        os.killpg(self.worker.pid, signal.SIGKILL)
        self.worker.wait(timeout=60)
        self.kills += 1
        self.note(f"worker SIGKILLed ({self.kills})")
        self.start_worker()

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


def drill_settings(data_dir: Path, es_port: int, redis_port: int, api_port: int) -> tuple[Settings, dict]:
    """Embedded services on the drill's own ports, a short reconciler deadline and the default (hour-long)
    visibility timeout; child processes get every setting from `stack.child_env`."""
    settings = Settings(
        engine=EngineSettings(ELASTICSEARCH_URL="", data_dir=data_dir, es_port=es_port, es_heap="512m"),
        broker=BrokerSettings(REDIS_URL="", redis_port=redis_port),
        api=ApiSettings(api_port=api_port, api_url=""),
        security=SecuritySettings(api_keys=[]),
        workers=WorkerSettings(
            task_batch_size=32, visibility_timeout=3600, reconcile_after=20, reconcile_interval=5
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


def ingest(drill: Drill, base: str, name: str, items: list[tuple[str, Any]]) -> set[str]:
    """Post the items in chunks (NDJSON for text, multipart for images); returns the accepted ids."""
    url = f"{base}/v1/collections/{name}"
    accepted: set[str] = set()
    for start in range(0, len(items), CHUNK):
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


def chaos(drill: Drill, name: str, kills: int, stop: threading.Event) -> None:
    """Kill the worker once it has made progress since its (re)start, `kills` times; restart Elasticsearch
    after a third of the kills and Redis after two thirds."""
    es_at, redis_at = max(1, kills // 3), max(1, 2 * kills // 3)
    while drill.kills < kills and not stop.is_set():
        before = counts(drill.settings, name).get("encoded", 0)
        deadline = time.monotonic() + 300
        while counts(drill.settings, name).get("encoded", 0) <= before and time.monotonic() < deadline:
            if stop.wait(0.5):
                return
        time.sleep(random.uniform(0.2, 1.5))  # mid-batch, somewhere
        drill.kill_worker()
        if drill.kills == es_at and not drill.es_restarts:
            drill.restart("elasticsearch", 5)
        if drill.kills == redis_at and not drill.redis_restarts:
            drill.restart("redis", 5)


def check(settings: Settings, index_alias: str, accepted: set[str]) -> dict[str, Any]:
    """What the index holds against what the API accepted."""
    es = make_client(settings)
    es.indices.refresh(index=index_alias)
    stored: dict[str, dict[str, Any]] = {
        hit["_id"]: hit["_source"]["ingest"]
        for hit in scan(es, index=index_alias, _source=["ingest.status", "ingest.error"])
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
    }


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
        "worker kills": drill.kills,
        "ES restarts": drill.es_restarts,
        "Redis restarts": drill.redis_restarts,
        **{label: round(seconds, 1) for label, seconds in timings.items()},
        "verdict": "PASS" if ok else "FAIL",
    }
    notes = [f"failure reasons: {r}" for r in result["reasons"]] + [
        f"requests retried while a service restarted: {drill.retried_requests}",
        *drill.events,
    ]
    return Report(
        name="drill", title="Reliability drill (kills and restarts during ingest)", rows=[row], notes=notes
    )


def run(
    n: int = 200,
    kills: int = 10,
    data_dir: Path = DATA_DIR,
    es_port: int = 9270,
    *,
    redis_port: int = 6392,
    api_port: int = 8139,
    timeout: float = 1800,
) -> Report:
    settings, env = drill_settings(data_dir, es_port, redis_port, api_port)
    drill = Drill(settings, env)
    stack.ensure_elasticsearch(settings)
    stack.ensure_redis(settings)
    drill.start_worker()
    api = stack.start_api(settings, env)
    stack.wait_for_api(settings, pid=api.pid)
    name = f"drill-{uuid.uuid4().hex[:8]}"
    base = settings.api.api_base
    post(
        drill,
        lambda: requests.post(f"{base}/v1/collections", json={"name": name, "encoders": ["text", "phash"]}),
    )
    items, stop = documents(n), threading.Event()
    monkey = threading.Thread(target=chaos, args=(drill, name, kills, stop), daemon=True)
    began = time.monotonic()
    monkey.start()
    try:
        accepted = ingest(drill, base, name, items)
        ingest_s = time.monotonic() - began
        wait_settled(settings, name, len(accepted), monkey, timeout=timeout)
        stop.set()
        monkey.join(timeout=120)
        settled_s = time.monotonic() - began
        result = check(settings, f"{settings.engine.index_prefix}{name}", accepted)
    finally:
        stop.set()
        os.killpg(api.pid, signal.SIGTERM)
        os.killpg(drill.worker.pid, signal.SIGTERM)
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
@click.option("--down/--keep", default=True, help="stop the drill's Elasticsearch and Redis at the end")
def main(
    *, n: int, kills: int, data_dir: Path, es_port: int, redis_port: int, api_port: int, down: bool
) -> None:
    """Run the drill, print the table, write data/bench/drill.json; exit 1 when it fails."""
    console = Console(width=200)
    try:
        report = run(n, kills, data_dir, es_port, redis_port=redis_port, api_port=api_port)
    finally:
        if down:
            stack.down(drill_settings(data_dir, es_port, redis_port, api_port)[0])
    show(report, console)
    console.print(f"wrote {save(report)}")
    raise SystemExit(0 if report.rows[0]["verdict"] == "PASS" else 1)


if __name__ == "__main__":
    main()
