"""Three nodes of the session's engine on loopback, from the embedded node's distribution, form one cluster
(384 MB heaps): the node preparation serves several nodes as well as one. They share one snapshot folder,
so an index whose shards lie on every node is snapshotted and restored."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import requests

from bench.common import free_ports
from core.config import Settings
from stack import cluster, engines
from stack.nodes import ES_START_TIMEOUT


def snapshot_and_restore(base: str, folder: Path) -> None:
    """Registering an `fs` repository makes every node write and read a test file in it (the engine's
    verification); a 3-shard index is then saved, deleted and brought back whole."""

    def call(method: str, path: str, **body: Any) -> dict:
        resp = requests.request(method, f"{base}{path}", json=body or None, timeout=120)
        assert resp.ok, resp.text
        return resp.json()

    call("PUT", "/_snapshot/drill", type="fs", settings={"location": str(folder / "drill")})
    call("PUT", "/spread", settings={"number_of_shards": 3, "number_of_replicas": 1})
    for i in range(30):
        call("PUT", f"/spread/_doc/{i}?refresh=true", text=f"document {i}")
    holders = {row["node"] for row in call("GET", "/_cat/shards/spread?format=json") if row["prirep"] == "p"}
    done = call("PUT", "/_snapshot/drill/one?wait_for_completion=true", indices="spread")
    assert done["snapshot"]["state"] == "SUCCESS" and done["snapshot"]["shards"]["successful"] == 3
    call("DELETE", "/spread")
    call("POST", "/_snapshot/drill/one/_restore?wait_for_completion=true", indices="spread")
    assert call("GET", "/spread/_count")["count"] == 30 and len(holders) > 1  # shards from several nodes


@pytest.mark.integration
def test_three_nodes_form_a_green_cluster(settings: Settings) -> None:
    engine = engines.engine_for(settings)
    ports = free_ports(6)
    specs = cluster.cluster_specs(
        settings, engine, http_ports=ports[:3], transport_ports=ports[3:], heap="384m"
    )
    shutil.rmtree(specs[0].node_dir.parent, ignore_errors=True)  # a new cluster each run
    base = f"http://127.0.0.1:{specs[0].http_port}"
    try:
        pids = cluster.start_nodes(settings, engine, specs)
        assert len(set(pids)) == 3
        cluster.wait_serving(settings, specs, pids, ES_START_TIMEOUT)
        body = requests.get(f"{base}/_cluster/health", timeout=10).json()
        assert (body["status"], body["number_of_nodes"]) == ("green", 3)
        other = f"http://127.0.0.1:{specs[2].http_port}"  # any node answers for the whole cluster
        seen = requests.get(f"{other}/_cat/nodes?h=name&format=json", timeout=10)
        assert sorted(row["name"] for row in seen.json()) == ["n0", "n1", "n2"]
        snapshot_and_restore(base, specs[0].repository)
    finally:
        assert cluster.stop_nodes(settings, specs) == ["n2", "n1", "n0"]
