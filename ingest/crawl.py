"""Walk a folder for files to ingest, without ever leaving it, and plan an incremental crawl of it.

Used by the CLI (`mmsearch ingest DIR` and `mmsearch crawl DIR`, through `client.upload` and
`client.crawl`): symlinks are skipped or, when followed, must stay inside the folder, so a link can't
pull in files from elsewhere. The crawl's manifest is the index itself: every crawled document carries
`source.{root,path,size,mtime,sha256}`, so `plan` compares the tree on disk with what the collection
holds for that root and says what to add, replace and delete. Each file carries its readers as the file
system decides them (`ingest.permissions`); a file whose only change is who may read it is relabelled in
place, not sent again.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import os
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ingest.permissions import file_readers
from media.filetypes import IngestError

log = logging.getLogger(__name__)

FileId = tuple[int, int]  # (st_dev, st_ino)


class PathNotFound(IngestError):
    """The folder (or file) to walk doesn't exist."""

    status = 404


def iter_files(root: Path | str, follow_symlinks: bool = False) -> Iterator[Path]:
    """Yield the real paths of regular, non-hidden files under `root`, in sorted order.

    Symlinks are skipped unless `follow_symlinks`; followed ones must still resolve inside `root`,
    and each file or directory is visited once (link cycles end). A `root` that is a file yields
    itself. Raises `PathNotFound` for a missing `root`; unreadable subfolders are logged and skipped.
    """
    base = Path(root).resolve()
    if not base.exists():
        raise PathNotFound(f"no such file or directory: {str(root)!r}")
    if base.is_file():
        yield base
    if not base.is_dir():
        return
    seen: set[FileId] = set()
    stack = [base]
    while stack:
        directory = stack.pop()
        key = _identity(directory.stat())
        if key in seen:
            continue
        seen.add(key)
        files, subdirs = _scan(directory, base, follow_symlinks)
        for path, key in files:  # a file reached twice (hard link, followed symlink) is yielded once
            if key not in seen:
                seen.add(key)
                yield path
        stack.extend(reversed(subdirs))


def _scan(directory: Path, base: Path, follow_symlinks: bool) -> tuple[list[tuple[Path, FileId]], list[Path]]:
    """One directory's files (with their identity, to visit each once) and subdirectories to walk, both as
    real paths inside `base`."""
    files: list[tuple[Path, FileId]] = []
    subdirs: list[Path] = []
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError as exc:
        log.warning("skipping unreadable directory %s: %s", directory, exc)
        return files, subdirs
    for entry in entries:
        target = _target(entry, base, follow_symlinks)
        if target is None:
            continue
        path, st = target
        if stat.S_ISDIR(st.st_mode):
            subdirs.append(path)
        elif stat.S_ISREG(st.st_mode):
            files.append((path, _identity(st)))
    return files, subdirs


def _target(entry: os.DirEntry, base: Path, follow_symlinks: bool) -> tuple[Path, os.stat_result] | None:
    """The real path and stat of an entry, or None when it is hidden, a refused link or gone."""
    if entry.name.startswith("."):
        return None
    try:
        if not entry.is_symlink():
            return Path(entry.path), entry.stat(follow_symlinks=False)
        if not follow_symlinks:
            return None
        real = Path(entry.path).resolve(strict=True)
        if not _inside(real, base):
            log.info("skipping symlink %s: it points outside %s", entry.path, base)
            return None
        return real, real.stat()
    except (OSError, RuntimeError):  # vanished, permission denied, or a symlink loop
        return None


def _identity(st: os.stat_result) -> FileId:
    """(device, inode): the same for every path that reaches one file or directory."""
    return (st.st_dev, st.st_ino)


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


# --- incremental crawl ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalFile:
    """A file of the tree on disk: `path` relative to the crawl root (POSIX), `real` where to read it."""

    path: str
    real: Path
    size: int
    mtime_ns: int
    readers: tuple[str, ...] = ()  # reader terms from owner, group, mode and ACL (`ingest.permissions`)

    @property
    def mtime(self) -> str:
        return mtime_iso(self.mtime_ns)


@dataclass
class Plan:
    """What a crawl has to do; `deleted` holds the manifest entries (`id`, `path`, ...) of files gone."""

    added: list[LocalFile] = field(default_factory=list)
    changed: list[LocalFile] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[dict[str, Any]] = field(default_factory=list)
    relabelled: list[tuple[LocalFile, str]] = field(default_factory=list)  # same bytes, new readers; id


def root_key(root: Path | str) -> str:
    """The crawl's name for a folder: its absolute real path (the manifest is kept per collection+root)."""
    return str(Path(root).resolve())


def path_id(root: str, path: str) -> str:
    """The document id of `path` under `root`: the same for every version of the file, unlike its sha256."""
    return "p" + hashlib.sha256(f"{root}\0{path}".encode()).hexdigest()[:40]


def mtime_iso(mtime_ns: int) -> str:
    """Nanosecond ISO time (an Elasticsearch `date_nanos`), compared as a string between runs."""
    seconds, nanos = divmod(mtime_ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def matches(path: str, include: Iterable[str] = (), exclude: Iterable[str] = ()) -> bool:
    """Glob filter on the path relative to the root (`fnmatch`: `*` also crosses folders)."""
    include, exclude = list(include), list(exclude)
    if include and not any(fnmatch.fnmatchcase(path, g) for g in include):
        return False
    return not any(fnmatch.fnmatchcase(path, g) for g in exclude)


def scan(
    root: Path | str,
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    follow_symlinks: bool = False,
) -> dict[str, LocalFile]:
    """The files under `root` that pass the globs, keyed by relative path, with size and mtime."""
    base = Path(root).resolve()
    include, exclude = list(include), list(exclude)
    found: dict[str, LocalFile] = {}
    for real in iter_files(base, follow_symlinks):
        rel = real.name if real == base else real.relative_to(base).as_posix()
        if not matches(rel, include, exclude):
            continue
        try:
            st = real.stat()
        except OSError:  # vanished since the walk
            continue
        found[rel] = LocalFile(rel, real, st.st_size, st.st_mtime_ns, tuple(file_readers(real, st)))
    return found


def plan(
    local: Mapping[str, LocalFile],
    indexed: Mapping[str, Mapping[str, Any]],
    sha_of: Callable[[Path], str] = file_sha256,
) -> Plan:
    """Compare the tree with the manifest: size and mtime first, the sha256 only when those differ.

    A file whose bytes are unchanged (touched, copied back) stays `unchanged`; its recorded mtime is then
    stale, so the next run hashes it again rather than re-indexing it. One whose bytes are unchanged but
    whose readers differ from the manifest's (a server that lists readers) is `relabelled`.
    """
    result = Plan()
    for rel, file in sorted(local.items()):
        entry = indexed.get(rel)
        if entry is None:
            result.added.append(file)
        elif not _same(entry, file, sha_of):
            result.changed.append(file)
        elif "readers" in entry and sorted(entry["readers"] or ()) != sorted(file.readers):
            result.relabelled.append((file, str(entry["id"])))
        else:
            result.unchanged.append(rel)
    result.deleted = [dict(entry) for rel, entry in sorted(indexed.items()) if rel not in local]
    return result


def _same(entry: Mapping[str, Any], file: LocalFile, sha_of: Callable[[Path], str]) -> bool:
    if entry.get("size") != file.size:
        return False
    return entry.get("mtime") == file.mtime or entry.get("sha256") == _sha_or_none(sha_of, file.real)


def _sha_or_none(sha_of: Callable[[Path], str], path: Path) -> str | None:
    try:
        return sha_of(path)
    except OSError:  # unreadable now: let the upload report why
        return None
