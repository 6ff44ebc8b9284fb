"""The stack as a whole, for `mmsearch up/down/status` and the test fixtures: start what is missing, stop
what this data dir started, and report each component's state.

Services configured by URL (`ELASTICSEARCH_URL`, `REDIS_URL`) are external: only waited for, never
started or stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.config import Settings
from core.es import detect_engine
from stack.apps import start_api, start_worker, wait_for_api
from stack.broker import ensure_redis, redis_answers
from stack.engines import engine_for
from stack.errors import StackError
from stack.nodes import ensure_elasticsearch
from stack.processes import (
    STOP_GRACE,
    http_ok,
    is_live,
    log_file,
    running_pid,
    stop,
    tail,
    write_pid,
)

# Start order; `down` goes the other way so the clients of ES and Redis stop first.
COMPONENTS = ("elasticsearch", "redis", "worker", "api")


def up(settings: Settings) -> dict[str, dict[str, Any]]:
    """Start whatever part of the stack is not running yet; return the `status` rows keyed by name."""
    ensure_elasticsearch(settings)
    ensure_redis(settings)
    worker_pid = running_pid(settings, "worker")
    if worker_pid is None:
        worker_pid = start_worker(settings).pid
        write_pid(settings, "worker", worker_pid)
    api_pid = running_pid(settings, "api")
    if api_pid is None and not http_ok(f"{settings.api.api_base}/healthz"):
        api_pid = start_api(settings).pid
        write_pid(settings, "api", api_pid)
    wait_for_api(settings, pid=api_pid)
    if not is_live(worker_pid):
        raise StackError("the Celery worker exited" + tail(log_file(settings, "worker")))
    return {row["name"]: row for row in status(settings)}


def down(settings: Settings, grace: float = STOP_GRACE) -> list[str]:
    """Stop every component started from this data dir (SIGTERM, then SIGKILL after `grace` seconds).

    Returns the names of the components that were running. Stale pid files are removed too.
    """
    return [name for name in reversed(COMPONENTS) if stop(settings, name, grace)]


def status(settings: Settings) -> list[dict[str, Any]]:
    """One row per component: name, state (running/stopped/external), pid and url."""
    external = {"elasticsearch": not settings.engine.embedded_es, "redis": not settings.broker.embedded_redis}
    probes: dict[str, tuple[str | None, Callable[[], bool]]] = {
        "elasticsearch": (
            settings.engine.es_url,
            lambda: http_ok(f"{settings.engine.es_url}/_cluster/health"),
        ),
        "redis": (settings.broker.broker_url, lambda: redis_answers(settings.broker.broker_url)),
        "worker": (None, lambda: False),
        "api": (settings.api.api_base, lambda: http_ok(f"{settings.api.api_base}/healthz")),
    }
    rows = []
    for name in COMPONENTS:
        url, answers = probes[name]
        pid = None if external.get(name) else running_pid(settings, name)
        if external.get(name):
            state = "external"
        elif pid is not None or answers():  # it may answer without a pid file: started by hand or elsewhere
            state = "running"
        else:
            state = "stopped"
        rows.append({"name": name, "label": _label(settings, name), "state": state, "pid": pid, "url": url})
    return rows


def _label(settings: Settings, component: str) -> str:
    """What to call a component: the engine slot is named for the engine that fills it (an external
    cluster is asked), not for the slot."""
    if component != "elasticsearch":
        return component
    return engine_for(settings).name if settings.engine.embedded_es else detect_engine(settings).name
