"""What every benchmark shares: a report (rows + notes) shown as a table and saved as JSON, latency
statistics, the dataset's texts, and a temporary API process with different settings."""

from __future__ import annotations

import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from client.api import ApiClient
from core.config import Settings, get_settings
from ingest.beir import find, iter_corpus, load_queries

ROOT = Path(__file__).resolve().parent.parent


def results_dir(settings: Settings | None = None) -> Path:
    """Where benchmarks write their JSON: under the data directory, never inside the installed package."""
    return (settings or get_settings()).engine.data_dir / "bench"


@dataclass
class Report:
    name: str
    title: str
    rows: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    environment: dict[str, Any] = field(
        default_factory=lambda: {
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
            "python": platform.python_version(),
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def show(report: Report, console: Console) -> None:
    table = Table(*report.rows[0].keys(), title=report.title) if report.rows else Table(title=report.title)
    for row in report.rows:
        table.add_row(*(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row.values()))
    console.print(table)
    for note in report.notes:
        console.print(f"  - {note}")


def save(report: Report, settings: Settings | None = None) -> Path:
    import json

    folder = results_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{report.name}.json"
    path.write_text(json.dumps(report.as_dict(), indent=2))
    return path


def latency_row(latencies_s: list[float], wall_s: float) -> dict[str, float]:
    ms = np.asarray(latencies_s) * 1000
    return {
        "p50 ms": round(float(np.percentile(ms, 50)), 2),
        "p95 ms": round(float(np.percentile(ms, 95)), 2),
        "p99 ms": round(float(np.percentile(ms, 99)), 2),
        "mean ms": round(float(ms.mean()), 2),
        "QPS": round(len(ms) / wall_s, 1),
    }


def timed_calls(call: Callable[[Any], object], items: list[Any], threads: int) -> tuple[list[float], float]:
    """Run `call` on every item with `threads` concurrent clients: (per-call seconds, wall seconds)."""

    def one(item: Any) -> float:
        started = time.perf_counter()
        call(item)
        return time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        latencies = list(pool.map(one, items))
    return latencies, time.perf_counter() - started


def query_texts(dataset: Path, n: int) -> list[str]:
    """The first `n` queries of the dataset in id order, so runs are comparable."""
    queries = load_queries(find(dataset, "queries"))
    return [queries[qid] for qid in sorted(queries, key=lambda q: (len(q), q))[:n]]


def corpus_docs(dataset: Path, n: int) -> list[dict[str, Any]]:
    return list(islice(iter_corpus(find(dataset, "corpus")), n))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_ports(count: int) -> list[int]:
    """Distinct free ports (all held open until every one is chosen)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


@contextmanager
def spawned_api(extra_env: dict[str, str], settings: Settings | None = None) -> Iterator[ApiClient]:
    """A temporary API process (gunicorn, 1 worker, 4 threads) on a free port with some settings changed
    (same Elasticsearch, Redis and Celery workers), e.g. a task batch size of 1 or no query cache."""
    import stack

    settings = (settings or get_settings()).replace(api={"api_port": free_port(), "api_url": ""})
    argv = [sys.executable, "-m", "gunicorn", "--workers", "1", "--threads", "4", "--timeout", "120"]
    argv += ["--bind", f"127.0.0.1:{settings.api.api_port}", "search.app:create_app()"]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            argv,
            env=stack.child_env(settings, extra_env),
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            stack.wait_for_api(settings, timeout=120, pid=process.pid)
            yield ApiClient.from_settings(settings)
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=60)
