"""Backups of collections: the engine's snapshot of their indices, their state documents (profiles, jobs)
and a copy of the blobs their documents reference, saved and restored together.

A collection is three things kept in three places; a snapshot of the indices alone would come back with
no profiles and `/content` answering 404. Layout under the snapshot root (the engine node's `path.repo`,
or `MMSEARCH_SNAPSHOT_DIR` for a repository the CLI cannot see, e.g. S3):

    <root>/engine/                  the engine's `fs` repository `mmsearch` (written by the engine)
    <root>/mmsearch/<snapshot>/     manifest.json (collections, their indices, state, blob list)
                                    blobs/ab/cd/<sha256> (a blob store of the referenced blobs)

An operator's job on the machine that holds the data dir, so this calls the engine and the blob store
directly rather than through the HTTP API.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from elasticsearch import ApiError, NotFoundError

from core.config import Settings
from core.errors import Conflict, MmsearchError, NotFound
from core.es import Client, error_reason
from ingest.blobrefs import shas_of
from ingest.blobstore import BlobStore
from mappings import catalog, metastore

REPOSITORY = "mmsearch"
ENGINE_DIR = "engine"  # under the root: the engine's fs repository
SIDECAR_DIR = "mmsearch"  # under the root: one folder per snapshot, manifest and blobs
MANIFEST = "manifest.json"
SNAPSHOT_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")  # what the engine accepts, lower case


class SnapshotError(MmsearchError):
    """A snapshot that cannot be made or restored as asked."""


@contextmanager
def _engine(what: str) -> Iterator[None]:
    """The engine's refusal (a name taken, a folder it may not write, an index in the way) as one line."""
    try:
        yield
    except ApiError as exc:
        raise SnapshotError(f"{what}: {error_reason(exc)}") from None


def root(es: Client, settings: Settings) -> Path:
    """The snapshot root: configured, else the first `path.repo` the engine's nodes declare."""
    if settings.engine.snapshot_dir:
        return Path(settings.engine.snapshot_dir)
    info = es.nodes.info(metric="settings")
    for node in info["nodes"].values():
        repo = node.get("settings", {}).get("path", {}).get("repo")
        if repo:
            return Path(repo[0] if isinstance(repo, list) else repo)
    raise SnapshotError(
        "the engine declares no snapshot folder: set `path.repo` on every node (a folder all nodes and "
        "this machine share) or register a `mmsearch` repository and set MMSEARCH_SNAPSHOT_DIR"
    )


def ensure_repository(es: Client, base: Path) -> None:
    """Register the `fs` repository under `base` unless a `mmsearch` repository exists (an operator's S3
    or other repository is used as registered)."""
    try:
        es.snapshot.get_repository(name=REPOSITORY)
        return
    except NotFoundError:
        pass
    with _engine(f"registering the snapshot repository at {base / ENGINE_DIR}"):
        es.snapshot.create_repository(
            name=REPOSITORY,
            body={"type": "fs", "settings": {"location": str(base / ENGINE_DIR), "compress": True}},
        )


def reload_if_stale(es: Client, base: Path, snapshot: str) -> None:
    """Register our `fs` repository again when it does not know `snapshot` although its manifest is
    here: a backup folder copied into a cluster that had registered the repository already (the engine
    keeps the generation it last read, so the copied snapshots stay invisible). An operator's repository
    is left as it is."""
    try:
        es.snapshot.get(repository=REPOSITORY, snapshot=snapshot)
        return
    except NotFoundError:
        pass
    repository = es.snapshot.get_repository(name=REPOSITORY)[REPOSITORY]
    if repository["type"] != "fs" or repository["settings"].get("location") != str(base / ENGINE_DIR):
        return
    with _engine("registering the snapshot repository again"):
        es.snapshot.delete_repository(name=REPOSITORY)
    ensure_repository(es, base)


def create(
    es: Client, settings: Settings, names: list[str] | None = None, snapshot: str | None = None
) -> dict[str, Any]:
    """Snapshot the named collections (all when None): their indices through the engine, then their state
    and blobs beside it. Returns the manifest."""
    snapshot = snapshot or datetime.now(UTC).strftime("snap-%Y%m%d-%H%M%S")
    if not SNAPSHOT_NAME.fullmatch(snapshot):
        raise SnapshotError(f"snapshot name {snapshot!r}: use lower-case letters, digits, '.', '_' or '-'")
    names = names if names is not None else catalog.list_names(es, settings)
    if not names:
        raise SnapshotError("there is no collection to snapshot")
    aliases = {name: catalog.get(es, settings, name).alias for name in names}  # each must exist
    indices = {name: sorted(es.indices.get_alias(name=alias)) for name, alias in aliases.items()}
    base = root(es, settings)
    ensure_repository(es, base)
    with _engine(f"snapshot {snapshot!r}"):
        resp = es.snapshot.create(
            repository=REPOSITORY,
            snapshot=snapshot,
            indices=",".join(index for group in indices.values() for index in group),
            include_global_state=False,
            wait_for_completion=True,
        )
    state = resp["snapshot"]["state"]
    if state != "SUCCESS":
        failures = resp["snapshot"].get("failures")
        raise SnapshotError(f"the engine's snapshot {snapshot!r} ended {state}: {failures}")
    folder = base / SIDECAR_DIR / snapshot
    manifest = {
        "snapshot": snapshot,
        "repository": REPOSITORY,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "collections": {
            name: _save_collection(es, settings, name=name, indices=indices[name], folder=folder)
            for name in names
        },
    }
    _write_json(folder / MANIFEST, manifest)
    return manifest


def _save_collection(
    es: Client, settings: Settings, *, name: str, indices: list[str], folder: Path
) -> dict[str, Any]:
    """One collection's entry of the manifest, its referenced blobs copied into the snapshot's store."""
    alias = catalog.alias_for(settings, name)
    shas = sorted(set(shas_of(es, alias)))
    store, copy = BlobStore.from_settings(settings), BlobStore(folder / "blobs")
    missing = []
    for sha in shas:
        if copy.exists(sha):
            continue
        try:
            with store.open(sha) as handle:
                copy.put(handle)
        except FileNotFoundError:  # released since the engine's snapshot (its document was deleted)
            missing.append(sha)
    return {
        "alias": alias,
        "indices": indices,
        "documents": es.count(index=alias)["count"],
        "state": metastore.read(es, settings, name),
        "blobs": [sha for sha in shas if sha not in missing],
        "missing_blobs": missing,
    }


def restore(es: Client, settings: Settings, snapshot: str, names: list[str] | None = None) -> dict[str, Any]:
    """Bring the named collections (all of the snapshot when None) back: indices with their aliases,
    state documents and blobs. A collection that exists is refused (delete it first): a restore never
    overwrites live data. Returns what was restored."""
    base = root(es, settings)
    manifest = read_manifest(base, snapshot)
    saved = manifest["collections"]
    names = names if names is not None else sorted(saved)
    unknown = sorted(set(names) - set(saved))
    if unknown:
        raise NotFound(f"snapshot {snapshot!r} holds no collection {', '.join(unknown)}")
    existing = [name for name in names if es.indices.exists_alias(name=saved[name]["alias"])]
    if existing:
        raise Conflict(f"collection {', '.join(existing)} exists: delete it before restoring it")
    ensure_repository(es, base)
    reload_if_stale(es, base, snapshot)
    indices = [index for name in names for index in saved[name]["indices"]]
    with _engine(f"restoring {snapshot!r}"):  # waits until every primary shard is back
        es.snapshot.restore(
            repository=REPOSITORY,
            snapshot=snapshot,
            indices=",".join(indices),
            include_aliases=True,
            include_global_state=False,
            wait_for_completion=True,
        )
    blobs = _restore_blobs(settings, base / SIDECAR_DIR / snapshot, [saved[n]["blobs"] for n in names])
    for name in names:
        for kind, items in saved[name]["state"].items():
            for item, body in items.items():
                metastore.put(es, settings, name, kind=kind, name=item, body=body)
        catalog.CACHE.invalidate(name)
    return {"snapshot": snapshot, "collections": names, "indices": indices, "blobs_copied": blobs}


def _restore_blobs(settings: Settings, folder: Path, groups: list[list[str]]) -> int:
    """Copy back the saved blobs the store lacks; returns how many were copied."""
    store, saved = BlobStore.from_settings(settings), BlobStore(folder / "blobs")
    copied = 0
    for sha in sorted({sha for group in groups for sha in group}):
        if store.exists(sha):
            continue
        with saved.open(sha) as handle:
            store.put(handle)
        copied += 1
    return copied


def list_snapshots(es: Client, settings: Settings) -> list[dict[str, Any]]:
    """The repository's snapshots, oldest first, with the collections each saved (from its manifest)."""
    base = root(es, settings)
    ensure_repository(es, base)
    resp = es.snapshot.get(repository=REPOSITORY, snapshot="_all")
    out = []
    for snap in resp["snapshots"]:
        try:
            saved = read_manifest(base, snap["snapshot"])["collections"]
        except NotFound:  # taken by something else than `mmsearch snapshot`, or its manifest was lost
            saved = {}
        out.append(
            {
                "snapshot": snap["snapshot"],
                "state": snap.get("state"),
                "start_time": snap.get("start_time"),
                "collections": {
                    name: {"documents": entry["documents"], "blobs": len(entry["blobs"])}
                    for name, entry in saved.items()
                },
            }
        )
    return out


def read_manifest(base: Path, snapshot: str) -> dict[str, Any]:
    if not SNAPSHOT_NAME.fullmatch(snapshot):
        raise SnapshotError(f"snapshot name {snapshot!r}: use lower-case letters, digits, '.', '_' or '-'")
    path = base / SIDECAR_DIR / snapshot / MANIFEST
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise NotFound(f"no snapshot {snapshot!r} made by `mmsearch snapshot` under {base}") from None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Written aside and renamed: a manifest is whole or absent."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)
