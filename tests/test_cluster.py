"""Three nodes of the session's engine on loopback, from the embedded node's distribution, form one cluster
(384 MB heaps): the node preparation serves several nodes as well as one."""

from __future__ import annotations

import shutil

import pytest
import requests

from bench.common import free_ports
from core.config import Settings
from stack import cluster, engines
from stack.nodes import ES_START_TIMEOUT


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
    finally:
        assert cluster.stop_nodes(settings, specs) == ["n2", "n1", "n0"]
