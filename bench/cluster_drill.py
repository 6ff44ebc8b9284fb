"""The cluster drill: three data nodes on loopback (`stack.cluster`), a collection with 3 shards and R
replicas, mixed documents ingested through the API while one node is SIGKILLed and, `--down` seconds
later, started again, and 4 client threads searching throughout.

It checks that every accepted document ends `encoded` or `failed` with a reason, that the index holds
exactly the accepted ones, and that no search answered 5xx. With 0 replicas it also checks that every
answer given while the node's shards were missing says `partial`, and that none given after the cluster
was green again does. Writes meet the lost shards too: the API retries them (replica promotion takes
seconds) and answers 503 while they stay unavailable, which the drill's client resends. The node killed
is one holding a primary of the collection, not the elected master (a master loss works too; it only
adds an election to the wait).

    python -m bench.cluster_drill --docs 400 --replicas 1 --replicas 0 [--engine opensearch]
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import requests
from rich.console import Console

import stack
from bench.common import Report, free_ports, save, show
from bench.drill import Drill, check, counts, documents, ingest, post, wait_settled
from core.config import (
    ApiSettings,
    BrokerSettings,
    EngineSettings,
    SecuritySettings,
    Settings,
    WorkerSettings,
)
from stack import cluster, engines
from stack.nodes import NodeSpec, start_node
from stack.processes import running_pid

DATA_DIR = Path("/tmp/mmsearch-cluster-drill")
SEARCHERS = 4
WORDS = "retrieval vector lexical hybrid fusion worker broker shard replica encoder query index".split()
FORM_TIMEOUT = 600.0  # three JVMs starting at once on a loaded 2-core machine: over 300 s seen
# A search's wait for its answer (a timeout is no 5xx, and is counted apart). Searches that took 97-130 s
# here were an API worker frozen by its first OpenVINO inference (encoders/runtime.py `warmed`), not the
# cluster: since, the slowest answer around a kill took ~15 s.
SEARCH_TIMEOUT = 300.0
GRACE_S = 2.0  # after the kill, answers already under way may still come back whole
AFTER_GREEN_S = 10.0  # searching goes on this long once everything settled (the cluster green)


@dataclass(frozen=True)
class Answer:
    """One search: when it was sent and answered (epoch s), its HTTP status (0: no answer), `partial`."""

    started: float
    ended: float
    status: int
    partial: bool | None


@dataclass
class Outage:
    """Epoch seconds of the kill, the restart and the cluster green again; the node killed."""

    node: str = ""
    killed: float = 0.0
    restarted: float = 0.0
    green: float = 0.0


@dataclass
class Searchers:
    """Client threads searching the collection until stopped, recording every answer."""

    base: str
    name: str
    answers: list[Answer] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self, count: int = SEARCHERS) -> None:
        self.threads = [threading.Thread(target=self._loop, args=(i,), daemon=True) for i in range(count)]
        for thread in self.threads:
            thread.start()

    def _loop(self, seed: int) -> None:
        rng = random.Random(seed)
        url = f"{self.base}/v1/collections/{self.name}/search"
        while not self.stop.is_set():
            query = " ".join(rng.sample(WORDS, 3))
            began = time.time()
            try:
                resp = requests.post(url, json={"query": query, "size": 10}, timeout=SEARCH_TIMEOUT)
                partial = resp.json().get("partial") if resp.status_code == 200 else None
                self.answers.append(Answer(began, time.time(), resp.status_code, partial))
            except (requests.RequestException, ValueError):
                self.answers.append(Answer(began, time.time(), 0, None))
            self.stop.wait(0.2)

    def after(self, outage: Outage, seconds: float) -> None:
        """Search on for `seconds`, and on until every client has had an answer to a search sent once the
        cluster was green (searches sent while the node restarted can take a minute to come back), or
        `SEARCH_TIMEOUT`."""
        time.sleep(seconds)
        deadline = time.monotonic() + SEARCH_TIMEOUT
        while time.monotonic() < deadline:
            if sum(1 for a in list(self.answers) if a.started >= outage.green) >= len(self.threads):
                return
            time.sleep(1)

    def finish(self) -> list[Answer]:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=90)
        return list(self.answers)


def cluster_settings(
    data_dir: Path, engine: str, http_ports: list[int], *, redis_port: int, api_port: int, replicas: int
) -> Settings:
    """The product pointed at the three nodes (every URL, so the clients fail over), 3 shards and
    `replicas` replicas, Redis and the API on the drill's ports, healing on."""
    return Settings(
        engine=EngineSettings(
            ELASTICSEARCH_URL=",".join(f"http://127.0.0.1:{port}" for port in http_ports),
            MMSEARCH_ENGINE=engine,
            data_dir=data_dir,
            number_of_shards=3,
            number_of_replicas=replicas,
        ),
        broker=BrokerSettings(REDIS_URL="", redis_port=redis_port),
        api=ApiSettings(api_port=api_port, api_url=""),
        security=SecuritySettings(api_keys=[]),
        workers=WorkerSettings(
            task_batch_size=32, reconcile_after=120, reconcile_interval=10, heal_interval=3, heartbeat_ttl=15
        ),
    )


def health(url: str, status: str, timeout: float) -> bool:
    """Whether the cluster reaches `status` (and three nodes) within `timeout` seconds (a node that does
    not listen yet is asked again)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        wait = max(1, int(deadline - time.monotonic()))
        query = f"wait_for_status={status}&wait_for_nodes=3&timeout={wait}s"
        try:
            body = requests.get(f"{url}/_cluster/health?{query}", timeout=wait + 10).json()
            if not body.get("timed_out", True):
                return True
        except (requests.RequestException, ValueError):
            time.sleep(1)
    return False


def victim(url: str, index: str, specs: list[NodeSpec]) -> NodeSpec:
    """A node holding a primary of `index` that is not the elected master."""
    master = requests.get(f"{url}/_cat/master?format=json", timeout=10).json()[0]["node"]
    shards = requests.get(f"{url}/_cat/shards/{index}?format=json&h=prirep,node", timeout=10).json()
    holders = {row["node"] for row in shards if row["prirep"] == "p"} - {master}
    return next(spec for spec in specs if spec.name in holders) if holders else specs[-1]


def chaos(
    drill: Drill, *, specs: list[NodeSpec], name: str, total: int, down_s: float, outage: Outage
) -> None:
    """Once a third of the documents is in, SIGKILL a node; `down_s` later start it again; note when the
    cluster is green again."""
    settings = drill.settings
    while counts(settings, name).get("total", 0) < total // 3:
        time.sleep(1)
    url = f"http://127.0.0.1:{specs[0].http_port}"
    node = victim(url, f"{settings.engine.index_prefix}{name}", specs)
    url = f"http://127.0.0.1:{next(s for s in specs if s is not node).http_port}"
    pid = running_pid(settings, node.component)
    if pid is None:
        raise RuntimeError(f"node {node.name} is not running")
    os.killpg(pid, signal.SIGKILL)
    outage.node, outage.killed = node.name, time.time()
    drill.note(f"node {node.name} SIGKILLed")
    time.sleep(down_s)
    start_node(settings, engines.engine_for(settings), node)
    outage.restarted = time.time()
    drill.note(f"node {node.name} started again")
    while not health(url, "green", 60):
        pass
    outage.green = time.time()
    drill.note("cluster green")


def judge(answers: list[Answer], outage: Outage, replicas: int) -> dict[str, Any]:
    """Counts of the searches: all, failed (5xx or no answer), and how `partial` matched the outage."""
    during = [a for a in answers if a.started >= outage.killed + GRACE_S and a.ended <= outage.restarted]
    after = [a for a in answers if a.started >= outage.green]
    return {
        "searches": len(answers),
        "5xx": sum(1 for a in answers if a.status >= 500),
        "no answer": sum(1 for a in answers if a.status == 0),
        "during outage": len(during),
        "partial during": sum(1 for a in during if a.partial),
        "whole during": sum(1 for a in during if a.partial is False),
        "after green": len(after),
        "partial after": sum(1 for a in after if a.partial),
        "partial expected": replicas == 0,
    }


def verdict(result: dict[str, Any], searched: dict[str, Any], accepted: int) -> bool:
    """PASS: nothing accepted lost, pending, duplicated or failed without a reason; no search answered
    5xx; with 0 replicas, every answer during the outage partial and none after it. (Searches left
    without an answer within `SEARCH_TIMEOUT` are reported, not judged.)"""
    ok = result["missing"] == 0 and result["unexpected"] == 0 and result["pending"] == 0
    ok = ok and result["failed_without_reason"] == 0 and result["indexed"] == accepted
    ok = ok and searched["5xx"] == 0 and searched["partial after"] == 0
    if searched["partial expected"]:
        ok = ok and searched["during outage"] > 0 and searched["whole during"] == 0
    return ok


def run_once(
    settings: Settings, env: dict[str, str], *, specs: list[NodeSpec], n: int, down_s: float, timeout: float
) -> dict[str, Any]:
    """One drill on the running cluster of `specs`: what `row` makes its table row of."""
    drill = Drill(settings, env)
    drill.start_workers()
    api = stack.start_api(settings, env)
    searchers: Searchers | None = None
    try:
        stack.wait_for_api(settings, pid=api.pid)
        name = f"cdrill-{uuid.uuid4().hex[:8]}"
        base = settings.api.api_base
        post(
            drill,
            lambda: requests.post(
                f"{base}/v1/collections", json={"name": name, "encoders": ["text", "phash"]}
            ),
        )
        searchers = Searchers(base, name)
        searchers.start()
        outage = Outage()
        kwargs = {"specs": specs, "name": name, "total": n, "down_s": down_s, "outage": outage}
        monkey = threading.Thread(target=chaos, args=(drill,), kwargs=kwargs, daemon=True)
        began = time.monotonic()
        monkey.start()
        accepted = ingest(drill, base, name, documents(n, seed=settings.engine.number_of_replicas))
        wait_settled(settings, name, len(accepted), monkey, timeout=timeout)
        settled_s = time.monotonic() - began
        searchers.after(outage, AFTER_GREEN_S)  # searches of the healed cluster: none may say `partial`
        answers = searchers.finish()
        result = check(settings, f"{settings.engine.index_prefix}{name}", accepted)
    finally:
        if searchers:
            searchers.finish()
        os.killpg(api.pid, signal.SIGTERM)
        drill.stop_workers()
    searched = judge(answers, outage, settings.engine.number_of_replicas)
    return {
        "drill": drill,
        "accepted": len(accepted),
        "result": result,
        "searched": searched,
        "outage": outage,
        "settled_s": settled_s,
    }


def row(engine: str, replicas: int, n: int, out: dict[str, Any]) -> dict[str, Any]:
    result, searched, outage = out["result"], out["searched"], out["outage"]
    return {
        "engine": engine,
        "replicas": replicas,
        "submitted": n,
        "accepted": out["accepted"],
        "indexed": result["indexed"],
        "encoded": result["encoded"],
        "failed": result["failed"],
        "pending": result["pending"],
        "missing": result["missing"],
        "unexpected": result["unexpected"],
        **{k: v for k, v in searched.items() if k != "partial expected"},
        "node down s": round(outage.restarted - outage.killed, 1),
        "green after restart s": round(outage.green - outage.restarted, 1),
        "settled s": round(out["settled_s"], 1),
        "requests resent": out["drill"].retried_requests,
        "verdict": "PASS" if verdict(result, searched, out["accepted"]) else "FAIL",
    }


def run(
    n: int = 400,
    replicas: tuple[int, ...] = (1, 0),
    *,
    engine: str = "elasticsearch",
    data_dir: Path = DATA_DIR,
    down_s: float = 45.0,
    timeout: float = 1200,
) -> Report:
    """Start a 3-node cluster (a new one), run the drill once per replica count, stop everything."""
    ports = free_ports(8)
    http_ports, redis_port, api_port = ports[:3], ports[6], ports[7]
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    base = cluster_settings(
        data_dir, engine, http_ports, redis_port=redis_port, api_port=api_port, replicas=0
    )
    kind = engines.engine_for(base)
    specs = cluster.cluster_specs(base, kind, http_ports=http_ports, transport_ports=ports[3:6], heap="384m")
    shutil.rmtree(specs[0].node_dir.parent, ignore_errors=True)  # a new cluster each run
    rows, notes = [], []
    try:
        cluster.wait_serving(base, specs, cluster.start_nodes(base, kind, specs), FORM_TIMEOUT)
        stack.ensure_redis(base)
        for count in replicas:
            settings = base.replace(engine={"number_of_replicas": count})
            out = run_once(settings, env, specs=specs, n=n, down_s=down_s, timeout=timeout)
            rows.append(row(engine, count, n, out))
            notes += [f"[{engine}, {count} replicas] {event}" for event in out["drill"].events]
            notes += [f"[{engine}, {count} replicas] failure reasons: {r}" for r in out["result"]["reasons"]]
    finally:
        stack.stop(base, "redis")
        cluster.stop_nodes(base, specs)
    return Report(
        name=f"cluster_drill_{engine}",
        title=f"Cluster drill ({engine}, 3 nodes, 3 shards)",
        rows=rows,
        notes=notes,
    )


@click.command()
@click.option("--docs", "n", default=400, show_default=True)
@click.option("--replicas", multiple=True, type=int, default=(1, 0), show_default=True)
@click.option("--engine", type=click.Choice(["elasticsearch", "opensearch"]), default="elasticsearch")
@click.option("--down", "down_s", default=45.0, show_default=True, help="seconds the node stays down")
@click.option("--data-dir", type=click.Path(path_type=Path), default=DATA_DIR, show_default=True)
def main(*, n: int, replicas: tuple[int, ...], engine: str, down_s: float, data_dir: Path) -> None:
    """Run the cluster drill, print the table, write data/bench/cluster_drill_<engine>.json; exit 1 on
    FAIL."""
    console = Console(width=240)
    report = run(n, tuple(replicas), engine=engine, data_dir=data_dir, down_s=down_s)
    show(report, console)
    console.print(f"wrote {save(report)}")
    raise SystemExit(0 if all(r["verdict"] == "PASS" for r in report.rows) else 1)


if __name__ == "__main__":
    main()
