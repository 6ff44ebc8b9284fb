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

from client import stack
from core.config import Settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        elasticsearch_url="",
        redis_url="",
        data_dir=tmp_path / "data",
        es_port=_free_port(),
        redis_port=_free_port(),
        api_port=_free_port(),
    )


def _states(settings: Settings) -> dict[str, str]:
    return {row["name"]: row["state"] for row in stack.status(settings)}


def test_nothing_started_reports_every_component_stopped(settings: Settings) -> None:
    rows = stack.status(settings)
    assert [row["name"] for row in rows] == ["elasticsearch", "redis", "worker", "api"]
    assert all(row["state"] == "stopped" and row["pid"] is None for row in rows)
    assert stack.down(settings) == []


def test_services_given_by_url_are_external(tmp_path: Path) -> None:
    settings = Settings(
        elasticsearch_url="http://127.0.0.1:1", redis_url="redis://127.0.0.1:1/0", data_dir=tmp_path
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
    assert not (Path(settings.data_dir) / "run" / "redis.pid").exists()

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
    expected = settings.model_dump(mode="json") | {"data_dir": str(Path(settings.data_dir).resolve())}
    assert seen == expected | {"api_port": 9999}


def test_elasticsearch_gets_a_java_that_can_run_it() -> None:
    home = stack.java_home()
    assert (home / "bin" / "java").exists()
    version = subprocess.run([home / "bin" / "java", "-version"], capture_output=True, text=True, check=True)
    major = int(version.stderr.split('"')[1].split(".")[0])
    assert major >= stack.MIN_JAVA
