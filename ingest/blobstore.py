"""Content-addressed store for the original bytes of every ingested file.

A blob's name is the SHA-256 of its bytes, so the same file uploaded twice is stored once and the
index can point at it by `source.sha256`. Writes go to a temp file and are renamed into place, so a
reader never sees half a blob and a crash leaves at most a stray temp file.

Blobs are deleted with the last document that references them (`ingest.blobrefs`). So that a release
racing an upload of the same bytes never loses them, `put` touches an existing blob (its mtime says "in
use since") and `delete_unless_touched` removes a blob only when no put touched it after the check began.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import tempfile
import time
from pathlib import Path
from typing import BinaryIO, NamedTuple

from core.config import LimitSettings, Settings
from media.decode import DEFAULT_MAX_PIXELS, load_image
from media.filetypes import IngestError

CHUNK = 1 << 20
# its cache file has no size suffix
DEFAULT_THUMB_SIDE: int = LimitSettings.model_fields["thumbnail_side"].default
MAX_THUMB_SIDE = 2048
_SHA256 = re.compile(r"[0-9a-f]{64}")


class InvalidSha(IngestError):
    """A blob id that is not 64 lower-case hex digits (and so could never name a blob)."""


class PutResult(NamedTuple):
    sha256: str
    size: int
    created: bool  # False when the same bytes were already stored


class BlobStore:
    """Blobs live at `<root>/ab/cd/<sha256>`, thumbnails beside them as `<sha256>.thumb.jpg`."""

    def __init__(self, root: Path | str, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.root = Path(root)
        self.max_pixels = max_pixels

    @classmethod
    def from_settings(cls, settings: Settings) -> BlobStore:
        """The store under `<data_dir>/blobs`, with the same image limit the extractors use."""
        return cls(settings.engine.data_dir / "blobs", settings.limits.max_image_pixels)

    def path(self, sha: str) -> Path:
        """Where the blob `sha` lives (whether or not it exists); raises `InvalidSha`."""
        if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
            raise InvalidSha(f"invalid blob id {sha!r}: expected 64 lower-case hex characters")
        return self.root / sha[:2] / sha[2:4] / sha

    def exists(self, sha: str) -> bool:
        return self.path(sha).is_file()

    def open(self, sha: str) -> BinaryIO:
        """Open the blob for reading; raises `FileNotFoundError` when it isn't stored."""
        return self.path(sha).open("rb")

    def put(self, data: bytes | BinaryIO) -> PutResult:
        """Store bytes or a stream (read in chunks, never whole), hashing while writing."""
        stream = io.BytesIO(data) if isinstance(data, bytes | bytearray | memoryview) else data
        tmp_dir = self.root / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=tmp_dir, prefix="put-")
        try:
            with os.fdopen(fd, "wb") as out:
                sha, size = _copy_hashing(stream, out)
                out.flush()
                os.fsync(out.fileno())
            created = self._commit(Path(tmp_name), sha)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
        return PutResult(sha, size, created)

    def delete(self, sha: str) -> bool:
        """Remove the blob and its thumbnails; False when there was nothing to remove."""
        target = self.path(sha)
        for thumb in target.parent.glob(f"{sha}.thumb*.jpg"):
            thumb.unlink(missing_ok=True)
        try:
            target.unlink()
        except FileNotFoundError:
            return False
        return True

    def clock(self) -> int:
        """The store's own "now" (ns), on the clock that stamps blob mtimes, for `delete_unless_touched`."""
        tmp_dir = self.root / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=tmp_dir, prefix="clock-")
        try:
            return os.fstat(fd).st_mtime_ns
        finally:
            os.close(fd)
            os.unlink(name)

    def delete_unless_touched(self, sha: str, since_ns: int) -> bool:
        """Remove the blob unless a `put` touched it at or after `since_ns`; True when it went.

        The blob is first renamed aside (atomic), so a concurrent `put` either touched it before (and it is
        put back) or finds it gone and stores the bytes again.
        """
        target = self.path(sha)
        aside = self.root / "tmp" / f"release-{sha}-{os.getpid()}-{time.monotonic_ns()}"
        aside.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(target, aside)
        except FileNotFoundError:
            return False
        if aside.stat().st_mtime_ns >= since_ns:
            os.replace(aside, target)  # identical bytes if a put stored them again meanwhile
            return False
        aside.unlink()
        for thumb in target.parent.glob(f"{sha}.thumb*.jpg"):
            thumb.unlink(missing_ok=True)
        return True

    def thumbnail(self, sha: str, max_side: int = DEFAULT_THUMB_SIDE) -> bytes:
        """A JPEG no larger than `max_side` on either side, made once and then served from disk.

        Raises `FileNotFoundError` for a missing blob and `MediaError` when the blob isn't an image.
        """
        if not 16 <= max_side <= MAX_THUMB_SIDE:
            raise IngestError(f"thumbnail size must be between 16 and {MAX_THUMB_SIDE} pixels")
        cached = self._thumb_path(sha, max_side)
        if cached.is_file():
            return cached.read_bytes()
        with self.open(sha) as f:
            img = load_image(f.read(), max_pixels=self.max_pixels)
        img.thumbnail((max_side, max_side))
        out = io.BytesIO()
        img.save(out, format="JPEG", quality=85, optimize=True)
        _write_atomic(cached, out.getvalue())
        return out.getvalue()

    def _thumb_path(self, sha: str, max_side: int) -> Path:
        blob = self.path(sha)
        suffix = "thumb" if max_side == DEFAULT_THUMB_SIDE else f"thumb{max_side}"
        return blob.with_name(f"{sha}.{suffix}.jpg")

    def _commit(self, tmp: Path, sha: str) -> bool:
        """Rename the finished temp file into place unless identical bytes are already there."""
        target = self.path(sha)
        if target.is_file():
            try:
                os.utime(target)  # in use again: a release that checked before now keeps it
                return False
            except FileNotFoundError:  # released meanwhile: store the bytes again
                pass
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, target)
        _fsync_dir(target.parent)
        return True


def _copy_hashing(src: BinaryIO, out: BinaryIO) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    while chunk := src.read(CHUNK):
        digest.update(chunk)
        out.write(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def _write_atomic(target: Path, data: bytes) -> None:
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable, not only the file's contents."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
