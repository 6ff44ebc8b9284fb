"""The embedded stack's process handling, on a real Redis (the integration fixtures start Elasticsearch)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import redis
import yaml

import stack
from core.config import ApiSettings, BrokerSettings, EngineSettings, Settings
from stack import engines, nodes


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        engine=EngineSettings(elasticsearch_url="", data_dir=tmp_path / "data", es_port=_free_port()),
        broker=BrokerSettings(redis_url="", redis_port=_free_port()),
        api=ApiSettings(api_port=_free_port()),
    )


def _states(settings: Settings) -> dict[str, str]:
    return {row["name"]: row["state"] for row in stack.status(settings)}


def test_nothing_started_reports_every_component_stopped(settings: Settings) -> None:
    rows = stack.status(settings)
    assert [row["name"] for row in rows] == ["elasticsearch", "redis", "worker", "api"]
    assert all(row["state"] == "stopped" and row["pid"] is None for row in rows)
    assert stack.down(settings) == []


def test_status_names_the_engine_it_runs(tmp_path: Path) -> None:
    """`mmsearch status` once called OpenSearch "elasticsearch"; the engine slot now carries its engine."""
    labels = {
        kind: [
            row["label"]
            for row in stack.status(Settings(engine=EngineSettings(kind=kind, data_dir=tmp_path)))
        ]
        for kind in ("opensearch", "elasticsearch")
    }
    assert labels["opensearch"] == ["opensearch", "redis", "worker", "api"]
    assert labels["elasticsearch"][0] == "elasticsearch"


def test_services_given_by_url_are_external(tmp_path: Path) -> None:
    settings = Settings(
        engine=EngineSettings(elasticsearch_url="http://127.0.0.1:1", data_dir=tmp_path),
        broker=BrokerSettings(redis_url="redis://127.0.0.1:1/0"),
    )
    states = _states(settings)
    assert states["elasticsearch"] == states["redis"] == "external"


def test_embedded_redis_persists_queued_work_across_a_restart(settings: Settings) -> None:
    url = stack.ensure_redis(settings)
    try:
        client = redis.Redis.from_url(url, decode_responses=True)
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        client.rpush("queue", "task-1")
        pid = stack.status(settings)[1]["pid"]
        assert stack.ensure_redis(settings) == url
        assert stack.status(settings)[1]["pid"] == pid  # reused, not started twice
    finally:
        assert stack.down(settings) == ["redis"]
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert _states(settings)["redis"] == "stopped"
    assert not (Path(settings.engine.data_dir) / "run" / "redis.pid").exists()

    stack.ensure_redis(settings)
    try:
        assert redis.Redis.from_url(url, decode_responses=True).lrange("queue", 0, -1) == ["task-1"]
    finally:
        stack.down(settings)


def test_child_processes_see_the_same_settings(settings: Settings, tmp_path: Path) -> None:
    env = stack.child_env(settings, {"MMSEARCH_API_PORT": "9999"})
    code = "from core.config import Settings; print(Settings().model_dump_json())"
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, check=True)
    seen = json.loads(out.stdout)
    resolved = Path(settings.engine.data_dir).resolve()
    expected = settings.replace(engine={"data_dir": resolved}, api={"api_port": 9999})
    assert seen == expected.model_dump(mode="json")


def test_elasticsearch_gets_a_java_that_can_run_it() -> None:
    home = stack.java_home()
    assert (home / "bin" / "java").exists()
    version = subprocess.run([home / "bin" / "java", "-version"], capture_output=True, text=True, check=True)
    major = int(version.stderr.split('"')[1].split(".")[0])
    assert major >= stack.MIN_JAVA


def _node_config(settings: Settings, engine: engines.Engine, spec: nodes.NodeSpec, home: Path) -> dict:
    return yaml.safe_load("\n".join(nodes.node_config(settings, engine, spec, home)))


def test_both_engines_share_one_node_config_but_for_security(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "plugins" / "opensearch-security").mkdir(parents=True)
    es, os_ = (
        _node_config(settings, engine, nodes.single_node(settings, engine), tmp_path)
        for engine in (engines.ELASTICSEARCH, engines.OPENSEARCH)
    )
    assert es.pop("xpack.security.enabled") is False
    assert os_.pop("plugins.security.disabled") is True
    assert es.pop("path.data").endswith("/es/data") and os_.pop("path.data").endswith("/os/data")
    assert es.pop("path.logs").endswith("/es/logs") and os_.pop("path.logs").endswith("/os/logs")
    assert es.pop("path.repo").endswith("/es/snapshots") and os_.pop("path.repo").endswith("/os/snapshots")
    assert es == os_
    assert es["discovery.type"] == "single-node"
    assert (es["http.port"], es["transport.port"]) == (settings.engine.es_port, settings.engine.es_port + 100)


def test_a_cluster_node_gets_discovery_not_single_node(settings: Settings, tmp_path: Path) -> None:
    names = ("n0", "n1", "n2")
    seeds = tuple(f"127.0.0.1:{9330 + i}" for i in range(3))
    spec = nodes.NodeSpec(
        name="n1",
        component="elasticsearch-n1",
        http_port=9231,
        transport_port=9331,
        node_dir=tmp_path / "n1",
        heap="384m",
        seed_hosts=seeds,
        initial_masters=names,
    )
    config = _node_config(settings, engines.ELASTICSEARCH, spec, tmp_path)
    assert "discovery.type" not in config
    assert config["discovery.seed_hosts"] == list(seeds)
    assert config["cluster.initial_master_nodes"] == list(names)
    opensearch = _node_config(settings, engines.OPENSEARCH, spec, tmp_path)
    assert opensearch["cluster.initial_cluster_manager_nodes"] == list(names)
    assert (config["node.name"], config["http.port"], config["transport.port"]) == ("n1", 9231, 9331)
    assert config["path.data"] == str(tmp_path / "n1" / "data")
