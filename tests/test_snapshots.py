"""Backups end to end: a collection with a profile, a long uploaded PDF (passages, a blob) and short
documents is snapshotted through `mmsearch snapshot`, deleted, restored, then restored again into a new
one-node cluster with its own blob store; each time the same searches give the same ids and scores,
`/content` serves the same bytes and the profile is back."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from bench.common import free_ports, spawned_api
from client.api import ApiClient
from core.config import Settings
from core.es import make_client
from ingest import snapshots
from ingest.snapshots import REPOSITORY
from mmsearch.cli import main
from stack import cluster, engines
from stack.nodes import ES_START_TIMEOUT, NodeSpec, start_node
from stack.processes import data_dir
from stack.users import node_user
from tests.test_api_passages import long_pdf_and_query

pytestmark = pytest.mark.integration

PROFILE = {"fusion": {"method": "rrf", "k": 20}, "boosts": {"title": 2.0, "content": 1.0}, "rank_window": 50}
SHORT = [
    {"id": "reef", "title": "Coral reefs", "text": "Coral reefs bleach when sea temperatures rise."},
    {"id": "bread", "title": "Sourdough", "text": "Sourdough rises slowly thanks to wild yeast."},
]


def stale_repository(es, base: Path, aside: Path) -> None:  # noqa: ANN001
    """Re-register the repository over an empty folder, then put the snapshots back into it."""
    engine_dir = base / snapshots.ENGINE_DIR
    shutil.move(engine_dir, aside)
    es.snapshot.delete_repository(name=REPOSITORY)
    snapshots.ensure_repository(es, base)
    shutil.rmtree(engine_dir)
    shutil.move(aside, engine_dir)


@contextmanager
def new_cluster(settings: Settings, backup: Path) -> Iterator[Settings]:
    """A second one-node cluster of the session's engine, as on a new machine: its own node, data and blob
    store, a copy of the snapshot root `backup` in its `path.repo`. Yields settings pointing at it; it
    shares only the distribution and the model files (whose compiled forms are cached beside them)."""
    engine = engines.engine_for(settings)
    http, transport = free_ports(2)
    root = data_dir(settings) / f"{engine.node_dir}-new-cluster"
    shutil.rmtree(root, ignore_errors=True)
    node = root / "node"
    spec = NodeSpec("new", f"{engine.name}-new", http, transport, node, "384m", config_dir=node / "config")
    shutil.copytree(backup, spec.repository)
    user = node_user()
    if user is not None:  # the node runs unprivileged and writes into its repository
        for path in [spec.repository, *spec.repository.rglob("*")]:
            os.chown(path, user.pw_uid, user.pw_gid)
    (root / "data").mkdir()
    (root / "data" / "models").symlink_to(settings.engine.data_dir / "models")
    url = f"http://127.0.0.1:{http}"
    new = settings.replace(engine={"elasticsearch_url": url, "data_dir": root / "data"})
    try:
        cluster.wait_serving(settings, [spec], [start_node(settings, engine, spec)], ES_START_TIMEOUT)
        yield new
    finally:
        cluster.stop_nodes(settings, [spec])


def ranked(result: dict) -> list[tuple[str, float]]:
    return [(hit["id"], hit["score"]) for hit in result["hits"]]


def cli(*args: str) -> str:
    out = CliRunner().invoke(main, list(args))
    assert out.exit_code == 0, out.output
    return out.output


def content(api_url: str, name: str, doc_id: str) -> requests.Response:
    return requests.get(f"{api_url}/v1/collections/{name}/documents/{doc_id}/content", timeout=30)


def test_a_deleted_collection_comes_back_from_a_snapshot_whole(
    api: ApiClient, api_url: str, es, settings: Settings, tmp_path: Path
) -> None:
    name, snap = f"t-{uuid.uuid4().hex[:10]}", f"t-{uuid.uuid4().hex[:10]}"
    pdf, query, short = long_pdf_and_query()
    (tmp_path / "report.pdf").write_bytes(pdf)
    api.create_collection(name)
    try:
        pdf_id = api.add_files(name, [tmp_path / "report.pdf"], refresh=True)["files"][0]["id"]
        api.add_documents(
            name, [*SHORT, {"id": "short", "title": "A short one", "text": short}], refresh=True
        )
        api.request("PUT", f"/v1/collections/{name}/profiles/tuned", json=PROFILE)
        assert api.wait_encoded(name, timeout=300).get("encoded") == 4
        assert api.document(name, pdf_id)["source"]["passages"]  # a long document, cut into passages
        # One segment, no deleted versions: BM25 statistics count a replaced document's old version
        # until a merge drops it, so a snapshot taken later could otherwise score differently.
        alias = f"{settings.engine.index_prefix}{name}"
        requests.post(
            f"{settings.engine.es_url}/{alias}/_forcemerge?max_num_segments=1", timeout=600
        ).raise_for_status()
        requests.post(f"{settings.engine.es_url}/{alias}/_refresh", timeout=60).raise_for_status()
        searches = [{"query": query, "profile": "tuned"}, {"query": "coral reefs", "mode": "lexical"}]
        before = [api.search(name, **params) for params in searches]
        assert all(out["hits"] and out["partial"] is False for out in before)
        pdf_bytes = content(api_url, name, pdf_id).content
        profiles = api.profiles(name)
        assert pdf_bytes == pdf and profiles["tuned"]["fusion"]["method"] == "rrf"

        cli("snapshot", "create", "--collection", name, "--name", snap)
        assert snap in cli("snapshot", "list")
        again = CliRunner().invoke(main, ["snapshot", "create", "--collection", name, "--name", snap])
        assert again.exit_code != 0 and "already exists" in again.output  # the engine's word, one line
        api.delete_collection(name)
        assert not api.collection_exists(name) and content(api_url, name, pdf_id).status_code == 404
        # As a backup copied into a new cluster that had registered the repository already: Elasticsearch
        # knew the folder empty, so it does not see the snapshot until the repository is registered again
        # (OpenSearch reads the folder anew).
        stale_repository(es, snapshots.root(es, settings), tmp_path / "moved")
        assert (snap in cli("snapshot", "list")) == (settings.engine.kind == "opensearch")

        cli("snapshot", "restore", snap, "--collection", name)
        after = [api.search(name, **params) for params in searches]
        assert ranked(after[0]) == ranked(before[0])  # the profile's fusion (RRF) over vectors and BM25
        if settings.engine.kind == "opensearch":
            # OpenSearch's restore drops the soft-deleted versions that the worker's updates left (a
            # live index keeps them for its retention leases, even through a force-merge); BM25's
            # document counts then change, so its scores may, though never the documents or their order.
            assert [hit for hit, _ in ranked(after[1])] == [hit for hit, _ in ranked(before[1])]
        else:
            assert ranked(after[1]) == ranked(before[1])
        assert [h["passages"] for h in after[0]["hits"] if "passages" in h] == [
            h["passages"] for h in before[0]["hits"] if "passages" in h
        ]
        assert content(api_url, name, pdf_id).content == pdf_bytes
        assert api.profiles(name) == profiles
        with pytest.raises(AssertionError, match="exists"):  # never over a live collection
            cli("snapshot", "restore", snap, "--collection", name)

        with new_cluster(settings, snapshots.root(es, settings)) as elsewhere:
            with make_client(elsewhere) as other:
                assert not other.indices.exists_alias(name=alias)
                restored = snapshots.restore(other, elsewhere, snap)
            assert restored["collections"] == [name] and restored["blobs_copied"] == 1
            with spawned_api({}, elsewhere) as new_api:
                again = [new_api.search(name, **params) for params in searches]
                assert [ranked(out) for out in again] == [ranked(out) for out in after]
                assert new_api.profiles(name) == profiles
                assert content(new_api.base_url, name, pdf_id).content == pdf_bytes
    finally:
        if api.collection_exists(name):
            api.delete_collection(name)
        es.options(ignore_status=404).snapshot.delete(repository=REPOSITORY, snapshot=snap)


def test_restoring_an_unknown_snapshot_is_a_clear_error(es) -> None:
    out = CliRunner().invoke(main, ["snapshot", "restore", "no-such-snapshot"])
    assert out.exit_code != 0 and "no snapshot 'no-such-snapshot'" in out.output


def test_a_bad_snapshot_name_is_refused(es) -> None:
    out = CliRunner().invoke(main, ["snapshot", "create", "--name", "Bad Name"])
    assert out.exit_code != 0 and "snapshot name" in out.output
