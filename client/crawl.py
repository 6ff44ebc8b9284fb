"""Client side of `mmsearch crawl`: make a collection mirror a folder, sending only what changed.

The manifest is the collection itself (`GET .../manifest?root=`): each crawled document is keyed by its
path (`ingest.crawl.path_id`), so a changed file replaces its previous version, and a file gone takes its
document (and its blob, when nothing else references the bytes) with it.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from client.api import ApiClient, ApiClientError
from client.upload import FILE_BATCH, FILE_BATCH_BYTES
from ingest.crawl import LocalFile, path_id, plan, root_key, scan

OUTCOMES = ("added", "changed", "unchanged", "deleted", "failed")
DELETE_BATCH = 1000


@dataclass(frozen=True)
class FileReport:
    path: str
    outcome: str  # one of OUTCOMES
    reason: str = ""


def crawl(
    client: ApiClient,
    root: Path,
    collection: str,
    include: Iterable[str] = (),
    *,
    exclude: Iterable[str] = (),
    follow_symlinks: bool = False,
    echo: Callable[[FileReport], None] | None = None,
) -> list[FileReport]:
    """One pass: upload new and changed files, then delete the documents of files gone; a report per file.

    Uploads go first, so a renamed file's bytes are referenced again before the old path's document
    (and the reference it held) goes.
    """
    key = root_key(root)
    local = scan(root, include, exclude, follow_symlinks)
    todo = plan(local, {entry["path"]: entry for entry in client.manifest(collection, key)})
    reports = [FileReport(rel, "unchanged") for rel in todo.unchanged]
    reports += [_relabel(client, collection, file, doc_id) for file, doc_id in todo.relabelled]
    work = [(f, "added") for f in todo.added] + [(f, "changed") for f in todo.changed]

    def emit(found: list[FileReport]) -> None:
        reports.extend(found)
        for report in found:
            if echo:
                echo(report)
        bar.update(len(found))

    # The last request of each kind waits until the crawl's writes are searchable, so the manifest the
    # next crawl reads (a plain search) already holds them.
    uploads = list(_batches(work))
    deletes = [
        todo.deleted[start : start + DELETE_BATCH] for start in range(0, len(todo.deleted), DELETE_BATCH)
    ]
    with tqdm(total=len(work) + len(todo.deleted), desc="crawl", unit="file", disable=None) as bar:
        for number, batch in enumerate(uploads, start=1):
            emit(_upload(client, collection, key, batch, refresh=number == len(uploads)))
        for number, entries in enumerate(deletes, start=1):
            emit(_delete(client, collection, entries, refresh=number == len(deletes)))
    return sorted(reports, key=lambda r: r.path)


def summary(reports: Iterable[FileReport]) -> dict[str, int]:
    counts = Counter(r.outcome for r in reports)
    return {outcome: counts.get(outcome, 0) for outcome in OUTCOMES}


def watch(
    run: Callable[[], Any],
    interval: float,
    cycles: int | None = None,
    sleep: Callable[[float], Any] = time.sleep,
) -> int:
    """Run `run` every `interval` seconds (polling: a stat of the tree, no file-event dependency) until
    Ctrl-C, or `cycles` runs; returns the runs done."""
    done = 0
    while True:
        run()
        done += 1
        if cycles is not None and done >= cycles:
            return done
        sleep(interval)


def _batches(work: list[tuple[LocalFile, str]]) -> Iterator[list[tuple[LocalFile, str]]]:
    batch: list[tuple[LocalFile, str]] = []
    size = 0
    for item in work:
        if batch and (len(batch) >= FILE_BATCH or size + item[0].size > FILE_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += item[0].size
    if batch:
        yield batch


def _upload(
    client: ApiClient, collection: str, key: str, batch: list[tuple[LocalFile, str]], *, refresh: bool
) -> list[FileReport]:
    files = [f for f, _ in batch]
    ids = [path_id(key, f.path) for f in files]
    sources = [{"root": key, "path": f.path, "mtime_ns": f.mtime_ns} for f in files]
    readers: list[list[str] | None] = [list(f.readers) for f in files]
    try:
        paths = [f.real for f in files]
        outcomes = client.add_files(
            collection, paths, ids=ids, sources=sources, readers=readers, refresh=refresh
        )["files"]
    except (ApiClientError, OSError) as exc:  # every file refused, or one vanished before the upload
        return [FileReport(f.path, "failed", str(exc)) for f in files]
    late = {o["id"]: o["error"] for o in outcomes[len(files) :]}  # failed when written to the index
    reports = []
    for (file, kind), doc_id, outcome in zip(batch, ids, outcomes, strict=False):
        if outcome["status"] == "rejected":
            reports.append(FileReport(file.path, "failed", outcome.get("error", "")))
        elif doc_id in late:
            reports.append(FileReport(file.path, "failed", late[doc_id]))
        else:
            reports.append(FileReport(file.path, kind))
    return reports


def _relabel(client: ApiClient, collection: str, file: LocalFile, doc_id: str) -> FileReport:
    """A file whose only change is who may read it: its document's readers replaced in place (no upload,
    no re-encode); reported as changed."""
    try:
        client.set_readers(collection, doc_id, list(file.readers), refresh=True)
    except ApiClientError as exc:
        return FileReport(file.path, "failed", f"readers: {exc}")
    return FileReport(file.path, "changed", "readers")


def _delete(
    client: ApiClient, collection: str, entries: list[dict[str, Any]], *, refresh: bool
) -> list[FileReport]:
    try:
        client.delete_documents(collection, [e["id"] for e in entries], refresh=refresh)
    except ApiClientError as exc:
        return [FileReport(e["path"], "failed", f"delete: {exc}") for e in entries]
    return [FileReport(e["path"], "deleted") for e in entries]  # ids already gone count as deleted too
