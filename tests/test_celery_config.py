"""The Celery app reads no settings at import: they come in when its configuration is first used (a
worker starting, the API's first enqueue), each task's options included. No services (no broker
connection is made: the app is only configured)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import json
from core.config import get_settings
import search.app, workers.reencode, workers.reconcile, workers.migrate
read_at_import = get_settings.cache_info().currsize
from workers.celery_app import app
from workers.tasks import encode_batch
from workers.reencode import drop_index, reencode_copy, reencode_finish
print(json.dumps({
    "read_at_import": read_at_import,
    "broker": app.conf.broker_url,
    "visibility": app.conf.broker_transport_options["visibility_timeout"],
    "limits": [encode_batch.soft_time_limit, encode_batch.time_limit],
    "retries": [t.max_retries for t in (reencode_copy, reencode_finish, drop_index)],
    "exec": encode_batch._get_exec_options()["soft_time_limit"],
}))
"""


def test_settings_are_read_when_the_app_is_configured_not_at_import() -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "MMSEARCH_TASK_SOFT_TIME_LIMIT": "123",
        "MMSEARCH_TASK_MAX_RETRIES": "7",
        "MMSEARCH_VISIBILITY_TIMEOUT": "999",
        "REDIS_URL": "redis://127.0.0.1:1/5",
    }
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["read_at_import"] == 0  # importing the API built no configured Celery app
    assert found["limits"] == [123, 183] and found["exec"] == 123  # what a publisher puts on the message
    assert found["retries"] == [7, 7, 7]
    assert found["visibility"] == 999
    assert found["broker"] == "redis://127.0.0.1:1/5"


LANES_PROBE = """
import json
from types import SimpleNamespace
from workers.celery_app import _consume_bulk_lanes, app
app.amqp.queues.select(["mmsearch", "mmsearch.text"])  # what `celery worker -Q mmsearch,mmsearch.text` does
_consume_bulk_lanes(instance=SimpleNamespace(app=app))
print(json.dumps({
    "consumed": sorted(app.amqp.queues.consume_from),
    "transport": app.conf.broker_transport_options,
    "prefetch": app.conf.worker_prefetch_multiplier,
    "acks_late": app.conf.task_acks_late,
}))
"""


def test_a_worker_given_a_modality_queue_consumes_its_bulk_lanes_too() -> None:
    """`--queues mmsearch.text` serves text, interactive and bulk; nothing of the other modalities. One
    task prefetched and acked late, so a waiting interactive batch never sits behind a prefetched bulk one."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "REDIS_URL": "redis://127.0.0.1:1/5"}
    out = subprocess.run(
        [sys.executable, "-c", LANES_PROBE], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout.strip().splitlines()[-1])
    lanes = [f"mmsearch.text.bulk.{k}" for k in range(8)]
    assert found["consumed"] == sorted(["mmsearch", "mmsearch.text", *lanes])
    assert found["transport"]["priority_steps"] == [0, 3, 6, 9]
    assert found["transport"]["queue_order_strategy"] == "round_robin"
    assert found["prefetch"] == 1 and found["acks_late"] is True
