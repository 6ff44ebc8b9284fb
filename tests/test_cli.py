"""The CLI: every command registered once, in `mmsearch.cli`; command modules share `mmsearch.common`;
`mmsearch serve` and `mmsearch worker` run the very command lines the embedded stack starts."""

from __future__ import annotations

import ast
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import click
import psutil
import pytest
import requests
from click.testing import CliRunner

import stack
from core.config import ApiSettings, BrokerSettings, EngineSettings, Settings, get_settings
from mmsearch.cli import main
from mmsearch.common import errors

ROOT = Path(__file__).resolve().parents[1]
# The commands README.md lists.
COMMANDS = {
    "up", "down", "status", "worker", "serve", "migrate", "collections", "ingest", "crawl", "search", "demo",
    "eval", "tune", "train", "reencode", "bench", "improve", "rerank", "kibana", "keys", "snapshot",
    "optimize",
}  # fmt: skip


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_every_command_is_registered_in_the_entry_point() -> None:
    assert set(main.commands) == COMMANDS
    assert set(main.commands["collections"].commands) == {"create", "list", "show", "delete"}


def test_command_modules_never_import_the_entry_point() -> None:
    importers = []
    for path in (ROOT / "mmsearch").glob("*.py"):
        if path.name == "cli.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
            if any(name == "mmsearch.cli" for name in names):
                importers.append(path.name)
    assert importers == []


@pytest.fixture
def unreachable_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    monkeypatch.setenv("MMSEARCH_API_URL", url)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


@pytest.mark.parametrize(
    "args", [["search", "q", "-c", "c"], ["collections", "list"], ["reencode", "c", "--model", "text=m"]]
)
def test_an_unreachable_api_is_a_one_line_error(unreachable_api: str, args: list[str]) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: cannot reach the API at {unreachable_api}: ")
    assert result.output.count("\n") == 1 and "Traceback" not in result.output


def test_a_bad_documents_file_is_a_one_line_error(unreachable_api: str, tmp_path: Path) -> None:
    bad = tmp_path / "docs.json"
    bad.write_text('{"text": 1')
    result = CliRunner().invoke(main, ["ingest", str(bad), "-c", "c", "--no-create"])
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == "Error: Expecting ',' delimiter: line 1 column 11 (char 10)"


def test_a_known_failure_is_a_one_line_error() -> None:
    from evaluation.runs import EvaluationError

    @click.command()
    def failing() -> None:
        with errors():
            raise EvaluationError("the qrels name documents the collection lacks")

    result = CliRunner().invoke(failing)
    assert (result.exit_code, result.output) == (1, "Error: the qrels name documents the collection lacks\n")


def _cli(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    argv = [sys.executable, "-m", "mmsearch.cli", *args]
    return subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


def _runs(proc: subprocess.Popen, expected: list[str], timeout: float = 60.0) -> bool:
    """Whether the CLI process execs into `expected` (same pid) within `timeout` seconds.

    Polls: right after the fork the child still shows its parent's command line, then the CLI's."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if psutil.Process(proc.pid).cmdline() == expected:
            return True
        time.sleep(0.05)
    return False


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=60)


@pytest.mark.slow
def test_serve_runs_the_api_command_of_the_stack(tmp_path: Path) -> None:
    settings = Settings(api=ApiSettings(api_port=_free_port()), engine=EngineSettings(data_dir=tmp_path))
    env = stack.child_env(settings)
    proc = _cli(["serve", "--workers", "1"], env)
    try:
        assert _runs(proc, stack.api_command(settings, 1))
        stack.wait_for_api(settings, pid=proc.pid)
        assert requests.get(f"{settings.api.api_base}/healthz", timeout=5).json() == {"status": "ok"}
    finally:
        _stop(proc)


@pytest.mark.slow
def test_worker_runs_the_worker_command_of_the_stack(tmp_path: Path) -> None:
    settings = Settings(
        broker=BrokerSettings(redis_url=f"redis://127.0.0.1:{_free_port()}/0"),
        engine=EngineSettings(data_dir=tmp_path),
    )
    proc = _cli(
        ["worker", "--queues", "a,b", "--concurrency", "2", "--hostname", "w@%h"], stack.child_env(settings)
    )
    try:
        expected = stack.worker_command("a,b", 2, "w@%h")
        assert _runs(proc, expected)
        assert expected[expected.index("--pool") + 1] == "prefork"
    finally:
        _stop(proc)
