"""The product's own processes: the Celery worker and the API under gunicorn, their command lines (shared
with `mmsearch worker` and `mmsearch serve`) and the environment that hands them this process's settings."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence

from core.config import Settings
from stack.processes import data_dir, http_ok, log_file, spawn, wait_until

API_START_TIMEOUT = 120.0

_worker_seq = itertools.count(1)


def worker_command(
    queues: str | Sequence[str] | None = None, concurrency: int = 1, hostname: str | None = None
) -> list[str]:
    """The Celery worker's command line, for `start_worker` and `mmsearch worker` alike.

    One child process by default: one task at a time, so a model is loaded once. The prefork pool (not
    solo) so that a child killed for memory is replaced and the task time limits are enforced."""
    argv = [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "--loglevel", "INFO"]
    argv += ["--pool", "prefork", "--concurrency", str(concurrency)]
    if hostname:
        argv += ["--hostname", hostname]
    if queues:
        argv += ["-Q", queues if isinstance(queues, str) else ",".join(queues)]
    return argv


def api_command(settings: Settings, workers: int = 2) -> list[str]:
    """The API's command line (gunicorn on `api_host:api_port`), for `start_api` and `mmsearch serve`."""
    argv = [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--threads", "4", "--timeout", "120"]
    return argv + ["--bind", f"{settings.api.api_host}:{settings.api.api_port}", "search.app:create_app()"]


def start_worker(
    settings: Settings, extra_env: Mapping[str, str] | None = None, queues: str | Sequence[str] | None = None
) -> subprocess.Popen:
    """Start one Celery worker, detached, under a node name of its own (tests start several)."""
    hostname = f"worker-{os.getpid()}-{next(_worker_seq)}@%h"
    argv = worker_command(queues, hostname=hostname)
    return spawn(settings, "worker", argv, child_env(settings, extra_env))


def start_api(settings: Settings, extra_env: Mapping[str, str] | None = None) -> subprocess.Popen:
    """Start the HTTP API under gunicorn on `api_host:api_port`, detached."""
    return spawn(settings, "api", api_command(settings), child_env(settings, extra_env))


def wait_for_api(settings: Settings, timeout: float = API_START_TIMEOUT, pid: int | None = None) -> None:
    """Block until `/healthz` answers 200; fail early, with its log, if process `pid` dies meanwhile."""
    url = f"{settings.api.api_base}/healthz"
    wait_until(lambda: http_ok(url), timeout, f"API at {url}", pid=pid, log=log_file(settings, "api"))


def child_env(settings: Settings, extra_env: Mapping[str, str] | None = None) -> dict[str, str]:
    """`os.environ` plus every setting as its variable, so child processes see this process's config."""
    resolved = settings.replace(engine={"data_dir": data_dir(settings)})
    return {**os.environ, "PYTHONUNBUFFERED": "1", **resolved.env(), **(extra_env or {})}
