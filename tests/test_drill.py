"""The reliability drill at a small size: worker SIGKILLed mid-batch twice, Elasticsearch and Redis each
restarted once, on a stack of its own; nothing accepted may be lost, duplicated or left pending."""

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
    try:
        report = drill.run(n=60, kills=2, data_dir=data_dir, timeout=600)
    finally:
        stack.down(drill.drill_settings(data_dir, 9270, 6392, 8139)[0])
    row = report.rows[0]
    assert row["verdict"] == "PASS", (row, report.notes)
    assert row["accepted"] == row["indexed"] == row["encoded"] + row["failed"]
    assert row["worker kills"] == 2 and row["ES restarts"] == 1 and row["Redis restarts"] == 1
