"""Observability: request ids from the API into the worker's log, worker metrics after a real ingest,
`/readyz` naming the dependency that is down, JSON log lines."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import time
import uuid

import pytest
import requests

import stack
from client.api import ApiClient
from core.config import Settings
from core.logs import REQUEST_ID, JsonFormatter, RequestIdFilter, request_id_from
from search.app import create_app


def _free_port_pair() -> int:
    """A free port whose next one is free too: a prefork worker serves on it, its child on the next."""
    for _ in range(100):
        with socket.socket() as first, socket.socket() as second:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            try:
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port
    raise RuntimeError("no two free neighbouring ports on 127.0.0.1")


def _scrape(ports: tuple[int, ...]) -> str:
    """The metrics of every port, or "" while one of them is not serving yet."""
    try:
        return "".join(requests.get(f"http://127.0.0.1:{p}/metrics", timeout=10).text for p in ports)
    except requests.ConnectionError:
        return ""


def test_json_log_line_carries_request_id_and_extra_fields() -> None:
    record = logging.LogRecord("mmsearch.x", logging.INFO, __file__, 1, "encoded %d", (3,), None)
    record.index = "mmsearch-a-000001"
    token = REQUEST_ID.set("abc-123")
    try:
        RequestIdFilter().filter(record)
    finally:
        REQUEST_ID.reset(token)
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "encoded 3" and line["level"] == "INFO"
    assert line["request_id"] == "abc-123" and line["index"] == "mmsearch-a-000001"


def test_request_id_is_taken_when_sane_and_made_otherwise() -> None:
    assert request_id_from("trace-1:2.3_x") == "trace-1:2.3_x"
    for bad in (None, "", "has space", "x" * 129, "new\nline"):
        made = request_id_from(bad)
        assert made != bad and len(made) == 32


@pytest.mark.integration
def test_readyz_names_redis_when_it_is_down(settings: Settings, services: None) -> None:
    broken = settings.replace(broker={"redis_url": f"redis://127.0.0.1:{_free_port_pair()}/0"})
    client = create_app(broken).test_client()
    resp = client.get("/readyz", headers={"X-Request-ID": "probe-1"})
    body = resp.get_json()
    assert resp.status_code == 503 and body["ready"] is False
    assert body["down"] == ["redis"]
    assert body["checks"]["redis"].startswith("down: ConnectionError")
    assert body["checks"]["elasticsearch"] in ("green", "yellow")
    assert resp.headers["X-Request-ID"] == "probe-1"
    assert client.get("/readyz", headers={"X-Request-ID": "bad id"}).headers["X-Request-ID"] != "bad id"


def _metric(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))  # exposition sorts labels
    prefix = f"{name}{{{want}}} " if labels else f"{name} "
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix)]
    assert values, f"{prefix!r} not in the scrape"
    return values[0]


def _log_lines(settings: Settings, name: str) -> list[dict]:
    lines = []
    for raw in stack.log_file(settings, name).read_text(errors="replace").splitlines():
        if raw.startswith("{"):
            with contextlib.suppress(ValueError):
                lines.append(json.loads(raw))
    return lines


@pytest.mark.integration
def test_request_id_reaches_the_worker_log_and_metrics_count_the_ingest(
    settings: Settings, api: ApiClient, api_url: str, worker
) -> None:  # noqa: ANN001
    port = _free_port_pair()
    worker.kill()  # this test's worker is the only consumer, with its metrics endpoint on
    mine = stack.start_worker(settings, extra_env={"MMSEARCH_WORKER_METRICS_PORT": str(port)})
    name = f"t-obs-{uuid.uuid4().hex[:8]}"
    rid = f"test-{uuid.uuid4().hex[:12]}"
    try:
        api.create_collection(name)
        docs = [
            {"id": f"d{i}", "title": f"note {i}", "text": f"observability check number {i}"} for i in range(5)
        ]
        resp = requests.post(
            f"{api_url}/v1/collections/{name}/documents?refresh=true",
            json=docs,
            headers={"X-Request-ID": rid},
            timeout=60,
        )
        assert resp.status_code == 202, resp.text
        assert resp.headers["X-Request-ID"] == rid
        assert api.wait_encoded(name, timeout=300).get("encoded") == 5
        scrape = ""
        for _ in range(60):  # the task's success signal lands just after the documents are written
            # prefork: the main process serves queue depth on `port`, its one child the encode metrics on +1
            scrape = _scrape((port, port + 1))
            if (
                "mmsearch_worker_documents_total" in scrape
                and _metric(scrape, "mmsearch_worker_documents_total", outcome="encoded") >= 5
            ):
                break
            time.sleep(0.5)
        assert _metric(scrape, "mmsearch_worker_documents_total", outcome="encoded") >= 5
        assert _metric(scrape, "mmsearch_worker_encoder_items_total", encoder="text", outcome="encoded") >= 5
        assert _metric(scrape, "mmsearch_worker_encode_batch_seconds_count", encoder="text") >= 1
        assert _metric(scrape, "mmsearch_worker_encode_item_seconds_count", encoder="text") >= 1
        assert _metric(scrape, "mmsearch_worker_encode_batch_size_sum", encoder="text") >= 5
        assert _metric(scrape, "mmsearch_queue_depth", queue="mmsearch.text") == 0
        assert (
            _metric(scrape, "mmsearch_worker_tasks_total", task="mmsearch.encode_batch", state="success") >= 1
        )
        worker_lines = [line for line in _log_lines(settings, "worker") if line.get("request_id") == rid]
        assert any(line["message"].startswith("encoded 5") for line in worker_lines), worker_lines
        api_lines = [line for line in _log_lines(settings, "api") if line.get("request_id") == rid]
        assert any(line["logger"] == "mmsearch.access" and line["status"] == 202 for line in api_lines)
    finally:
        os.killpg(mine.pid, signal.SIGKILL)
        mine.wait(timeout=60)
        api.delete_collection(name)
        worker.ensure_running()
