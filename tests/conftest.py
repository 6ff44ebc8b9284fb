"""Integration fixtures: a real Elasticsearch node, Redis, Celery worker and API over HTTP.

Ports and the data dir are test-specific so a developer's `mmsearch up` stack is left alone. When
ELASTICSEARCH_URL / REDIS_URL are set, those external services are used instead.

The suite runs on one engine per session: Client by default, OpenSearch with
`MMSEARCH_ENGINE=opensearch` (`make test` runs both), each on its own port and data dir.
"""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from collections.abc import Iterator

import pytest

OPENSEARCH = os.environ.get("MMSEARCH_ENGINE") == "opensearch"
TEST_ENV = {
    # Under /tmp: as root, the engine runs as `nobody`, which must be able to enter every parent dir.
    "MMSEARCH_DATA_DIR": os.environ.get("MMSEARCH_TEST_DATA_DIR")
    or ("/tmp/mmsearch-test-os" if OPENSEARCH else "/tmp/mmsearch-test"),
    "MMSEARCH_ES_PORT": "9260" if OPENSEARCH else "9250",
    "MMSEARCH_ES_HEAP": "512m" if OPENSEARCH else "1g",
    "MMSEARCH_REDIS_PORT": "6391",
    "MMSEARCH_API_PORT": "8050",
    "MMSEARCH_VISIBILITY_TIMEOUT": "15",  # a killed worker's batch comes back after 15 s
    "MMSEARCH_TASK_BATCH_SIZE": "16",
    # The test cluster is shared by runs with the same index prefix: a reconciler would pick up their
    # pending documents. The drill (tests/test_drill.py) runs it on a stack of its own.
    "MMSEARCH_RECONCILE_INTERVAL": "0",
    "MMSEARCH_HEAL_INTERVAL": "0",  # likewise; tests/test_heal.py starts workers that heal
    "MMSEARCH_MAX_BODY_BYTES": str(8 * 1024 * 1024),
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}
for key, value in TEST_ENV.items():
    os.environ.setdefault(key, value)

from client.api import ApiClient  # noqa: E402
from core.config import Settings, get_settings  # noqa: E402


def stop_group(process: subprocess.Popen, sig: int = signal.SIGTERM, grace: float = 60.0) -> None:
    """Signal a service's process group; SIGKILL it when a loaded machine makes it outlive the grace."""
    os.killpg(process.pid, sig)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


class WorkerControl:
    """The session's Celery worker process, which tests may kill and restart."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.process: subprocess.Popen | None = None

    def start(self, queues: str | None = None) -> None:
        import stack

        self.process = stack.start_worker(self.settings, queues=queues)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process and self.process.poll() is None:
            stop_group(self.process, sig)
        self.process = None

    def ensure_running(self) -> None:
        if self.process is None or self.process.poll() is not None:
            self.start()


@pytest.fixture(scope="session")
def settings() -> Settings:
    return get_settings()


@pytest.fixture(scope="session")
def services(settings: Settings) -> Iterator[None]:
    import stack

    stack.ensure_elasticsearch(settings)
    stack.ensure_redis(settings)
    yield
    if os.environ.get("MMSEARCH_TEST_KEEP_SERVICES") != "1":
        stack.down(settings)


@pytest.fixture(scope="session")
def worker(settings: Settings, services: None) -> Iterator[WorkerControl]:
    control = WorkerControl(settings)
    control.start()
    yield control
    control.kill(signal.SIGTERM)


@pytest.fixture(scope="session")
def api_url(settings: Settings, services: None, worker: WorkerControl) -> Iterator[str]:
    import stack

    process = stack.start_api(settings)
    stack.wait_for_api(settings, timeout=120)
    yield settings.api.api_base
    stop_group(process)


@pytest.fixture(scope="session")
def api(api_url: str) -> ApiClient:
    return ApiClient(api_url)


@pytest.fixture(scope="session")
def es(settings: Settings, services: None):  # noqa: ANN201
    from core.es import make_client

    return make_client(settings)


@pytest.fixture
def collection(api: ApiClient) -> Iterator[str]:
    """A fresh collection (default encoders), deleted afterwards."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    api.create_collection(name)
    yield name
    api.delete_collection(name)
