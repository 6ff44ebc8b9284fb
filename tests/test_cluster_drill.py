"""The cluster drill at a small size, on the session's engine: three nodes, a collection with 3 shards,
a node SIGKILLed mid-ingest and started again while 4 clients search. With 1 replica and with 0 replicas:
nothing accepted lost, duplicated or left pending, no search answered 5xx; with 0 replicas, every
answer while the node's shards were missing says `partial` and none after the cluster is green again.
On OpenSearch too: its three nodes formed in ~2 minutes here (load 12-22) and the 400-document drill
passed on both engines (README)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench import cluster_drill

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_node_lost_mid_ingest_loses_nothing_and_partial_answers_say_so() -> None:
    engine = "opensearch" if os.environ.get("MMSEARCH_ENGINE") == "opensearch" else "elasticsearch"
    root = Path(os.environ.get("MMSEARCH_TEST_DATA_DIR", "/tmp/mmsearch-test"))
    data_dir = root / f"cluster-drill-{engine}"
    report = cluster_drill.run(
        n=60, replicas=(1, 0), engine=engine, data_dir=data_dir, down_s=15, timeout=600
    )
    print(*report.rows, sep="\n")  # the table's rows, for the log of a CI run
    rows = {row["replicas"]: row for row in report.rows}
    for row in rows.values():
        assert row["verdict"] == "PASS", (row, report.notes)
        assert row["accepted"] == row["indexed"] == row["encoded"] + row["failed"]
        assert row["5xx"] == 0 and row["searches"] > 0
    assert rows[0]["partial during"] == rows[0]["during outage"] > 0
    assert rows[0]["partial after"] == 0 < rows[0]["after green"]
