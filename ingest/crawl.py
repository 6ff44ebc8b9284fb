"""Walk a folder for files to ingest, without ever leaving it.

Used by the CLI (`mmsearch ingest DIR`, through `client.upload`): symlinks are skipped or, when followed,
must stay inside the folder, so a link can't pull in files from elsewhere.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from media.filetypes import IngestError

log = logging.getLogger(__name__)


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
    seen: set[tuple[int, int]] = set()
    stack = [base]
    while stack:
        directory = stack.pop()
        if not _first_visit(directory.stat(), seen):
            continue
        files, subdirs = _scan(directory, base, follow_symlinks, seen)
        yield from files
        stack.extend(reversed(subdirs))


def _scan(
    directory: Path, base: Path, follow_symlinks: bool, seen: set[tuple[int, int]]
) -> tuple[list[Path], list[Path]]:
    """One directory's files to yield and subdirectories to walk, both as real paths inside `base`."""
    files: list[Path] = []
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
        elif stat.S_ISREG(st.st_mode) and _first_visit(st, seen):
            files.append(path)
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


def _first_visit(st: os.stat_result, seen: set[tuple[int, int]]) -> bool:
    key = (st.st_dev, st.st_ino)
    if key in seen:
        return False
    seen.add(key)
    return True


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents
