"""The embedded stack: local Elasticsearch (or OpenSearch), Redis, a Celery worker and the API, started and
stopped for you. `MMSEARCH_ENGINE=opensearch` runs OpenSearch with its k-NN plugin in Elasticsearch's slot
(same port, same `elasticsearch` component name and pid file).

Every service runs detached in its own process group, with a pid file under `<data_dir>/run` and a log
under `<data_dir>/logs`, so `mmsearch up` is idempotent and `mmsearch down` works from any later shell.
Services that are configured by URL (`ELASTICSEARCH_URL`, `REDIS_URL`) are external: they are only waited
for, never started or stopped.

Modules: `java` (finding a JDK), `artifacts` (Maven fetch and unpack), `processes` (pid files, logs,
spawn, stop, waits), `users` (running nodes unprivileged as root), `engines` (what differs between
Elasticsearch and OpenSearch), `nodes` (one node preparation for both), `broker` (Redis), `apps` (the
worker and the API), `services` (up, down, status), `cluster` (several nodes on loopback). This package
re-exports what callers use.
"""

from __future__ import annotations

from stack.apps import api_command, child_env, start_api, start_worker, wait_for_api, worker_command
from stack.broker import ensure_redis
from stack.errors import StackError
from stack.java import MIN_JAVA, java_home
from stack.nodes import ensure_elasticsearch
from stack.processes import STOP_GRACE, log_file, stop
from stack.services import COMPONENTS, down, status, up

__all__ = [
    "COMPONENTS",
    "MIN_JAVA",
    "STOP_GRACE",
    "StackError",
    "api_command",
    "child_env",
    "down",
    "ensure_elasticsearch",
    "ensure_redis",
    "java_home",
    "log_file",
    "start_api",
    "start_worker",
    "status",
    "stop",
    "up",
    "wait_for_api",
    "worker_command",
]
