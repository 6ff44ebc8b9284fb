"""Incremental crawling and blob reference counting, on real files against the real stack.

The plan (what to add, replace, delete) and the blob store's race guard are checked without services;
then `mmsearch crawl` runs around an edit, a rename, a touch and a deletion against Elasticsearch, the
worker and the API over HTTP, and blobs are followed through document, crawl and collection deletes.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from client.api import ApiClient, ApiClientError
from client.crawl import crawl, summary, watch
from core.config import Settings
from core.es import Client, engine_of
from ingest.blobstore import BlobStore
from ingest.crawl import LocalFile, path_id, plan, root_key, scan
from mappings import catalog, index_body
from mmsearch.cli import main

pytestmark = pytest.mark.integration


def _tree(root: Path) -> Path:
    (root / "notes" / "skip").mkdir(parents=True)
    (root / "keep.txt").write_text("alpha particles keep their charge")
    (root / "edit.md").write_text("# Beta\n\nthe original version of the beta notes")
    (root / "notes" / "old_name.txt").write_text("gamma rays travel far")
    (root / "gone.txt").write_text("delta rivers fan out")
    (root / "notes" / "skip" / "draft.txt").write_text("excluded by a glob")
    (root / "bad.bin").write_bytes(bytes(range(256)) * 4)
    (root / ".hidden.txt").write_text("hidden")
    (root.parent / "outside.txt").write_text("outside the root")
    (root / "escape.txt").symlink_to(root.parent / "outside.txt")
    return root


# --- without services --------------------------------------------------------------------------------


def test_scan_filters_by_globs_and_never_leaves_the_root(tmp_path: Path) -> None:
    root = _tree(tmp_path / "root")
    for follow in (False, True):
        found = scan(root, exclude=["notes/skip/*"], follow_symlinks=follow)
        assert sorted(found) == ["bad.bin", "edit.md", "gone.txt", "keep.txt", "notes/old_name.txt"]
    assert sorted(scan(root, include=["*.txt"], exclude=["*/skip/*"])) == [
        "gone.txt",
        "keep.txt",
        "notes/old_name.txt",
    ]


def test_plan_hashes_only_files_whose_size_or_mtime_changed(tmp_path: Path) -> None:
    files = {
        name: LocalFile(name, tmp_path / name, 10, 1_000) for name in ("same", "touched", "edited", "new")
    }
    files["edited"] = LocalFile("edited", tmp_path / "edited", 11, 2_000)
    files["touched"] = LocalFile("touched", tmp_path / "touched", 10, 5_000)
    indexed = {
        name: {
            "id": path_id("/r", name),
            "path": name,
            "size": 10,
            "mtime": files["same"].mtime,
            "sha256": name,
        }
        for name in ("same", "touched", "edited", "gone")
    }
    hashed: list[str] = []

    def sha_of(path: Path) -> str:
        hashed.append(path.name)
        return path.name  # the indexed sha256 of each entry above is its name: same bytes

    result = plan(files, indexed, sha_of)
    assert [f.path for f in result.added] == ["new"]
    assert [f.path for f in result.changed] == ["edited"]  # size differs: changed without hashing
    assert result.unchanged == ["same", "touched"]  # touched: same bytes, so not sent again
    assert [e["path"] for e in result.deleted] == ["gone"]
    assert hashed == ["touched"]


def test_ids_follow_the_path_not_the_bytes() -> None:
    assert path_id("/r", "a.txt") == path_id("/r", "a.txt")
    assert len({path_id("/r", "a.txt"), path_id("/r", "b.txt"), path_id("/s", "a.txt")}) == 3


def test_a_blob_touched_after_the_check_survives_its_release(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    sha = store.put(b"shared bytes").sha256
    since = store.clock()
    store.put(b"shared bytes")  # an upload of the same bytes after the reference check began
    assert not store.delete_unless_touched(sha, since)
    assert store.exists(sha)
    assert store.delete_unless_touched(sha, store.clock())
    assert not store.exists(sha)
    assert not store.delete_unless_touched(sha, store.clock())  # already gone
    assert store.put(b"shared bytes").created  # and stored again on the next upload


# --- against the stack -------------------------------------------------------------------------------


def _crawl_cli(root: Path, collection: str, *args: str) -> str:
    result = CliRunner().invoke(
        main, ["crawl", str(root), "-c", collection, "--exclude", "notes/skip/*", *args]
    )
    assert result.exit_code == 0, result.output
    return result.output


def _manifest(api: ApiClient, collection: str, root: Path) -> dict[str, dict]:
    return {e["path"]: e for e in api.manifest(collection, root_key(root))}


def test_crawl_twice_around_an_edit_a_rename_and_a_deletion(
    api: ApiClient, collection: str, settings: Settings, tmp_path: Path
) -> None:
    root = _tree(tmp_path / "root")
    store = BlobStore.from_settings(settings)
    out = _crawl_cli(root, collection)
    assert "failed    bad.bin: " in out and "added     notes/old_name.txt" in out
    assert out.strip().splitlines()[-1] == "4 added, 0 changed, 0 unchanged, 0 deleted, 1 failed"
    first = _manifest(api, collection, root)
    assert sorted(first) == ["edit.md", "gone.txt", "keep.txt", "notes/old_name.txt"]
    assert first["edit.md"]["id"] == path_id(root_key(root), "edit.md")

    (root / "edit.md").write_text("# Beta\n\nthe second version, rewritten with epsilon")
    (root / "notes" / "old_name.txt").rename(root / "notes" / "new_name.txt")
    (root / "gone.txt").unlink()
    stat = (root / "keep.txt").stat()
    os.utime(root / "keep.txt", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touched, same bytes
    out = _crawl_cli(root, collection, "-v")
    lines = set(out.strip().splitlines())
    assert {
        "changed   edit.md",
        "added     notes/new_name.txt",
        "deleted   notes/old_name.txt",
        "deleted   gone.txt",
        "unchanged keep.txt",
    } <= lines
    assert out.strip().splitlines()[-1] == "1 added, 1 changed, 1 unchanged, 2 deleted, 1 failed"

    second = _manifest(api, collection, root)
    assert sorted(second) == ["edit.md", "keep.txt", "notes/new_name.txt"]
    assert api.collection(collection)["documents"]["total"] == 3  # replaced in place, not beside
    edited = api.document(collection, first["edit.md"]["id"])["source"]
    assert "epsilon" in edited["content"] and edited["source"]["path"] == "edit.md"
    assert not store.exists(first["edit.md"]["sha256"])  # the old version's bytes went with it
    assert not store.exists(first["gone.txt"]["sha256"])
    assert store.exists(second["notes/new_name.txt"]["sha256"])  # renamed: same bytes, still referenced
    assert second["notes/new_name.txt"]["sha256"] == first["notes/old_name.txt"]["sha256"]

    # the watch loop, one poll: nothing to do, then a file appears between two passes
    runs: list[dict[str, int]] = []

    def once() -> None:
        runs.append(summary(crawl(api, root, collection, exclude=["notes/skip/*", "*.bin"])))

    assert watch(once, 0, cycles=2, sleep=lambda _: (root / "late.txt").write_text("zeta arrives late")) == 2
    assert runs[0] == {"added": 0, "changed": 0, "unchanged": 3, "deleted": 0, "failed": 0}
    assert runs[1] == {"added": 1, "changed": 0, "unchanged": 3, "deleted": 0, "failed": 0}


def test_blobs_go_with_the_last_document_that_references_them(
    api: ApiClient, collection: str, settings: Settings, tmp_path: Path
) -> None:
    store = BlobStore.from_settings(settings)
    path = tmp_path / "shared.txt"
    path.write_text(f"theta shared between collections {uuid.uuid4().hex}")
    other = f"t-{uuid.uuid4().hex[:10]}"
    api.create_collection(other)
    try:
        sha = api.add_files(collection, [path], refresh=True)["files"][0]["sha256"]
        api.add_files(other, [path], refresh=True)
        assert api.request("DELETE", f"/v1/collections/{collection}/documents/{sha}")["blobs_deleted"] == 0
        assert store.exists(sha)  # the other collection still references the bytes
    finally:
        gone = api.delete_collection(other)
    assert gone["blobs_deleted"] == 1 and not store.exists(sha)


def test_no_index_left_references_no_blob(es: Client, settings: Settings) -> None:
    from ingest.blobrefs import referenced

    # as after the last collection's delete
    pattern = f"{settings.engine.index_prefix}none-{uuid.uuid4().hex}*"
    assert referenced(es, pattern, ["0" * 64]) == set()


def test_bad_upload_fields_and_manifest_requests_are_named_4xx(
    api: ApiClient, api_url: str, collection: str, tmp_path: Path
) -> None:
    path = tmp_path / "a.txt"
    path.write_text("iota")
    cases = [
        ({"ids": ["a/b"]}, "ids[0]"),
        ({"ids": ["x", "y"]}, "ids must be a JSON list of 1"),
        ({"sources": [{"root": "/r", "path": "a.txt"}]}, "sources[0].mtime_ns"),
        ({"sources": [{"root": "/r", "path": "a.txt", "mtime_ns": -1}]}, "sources[0].mtime_ns"),
    ]
    for fields, expected in cases:
        with pytest.raises(ApiClientError) as caught:
            api.add_files(collection, [path], **fields)
        assert caught.value.status == 400 and expected in str(caught.value)
    resp = requests.get(f"{api_url}/v1/collections/{collection}/manifest", timeout=30)
    assert resp.status_code == 400 and "root is required" in resp.json()["error"]["message"]
    resp = requests.post(
        f"{api_url}/v1/collections/{collection}/documents/_delete", json={"ids": "x"}, timeout=30
    )
    assert resp.status_code == 400 and "ids: Input should be a valid list" in resp.json()["error"]["message"]


def test_a_collection_older_than_the_crawl_fields_gets_them_from_the_upgrade_step(
    api: ApiClient, es: Client, settings: Settings
) -> None:
    name = f"t-{uuid.uuid4().hex[:10]}"
    body = index_body(name, [], settings, engine_of(es))
    for field in ("root", "path", "mtime"):
        del body["mappings"]["properties"]["source"]["properties"][field]
    alias = f"{settings.engine.index_prefix}{name}"
    es.indices.create(index=f"{alias}-000001", **body, aliases={alias: {"is_write_index": True}})
    try:
        assert list(api.manifest(name, "/nowhere")) == []  # a read: the old mapping is left as it was
        mapping = es.indices.get_mapping(index=alias)[f"{alias}-000001"]["mappings"]
        assert not {"root", "path", "mtime"} & set(mapping["properties"]["source"]["properties"])
        assert f"{alias}-000001" in catalog.ensure_added_fields(es, settings)  # the upgrade step
        mapping = es.indices.get_mapping(index=alias)[f"{alias}-000001"]["mappings"]
        assert {"root", "path", "mtime"} <= set(mapping["properties"]["source"]["properties"])
    finally:
        api.delete_collection(name)
