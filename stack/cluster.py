"""Several nodes of one engine on loopback, forming one cluster: each a `NodeSpec` of its own (name,
ports, dirs, config dir) sharing the embedded node's distribution, started and stopped as a group.
The embedded stack itself runs one node; this is for trying replication, failover and snapshots locally.
"""

from __future__ import annotations

from collections.abc import Sequence

from core.config import Settings
from stack.engines import Engine
from stack.nodes import NodeSpec, start_node
from stack.processes import STOP_GRACE, data_dir, http_ok, log_file, running_pid, stop, wait_until


def cluster_specs(
    settings: Settings,
    engine: Engine,
    *,
    http_ports: Sequence[int],
    transport_ports: Sequence[int],
    heap: str,
) -> list[NodeSpec]:
    """One node per port pair, named n0, n1, ..., each seeded with every node's transport address and
    all of them eligible to bootstrap the cluster; data under `<data_dir>/<es|os>-cluster/<name>`, one
    snapshot folder (`path.repo`) for all under `<data_dir>/<es|os>-cluster/snapshots`."""
    if len(http_ports) != len(transport_ports):
        raise ValueError("one transport port per HTTP port")
    names = tuple(f"n{i}" for i in range(len(http_ports)))
    seeds = tuple(f"127.0.0.1:{port}" for port in transport_ports)
    root = data_dir(settings) / f"{engine.node_dir}-cluster"
    return [
        NodeSpec(
            name=name,
            component=f"{engine.name}-{name}",
            http_port=http,
            transport_port=transport,
            node_dir=root / name,
            heap=heap,
            seed_hosts=seeds,
            initial_masters=names,
            config_dir=root / name / "config",
            repo_dir=root / "snapshots",
        )
        for name, http, transport in zip(names, http_ports, transport_ports, strict=True)
    ]


def start_nodes(settings: Settings, engine: Engine, specs: Sequence[NodeSpec]) -> list[int]:
    """Start every node that is not running yet, all before any is waited for: a new cluster forms only
    once a majority of its initial master nodes is up. Returns the pids in the order of `specs`."""
    return [running_pid(settings, spec.component) or start_node(settings, engine, spec) for spec in specs]


def wait_serving(settings: Settings, specs: Sequence[NodeSpec], pids: Sequence[int], timeout: float) -> None:
    """Wait until the cluster is green with every node in it and every node's HTTP port answers: a node
    joins the cluster before it binds HTTP, so green seen from one node does not mean the others listen."""
    first = specs[0]
    health = (
        f"http://127.0.0.1:{first.http_port}/_cluster/health"
        f"?wait_for_status=green&wait_for_nodes={len(specs)}&timeout=1s"
    )
    log = log_file(settings, first.component)
    wait_until(lambda: http_ok(health), timeout, f"a {len(specs)}-node cluster", pid=pids[0], log=log)
    for spec, pid in zip(specs, pids, strict=True):
        url = f"http://127.0.0.1:{spec.http_port}/_cluster/health?local=true"  # this node answers
        log = log_file(settings, spec.component)
        wait_until(lambda url=url: http_ok(url), timeout, f"node {spec.name}'s HTTP", pid=pid, log=log)


def stop_nodes(settings: Settings, specs: Sequence[NodeSpec], grace: float = STOP_GRACE) -> list[str]:
    """Stop the nodes that run (SIGTERM, then SIGKILL after `grace`); return the names of those stopped."""
    return [spec.name for spec in reversed(specs) if stop(settings, spec.component, grace)]
