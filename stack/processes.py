"""The embedded stack's process supervision: every service runs detached in its own process group, with a
pid file under `<data_dir>/run` and a log under `<data_dir>/logs`, so a later shell can find and stop it."""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import psutil
import requests

from core.config import Settings
from stack.errors import StackError

STOP_GRACE = 30.0
POLL_INTERVAL = 0.5


def data_dir(settings: Settings) -> Path:
    """The data dir as an absolute path: children started elsewhere must see the same one."""
    return Path(settings.engine.data_dir).expanduser().resolve()


def pid_file(settings: Settings, name: str) -> Path:
    return data_dir(settings) / "run" / f"{name}.pid"


def log_file(settings: Settings, name: str) -> Path:
    return data_dir(settings) / "logs" / f"{name}.log"


def write_pid(settings: Settings, name: str, pid: int) -> None:
    path = pid_file(settings, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{pid}\n")


def running_pid(settings: Settings, name: str) -> int | None:
    """The pid in the pid file if that process still runs (and is not a newer one that reused the pid)."""
    path = pid_file(settings, name)
    try:
        pid = int(path.read_text().strip())
        written = path.stat().st_mtime
        started = psutil.Process(pid).create_time()
    except (OSError, ValueError, psutil.Error):
        return None
    return pid if started <= written + 1 and is_live(pid) else None


def is_live(pid: int) -> bool:
    """True while the process runs; a zombie counts as gone (and is reaped when it is our child)."""
    try:
        if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
            return True
    except psutil.Error:
        return False
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    return False


def spawn(
    settings: Settings,
    name: str,
    argv: list[str],
    env: Mapping[str, str],
    *,
    cwd: Path | None = None,
    user: pwd.struct_passwd | None = None,
) -> subprocess.Popen:
    """Start detached (own session, so it outlives this shell and stops as a group), appending to its log."""
    log = log_file(settings, name)
    log.parent.mkdir(parents=True, exist_ok=True)
    as_user = {} if user is None else {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    with open(log, "ab") as out:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
            **as_user,
        )


def stop(settings: Settings, name: str, grace: float = STOP_GRACE) -> bool:
    """Stop component `name` if it runs and remove its pid file (stale or not); return whether it ran."""
    pid = running_pid(settings, name)
    if pid is not None:
        stop_group(pid, grace)
    pid_file(settings, name).unlink(missing_ok=True)
    return pid is not None


def stop_group(pid: int, grace: float) -> None:
    """SIGTERM the leader `pid`, then SIGKILL its process group if any of it outlives `grace` seconds."""
    try:
        leader = psutil.Process(pid)
        members = [leader, *leader.children(recursive=True)]
    except psutil.Error:
        return
    # The leader stops its own children cleanly (ES's launcher, gunicorn's master); the group gets SIGKILL.
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not _wait_gone(members, grace):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        _wait_gone(members, 10.0)


def _wait_gone(procs: list[psutil.Process], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while any(proc.is_running() and is_live(proc.pid) for proc in procs):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def wait_until(
    check: Callable[[], bool], timeout: float, what: str, *, pid: int | None = None, log: Path | None = None
) -> None:
    """Poll `check` until true; raise with the log's tail on timeout or as soon as process `pid` dies."""
    deadline = time.monotonic() + timeout
    while not check():
        if pid is not None and not is_live(pid):
            raise StackError(f"{what} exited while starting" + tail(log))
        if time.monotonic() > deadline:
            raise StackError(f"{what} not ready after {timeout:.0f} s" + tail(log))
        time.sleep(POLL_INTERVAL)


def http_ok(url: str) -> bool:
    """Whether `url` answers 200 within two seconds (a readiness probe: any failure means no)."""
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def tail(log: Path | None, lines: int = 40) -> str:
    """The last lines of a service's log, formatted to append to an error message."""
    if log is None or not log.exists():
        return ""
    text = log.read_text(errors="replace").splitlines()[-lines:]
    return f"\n--- last {len(text)} lines of {log} ---\n" + "\n".join(text)
