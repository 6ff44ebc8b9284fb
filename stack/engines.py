"""What differs between the two engines the stack can run, as data and two small functions: where the
distribution comes from, its names, its environment variables, and how its security plugin is turned off.
Everything else about a node is shared (`stack.nodes`)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.config import Settings
from stack import artifacts
from stack.processes import data_dir

ES_ARTIFACT = "org.elasticsearch.distribution.integ-test-zip:elasticsearch:{version}:zip"
# OpenSearch's full distribution (every module) and its k-NN plugin, whose version is the server's + ".0".
OS_ARTIFACT = "org.opensearch.distribution.integ-test-zip:opensearch:{version}:zip"
OS_KNN_ARTIFACT = "org.opensearch.plugin:opensearch-knn:{version}.0:zip"


@dataclass(frozen=True)
class Engine:
    """One engine's distribution: `bin/<name>` starts it and `config/<name>.yml` configures it."""

    name: str
    label: str
    node_dir: str  # its nodes' data, logs and tmp live under `<data_dir>/<node_dir>`
    java_vars: tuple[str, ...]  # the variables naming the JDK
    opts_var: str  # JVM options (the heap)
    tmp_var: str
    conf_var: str  # the config dir, so several nodes can share one distribution
    bootstrap_setting: str  # names the nodes that bootstrap a new cluster
    owned_in_home: tuple[str, ...]  # directories of the distribution, besides config, the node writes
    install: Callable[[Settings, Path], Path]  # (settings, java) -> the unpacked distribution's home
    security_lines: Callable[[Path], list[str]]  # home -> config lines that turn security off

    def env(self, *, java: Path, heap: str, tmp: Path, conf: Path) -> dict[str, str]:
        """The variables a node's start script reads, besides the inherited environment."""
        return {
            **dict.fromkeys(self.java_vars, str(java)),
            self.opts_var: f"-Xms{heap} -Xmx{heap}",
            self.tmp_var: str(tmp),
            self.conf_var: str(conf),
        }


def engine_for(settings: Settings) -> Engine:
    """The embedded engine: OpenSearch when `MMSEARCH_ENGINE=opensearch`, else Elasticsearch."""
    return OPENSEARCH if settings.engine.kind == "opensearch" else ELASTICSEARCH


def _install_elasticsearch(settings: Settings, java: Path) -> Path:
    """The Maven distribution (server, transport modules, x-pack core and security), unpacked once."""
    version = settings.engine.es_version
    archive = artifacts.fetch_zip(ES_ARTIFACT, "es", "elasticsearch", version)
    return artifacts.install(data_dir(settings), "elasticsearch", version, archive=archive)


def _elasticsearch_security(home: Path) -> list[str]:
    return [
        "# Security is disabled on purpose for this node only: it binds to 127.0.0.1 and serves local",
        "# development and tests. A cluster reachable from elsewhere is an external one, with security on.",
        "xpack.security.enabled: false",
    ]


def _install_opensearch(settings: Settings, java: Path) -> Path:
    """The distribution plus the k-NN plugin (its Lucene engine needs no native libraries)."""
    version = settings.engine.opensearch_version
    knn_zip = artifacts.fetch_zip(OS_KNN_ARTIFACT, "opensearch", "opensearch-knn", version)

    def add_knn(home: Path) -> None:
        argv = [str(home / "bin" / "opensearch-plugin"), "install", "--batch", knn_zip.resolve().as_uri()]
        artifacts.run_tool(argv, "installing the k-NN plugin", env={**os.environ, "JAVA_HOME": str(java)})

    archive = artifacts.fetch_zip(OS_ARTIFACT, "opensearch", "opensearch", version)
    return artifacts.install(data_dir(settings), "opensearch", version, archive=archive, prepare=add_knn)


def _opensearch_security(home: Path) -> list[str]:
    """The security plugin is turned off only if it is there (the setting is unknown otherwise)."""
    if not (home / "plugins" / "opensearch-security").exists():
        return []
    return ["plugins.security.disabled: true  # local node on 127.0.0.1 only, as for Elasticsearch"]


ELASTICSEARCH = Engine(
    name="elasticsearch",
    label="Elasticsearch",
    node_dir="es",
    java_vars=("ES_JAVA_HOME",),
    opts_var="ES_JAVA_OPTS",
    tmp_var="ES_TMPDIR",
    conf_var="ES_PATH_CONF",
    bootstrap_setting="cluster.initial_master_nodes",
    owned_in_home=(),
    install=_install_elasticsearch,
    security_lines=_elasticsearch_security,
)
OPENSEARCH = Engine(
    name="opensearch",
    label="OpenSearch",
    node_dir="os",
    java_vars=("JAVA_HOME", "OPENSEARCH_JAVA_HOME"),
    opts_var="OPENSEARCH_JAVA_OPTS",
    tmp_var="OPENSEARCH_TMPDIR",
    conf_var="OPENSEARCH_PATH_CONF",
    bootstrap_setting="cluster.initial_cluster_manager_nodes",  # `initial_master_nodes` is deprecated
    owned_in_home=("logs",),
    install=_install_opensearch,
    security_lines=_opensearch_security,
)
