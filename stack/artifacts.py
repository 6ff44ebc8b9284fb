"""Distributions from Maven Central: fetched once into a cache outside the repository with `mvn`, then
unpacked into the data dir once (keeping Unix modes), so later starts reuse them."""

from __future__ import annotations

import os
import shutil
import subprocess
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from stack.errors import StackError

MAVEN_COPY_GOAL = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy"


def cache_dir(kind: str = "es") -> Path:
    """Where fetched zips of one kind live (`MMSEARCH_CACHE_DIR`, else ~/.cache/mmsearch/<kind>)."""
    return Path(os.environ.get("MMSEARCH_CACHE_DIR") or Path.home() / ".cache" / "mmsearch" / kind)


def fetch_zip(template: str, kind: str, name: str, version: str) -> Path:
    """A Maven Central zip (`template` formatted with `version`) from the cache, fetched with `mvn` when
    missing; Maven names the file `<artifactId>-<version>.zip`."""
    cache = cache_dir(kind)
    artifact = template.format(version=version)
    target = cache / f"{name}-{artifact.split(':')[2]}.zip"
    if target.exists():
        return target
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError(f"Maven (`mvn`) is needed to fetch {artifact}: apt-get install maven")
    cache.mkdir(parents=True, exist_ok=True)
    argv = [mvn, "-B", "-q", MAVEN_COPY_GOAL, f"-Dartifact={artifact}", f"-DoutputDirectory={cache}"]
    run_tool(argv, f"fetching {artifact}")
    if not target.exists():
        raise StackError(f"fetching {artifact} left no {target}")
    return target


def run_tool(argv: Sequence[str], what: str, env: Mapping[str, str] | None = None) -> None:
    """Run an installer command to completion; on failure raise with the tail of what it printed."""
    done = subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=None if env is None else dict(env),
    )
    if done.returncode != 0:
        raise StackError(f"{what} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")


def install(
    data_dir: Path, name: str, version: str, *, archive: Path, prepare: Callable[[Path], None] | None = None
) -> Path:
    """Unpack `<name>-<version>` from `archive` into `data_dir` once (then `prepare(home)`, e.g. install
    plugins); a half-done install never counts as done."""
    home = data_dir / f"{name}-{version}"
    if (home / "bin" / name).exists():
        return home
    partial = data_dir / f".{name}-{version}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    unzip(archive, partial)
    if prepare is not None:
        prepare(partial / home.name)
    (partial / home.name).rename(home)
    shutil.rmtree(partial)
    return home


def unzip(archive: Path, dest: Path) -> None:
    """Extract keeping the Unix modes (zipfile drops them, and bin/ must stay executable)."""
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            path = Path(zf.extract(info, dest))
            mode = (info.external_attr >> 16) & 0o7777
            if mode:
                path.chmod(mode)
