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
