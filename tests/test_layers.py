"""The import graph between top-level packages flows one way, floor to roof (read with ast, nothing runs).

Each package may import only the packages below it in LAYERS; model code (`encoders`) knows nothing of
HTTP, Celery, Flask, Elasticsearch or datasets. A new top-level package must be given its place here.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Floor to roof.
LAYERS = [
    "core",  # settings, Elasticsearch client factory, error base
    "media",  # bytes -> file type, decoded images and audio
    "encoders",  # models: arrays and text in, vectors out
    "mappings",  # index layout: analysis, mappings, collections
    "ingest",  # raw input -> index documents, the document lifecycle, blob store, crawl
    "workers",  # encode jobs and the Celery tasks that run them
    "search",  # the query path and the Flask app
    "stack",  # the embedded stack's processes (JDK, distributions, nodes, Redis, worker and API); only core
    "client",  # the HTTP client and uploads through it
    "evaluation",  # metrics, tuning and the training recipe, over the HTTP API
    "bench",  # benchmarks
    "mmsearch",  # the CLI: nothing imports it
]
MODEL_CODE_MAY_NOT_IMPORT = {"flask", "celery", "requests", "elasticsearch", "redis", "werkzeug", "ranx"}


def top_level_packages() -> set[str]:
    return {
        d.name
        for d in ROOT.iterdir()
        if d.is_dir() and any(d.glob("*.py")) and d.name not in {"tests", "build", "dist"}
    }


def imported_modules(package: str) -> dict[str, set[str]]:
    """Module name -> files of `package` importing it (absolute imports only; relative ones stay inside)."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_package_has_a_layer() -> None:
    assert top_level_packages() == set(LAYERS)


def test_packages_import_only_layers_below_them() -> None:
    rank = {name: i for i, name in enumerate(LAYERS)}
    upward = []
    for package in LAYERS:
        for module, files in imported_modules(package).items():
            target = module.split(".")[0]
            if target in rank and rank[target] > rank[package]:
                upward.append(f"{package} -> {module} (in {', '.join(sorted(files))})")
    assert not upward, "imports that go up a layer:\n" + "\n".join(upward)


def test_model_code_stays_pure() -> None:
    reaching_out = [
        f"{module} (in {', '.join(sorted(files))})"
        for module, files in imported_modules("encoders").items()
        if module.split(".")[0] in MODEL_CODE_MAY_NOT_IMPORT
    ]
    assert not reaching_out, "encoders/ imports service code:\n" + "\n".join(reaching_out)
