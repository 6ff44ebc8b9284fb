"""The reliability drill at a small size: two workers (text on one, every queue on the other), the text
one SIGKILLed mid-batch twice, Elasticsearch and Redis each restarted once, on a stack of its own; nothing
accepted may be lost, duplicated or left pending, and healing (heartbeats) brings the killed batches back
long before the five-minute last resort."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import stack
from bench import drill

# Engine-neutral (it kills workers and restarts services): run once, on the Elasticsearch pass.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        os.environ.get("MMSEARCH_ENGINE") == "opensearch", reason="run on the Elasticsearch pass"
    ),
]


def test_drill_loses_nothing() -> None:
    data_dir = Path(os.environ.get("MMSEARCH_TEST_DATA_DIR", "/tmp/mmsearch-test")) / "drill"
    # Ports of its own, beside the session's (which a developer may have moved to run suites side by side).
    es_port = int(os.environ.get("MMSEARCH_ES_PORT", "9250")) + 20
    redis_port = int(os.environ.get("MMSEARCH_REDIS_PORT", "6391")) + 1
    api_port = int(os.environ.get("MMSEARCH_API_PORT", "8050")) + 89
    try:
        report = drill.run(
            n=60,
            kills=2,
            data_dir=data_dir,
            es_port=es_port,
            redis_port=redis_port,
            api_port=api_port,
            timeout=600,
            queues=("text", "all"),
        )
    finally:
        stack.down(drill.drill_settings(data_dir, es_port, redis_port, api_port)[0])
    row = report.rows[0]
    assert row["verdict"] == "PASS", (row, report.notes)
    assert row["accepted"] == row["indexed"] == row["encoded"] + row["failed"]
    assert row["worker kills"] == 2 and row["ES restarts"] == 1 and row["Redis restarts"] == 1
    assert row["workers"] == 2
    if row["kills mid-batch"]:  # from the last kill that interrupted a batch; the last resort waits 300 s
        assert row["last kill -> last done s"] < 240
