"""Elasticsearch and OpenSearch nodes: one preparation for both engines (config, dirs, JVM options, the
unprivileged user), described per node by a `NodeSpec` so that several nodes can share one distribution.

The embedded stack runs one node in the `elasticsearch` slot (pid file and log), whichever the engine.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from elastic_transport import TransportError
from elasticsearch import ApiError

from core.config import Settings
from core.es import make_client
from stack.engines import Engine, engine_for
from stack.java import has_vector_module, java_home, set_vector_module
from stack.processes import data_dir, log_file, running_pid, spawn, wait_until, write_pid
from stack.users import grant, node_user

ES_START_TIMEOUT = 300.0  # seen: 30 s on an idle 2-core machine, 110 s on a loaded one
COMPONENT = "elasticsearch"  # the engine's slot among the stack's components, for either engine


@dataclass(frozen=True)
class NodeSpec:
    """What differs between the nodes of a cluster on one machine; the embedded node is one of these."""

    name: str  # node.name
    component: str  # names its pid file and log
    http_port: int
    transport_port: int
    node_dir: Path  # holds data/, logs/ and tmp/
    heap: str
    seed_hosts: tuple[str, ...] = ()  # transport addresses of the cluster; none: a single-node cluster
    initial_masters: tuple[str, ...] = ()  # node names that bootstrap a new cluster
    config_dir: Path | None = None  # None: the distribution's own config/ (one node per distribution)
    repo_dir: Path | None = None  # `path.repo`, shared by a cluster's nodes; None: `<node_dir>/snapshots`

    @property
    def repository(self) -> Path:
        """Where `mmsearch snapshot`'s fs repository lives: every node of a cluster must see one folder."""
        return self.repo_dir or self.node_dir / "snapshots"


def single_node(settings: Settings, engine: Engine) -> NodeSpec:
    """The embedded node: on `es_port`, transport 100 above it, data under `<data_dir>/es` (or `os`)."""
    return NodeSpec(
        name="mmsearch-embedded",
        component=COMPONENT,
        http_port=settings.engine.es_port,
        transport_port=settings.engine.es_port + 100,
        node_dir=data_dir(settings) / engine.node_dir,
        heap=settings.engine.es_heap,
    )


def node_config(settings: Settings, engine: Engine, spec: NodeSpec, home: Path) -> list[str]:
    """The node's config file, one line each: what both engines share (127.0.0.1, our ports and paths, no
    disk watermarks, no auto-created product indices) then the security lines of the engine at `home`."""
    return [
        "# Written by mmsearch at every start: change MMSEARCH_* settings instead of this file.",
        "cluster.name: mmsearch",
        f"node.name: {spec.name}",
        "network.host: 127.0.0.1",
        f"http.port: {spec.http_port}",
        f"transport.port: {spec.transport_port}",
        *_discovery(engine, spec),
        f"path.data: {json.dumps(str(spec.node_dir / 'data'))}",
        f"path.logs: {json.dumps(str(spec.node_dir / 'logs'))}",
        f"path.repo: {json.dumps(str(spec.repository))}",
        "# Developer disks are often fuller than the default watermarks allow; never go read-only for that.",
        "cluster.routing.allocation.disk.threshold_enabled: false",
        "# The product creates its indices with their mappings; a late write to a deleted one must fail,",
        "# not bring it back with guessed mappings.",
        f'action.auto_create_index: "-{settings.engine.index_prefix}*,+*"',
        *engine.security_lines(home),
    ]


def _discovery(engine: Engine, spec: NodeSpec) -> list[str]:
    if not spec.seed_hosts:
        return ["discovery.type: single-node"]
    return [
        f"discovery.seed_hosts: {json.dumps(list(spec.seed_hosts))}",
        f"{engine.bootstrap_setting}: {json.dumps(list(spec.initial_masters))}",
    ]


def start_node(settings: Settings, engine: Engine, spec: NodeSpec) -> int:
    """Prepare and start one node, detached, as the unprivileged user when root; return its pid."""
    java = java_home()
    home = engine.install(settings, java)
    conf = _prepare(settings, engine=engine, spec=spec, home=home)
    set_vector_module(conf / "jvm.options", has_vector_module(java))
    user = node_user()
    if user is not None:
        own = [conf, *conf.rglob("*"), spec.node_dir, *spec.node_dir.iterdir(), spec.repository]
        grant(user, reach=(home, spec.node_dir, java), own=[*own, *(home / d for d in engine.owned_in_home)])
    env = engine.env(java=java, heap=spec.heap, tmp=spec.node_dir / "tmp", conf=conf)
    argv = [str(home / "bin" / engine.name)]
    # cwd = the logs dir: jvm.options writes gc.log and crash files relative to it.
    proc = spawn(settings, spec.component, argv, {**os.environ, **env}, cwd=spec.node_dir / "logs", user=user)
    write_pid(settings, spec.component, proc.pid)
    return proc.pid


def _prepare(settings: Settings, *, engine: Engine, spec: NodeSpec, home: Path) -> Path:
    """Make the node's dirs and (re)write its config at every start, so changed ports or paths apply;
    return its config dir."""
    for folder in (spec.node_dir / "data", spec.node_dir / "logs", spec.node_dir / "tmp", spec.repository):
        folder.mkdir(parents=True, exist_ok=True)
    conf = spec.config_dir or home / "config"
    if not conf.exists():  # a node of its own config: start from the distribution's, less its secrets
        shutil.copytree(home / "config", conf, ignore=shutil.ignore_patterns("*.keystore"))
    lines = node_config(settings, engine, spec, home)
    (conf / f"{engine.name}.yml").write_text("\n".join(lines) + "\n")
    return conf


def ensure_elasticsearch(settings: Settings) -> str:
    """Return the URL of a healthy cluster, starting the embedded node first when none answers."""
    with make_client(settings) as client:
        probe = client.options(request_timeout=2, max_retries=0, retry_on_timeout=False)
        healthy = partial(_healthy, probe)
        if not settings.engine.embedded_es:
            wait_until(healthy, ES_START_TIMEOUT, f"Elasticsearch at {settings.engine.es_url}")
        elif not healthy():
            engine = engine_for(settings)
            spec = single_node(settings, engine)
            pid = running_pid(settings, spec.component) or start_node(settings, engine, spec)
            log = log_file(settings, spec.component)
            wait_until(healthy, ES_START_TIMEOUT, f"embedded {engine.label}", pid=pid, log=log)
    return settings.engine.es_url


def _healthy(client: Any) -> bool:
    try:
        return client.cluster.health()["status"] in ("yellow", "green")
    except (ApiError, TransportError):
        return False
