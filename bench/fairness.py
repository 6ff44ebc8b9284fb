"""Fairness: single documents added to one collection while a bulk ingest into another encodes.

On an embedded stack of its own (Elasticsearch, Redis, one worker, the API; ports and data dir apart from
the tests'), each mode ingests `--bulk` short texts into one collection (NDJSON, 500 a request, from a
thread) and, from two seconds in, adds one document every `--every` seconds to another collection, timing
each from its POST until it is `encoded`. `fair` is the product (interactive queue + bulk lanes); `fifo`
runs the behaviour before them (`MMSEARCH_FAIR_QUEUES=false`: one queue per modality, in order). Both by
default, one after the other on the same stack, for the ratio.

    python -m bench.fairness --bulk 2000 --every 10 --singles 6
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np
from rich.console import Console

import stack
from bench.common import Report, save, show
from client.api import ApiClient
from core.config import ApiSettings, BrokerSettings, EngineSettings, SecuritySettings, Settings
from core.es import Client, make_client

DATA_DIR = Path("/tmp/mmsearch-fairness")
WORDS = "cells proteins trial cohort dose receptor signal tissue gene marker response patients".split()


@dataclass
class Single:
    doc_id: str
    sent: float
    bulk_pending: int  # bulk documents not yet encoded when it was sent
    encoded: float | None = None

    @property
    def seconds(self) -> float | None:
        return None if self.encoded is None else self.encoded - self.sent


def stack_settings(data_dir: Path, es_port: int, redis_port: int, api_port: int) -> Settings:
    return Settings(
        engine=EngineSettings(ELASTICSEARCH_URL="", data_dir=data_dir, es_port=es_port, es_heap="512m"),
        broker=BrokerSettings(REDIS_URL="", redis_port=redis_port),
        api=ApiSettings(api_port=api_port, api_url=""),
        security=SecuritySettings(api_keys=[]),
    )


def short_texts(prefix: str, n: int) -> list[dict[str, str]]:
    """`n` short texts (about 40 words), deterministic."""
    rng = np.random.default_rng(7)
    return [
        {"id": f"{prefix}-{i}", "text": " ".join(rng.choice(WORDS, 40)) + f" (abstract {i})"}
        for i in range(n)
    ]


def pending(es: Client, settings: Settings, name: str) -> int:
    index = f"{settings.engine.index_prefix}{name}"
    return es.count(index=index, query={"bool": {"must_not": {"term": {"ingest.status": "encoded"}}}})[
        "count"
    ]


def watch(es: Client, index: str, single: Single, deadline: float) -> None:
    """Poll one document until it is encoded (or the deadline passes)."""
    while time.monotonic() < deadline:
        found = es.get(index=index, id=single.doc_id, source_includes=["ingest.status"])["_source"]
        if found["ingest"]["status"] == "encoded":
            single.encoded = time.monotonic()
            return
        time.sleep(0.2)


def send_singles(
    client: ApiClient, settings: Settings, names: tuple[str, str], *, count: int, every: float
) -> list[Single]:
    """One document every `every` seconds into `names[1]`, each watched in a thread of its own."""
    bulk, target = names
    es = make_client(settings)
    index = f"{settings.engine.index_prefix}{target}"
    singles, watchers = [], []
    for i in range(count):
        one = Single(f"single-{i}", time.monotonic(), pending(es, settings, bulk))
        client.add_documents(target, [{"id": one.doc_id, "text": f"A note someone waits for, number {i}."}])
        watcher = threading.Thread(target=watch, args=(es, index, one, one.sent + 3600), daemon=True)
        watcher.start()
        singles.append(one)
        watchers.append(watcher)
        time.sleep(every)
    for watcher in watchers:
        watcher.join()
    return singles


def warm_up(client: ApiClient, name: str) -> None:
    """One document encoded before the clock starts: the worker is up and its model loaded."""
    doc = {"id": "warm-up", "text": "The worker loads its model for this one."}
    client.add_documents(name, [doc], refresh=True)  # visible as pending before the wait looks
    client.wait_encoded(name, timeout=900, poll=0.5)


def stop(process: subprocess.Popen, grace: float = 60) -> None:
    """SIGTERM to the process group; SIGKILL when a loaded machine makes it outlive the grace."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=grace)


def run_mode(settings: Settings, *, fair: bool, bulk: int, every: float, singles: int) -> dict[str, Any]:
    """One mode on the running Elasticsearch and Redis: a worker and an API of its own, two collections."""
    env = {"MMSEARCH_FAIR_QUEUES": "true" if fair else "false"}
    worker = stack.start_worker(settings, env)
    api = stack.start_api(settings, env)
    client = ApiClient(settings.api.api_base)
    names = (f"bulk-{uuid.uuid4().hex[:6]}", f"single-{uuid.uuid4().hex[:6]}")
    try:
        stack.wait_for_api(settings, pid=api.pid)
        for name in names:
            client.create_collection(name)
        warm_up(client, names[1])
        started = time.monotonic()
        feeder = threading.Thread(target=client.add_documents, args=(names[0], short_texts("bulk", bulk)))
        feeder.start()
        time.sleep(2)
        sent = send_singles(client, settings, names, count=singles, every=every)
        feeder.join()
        client.wait_encoded(names[0], poll=0.5)
        bulk_s = time.monotonic() - started
        for name in names:
            client.delete_collection(name)
    finally:
        for process in (api, worker):
            stop(process)
    return {"mode": "fair" if fair else "fifo", "bulk_s": bulk_s, "singles": sent}


def rows_of(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per single, then the mode's summary row."""
    rows = [
        {
            "mode": result["mode"],
            "single": one.doc_id,
            "bulk pending at send": one.bulk_pending,
            "s to encoded": round(one.seconds, 1) if one.seconds is not None else "never",
        }
        for one in result["singles"]
    ]
    seconds = [one.seconds if one.seconds is not None else float("inf") for one in result["singles"]]
    rows.append(
        {
            "mode": result["mode"],
            "single": f"p50 {np.percentile(seconds, 50):.1f} s, max {max(seconds):.1f} s",
            "bulk pending at send": "-",
            "s to encoded": f"bulk encoded in {result['bulk_s']:.0f} s",
        }
    )
    return rows


def run(
    *, bulk: int, every: float, singles: int, modes: tuple[str, ...], settings: Settings
) -> tuple[Report, dict[str, dict[str, float]]]:
    stack.ensure_elasticsearch(settings)
    stack.ensure_redis(settings)
    results = [
        run_mode(settings, fair=mode == "fair", bulk=bulk, every=every, singles=singles) for mode in modes
    ]
    summary = {
        r["mode"]: {
            "p50_s": float(np.percentile([s.seconds or float("inf") for s in r["singles"]], 50)),
            "max_s": max(s.seconds or float("inf") for s in r["singles"]),
            "bulk_s": r["bulk_s"],
        }
        for r in results
    }
    notes = [
        f"bulk: {bulk} short texts (NDJSON, 500 a request) into one collection; singles: {singles}, one "
        f"every {every:g} s into another, from 2 s after the bulk began; one worker (prefork, 1 child), "
        f"batch size {settings.workers.task_batch_size}",
        "fair: interactive queue + bulk lanes; fifo: MMSEARCH_FAIR_QUEUES=false (one queue per modality)",
        f"goal: fair p50 <= 10 s, max <= 30 s; cpus: {os.cpu_count()}",
    ]
    if "fair" in summary and "fifo" in summary:
        notes.append(f"p50 fifo / fair: {summary['fifo']['p50_s'] / summary['fair']['p50_s']:.1f}x")
    rows = [row for result in results for row in rows_of(result)]
    return Report("fairness", "Single documents during another collection's bulk", rows, notes), summary


@click.command()
@click.option("--bulk", default=2000, show_default=True, help="documents of the bulk ingest")
@click.option("--every", default=10.0, show_default=True, help="seconds between single documents")
@click.option("--singles", default=6, show_default=True)
@click.option("--mode", type=click.Choice(["both", "fair", "fifo"]), default="both", show_default=True)
@click.option("--fifo", is_flag=True, help="the old behaviour only (same as --mode fifo)")
@click.option("--data-dir", type=click.Path(path_type=Path), default=DATA_DIR, show_default=True)
@click.option("--es-port", default=9275, show_default=True)
@click.option("--redis-port", default=6395, show_default=True)
@click.option("--api-port", default=8145, show_default=True)
def main(
    *,
    bulk: int,
    every: float,
    singles: int,
    mode: str,
    fifo: bool,
    data_dir: Path,
    es_port: int,
    redis_port: int,
    api_port: int,
) -> None:
    """Run the modes, print the table, write <data_dir>/bench/fairness.json; Elasticsearch and Redis stop
    at the end."""
    settings = stack_settings(data_dir, es_port, redis_port, api_port)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop its worker, API and stack on the way out
    modes = ("fifo",) if fifo else ("fair", "fifo") if mode == "both" else (mode,)
    try:
        report, summary = run(bulk=bulk, every=every, singles=singles, modes=modes, settings=settings)
    finally:
        stack.down(settings)
    report.notes.append(f"summary: {summary}")
    console = Console(width=200)
    show(report, console)
    console.print(f"wrote {save(report, settings)}")


if __name__ == "__main__":
    main()
