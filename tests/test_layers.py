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


# The engine client, extraction, bulk writes, the blob store and the queue belong to the read path
# (`search.service`), the write path (`ingest.service`) and the job runner (`workers.jobs`): a blueprint
# reaching them itself would be a second write path, and a second place permissions must be enforced.
BLUEPRINTS = ROOT / "search" / "api"
BLUEPRINT_MAY_NOT_IMPORT = {
    "elasticsearch",
    "elastic_transport",
    "opensearchpy",
    "core.es",
    "core.opensearch",
    "ingest.extract",
    "ingest.bulk",
    "ingest.blobstore",
    "ingest.blobrefs",
    "mappings.catalog",
    "mappings.metastore",
    "media.decode",
    "workers.tasks",
    "workers.reencode",
}
ENGINE_ATTRIBUTES = {"es", "engine", "indices"}


def blueprint_reach(path: Path, root: Path = ROOT) -> list[str]:
    """What one blueprint module imports or touches that only the services may."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            modules = []
        found += [
            f"imports {m}"
            for m in modules
            if any(m == bad or m.startswith(bad + ".") for bad in BLUEPRINT_MAY_NOT_IMPORT)
        ]
        if isinstance(node, ast.Attribute) and node.attr in ENGINE_ATTRIBUTES:
            found.append(f"touches .{node.attr} (line {node.lineno})")
    return [f"{path.relative_to(root)}: {what}" for what in found]


def test_blueprints_reach_the_engine_only_through_the_services() -> None:
    reach = [line for path in sorted(BLUEPRINTS.glob("*.py")) for line in blueprint_reach(path)]
    assert not reach, "blueprints doing the services' work:\n" + "\n".join(reach)


def test_the_blueprint_check_sees_engine_calls(tmp_path: Path) -> None:
    """The check itself: yesterday's upload route (an engine call, a bulk write) is caught."""
    module = tmp_path / "route.py"
    module.write_text(
        "from ingest.bulk import index_many\n"
        "from mappings import catalog\n"
        "def upload(svc):\n"
        "    return svc.es.exists(index='a', id='b')\n"
    )
    assert blueprint_reach(module, tmp_path) == [
        "route.py: imports ingest.bulk",
        "route.py: imports ingest.bulk.index_many",
        "route.py: imports mappings.catalog",
        "route.py: touches .es (line 4)",
    ]
