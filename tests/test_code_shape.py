"""Function shape, read with ast over every top-level package (the set tests/test_layers.py scans).

(a) no function over 60 lines; (b) no function mutates a container it received: a mutating method called
on a parameter (`param.append(...)`) or an item of a parameter assigned or deleted (`param[k] = v`),
which hides results in the caller's data instead of returning them; (c) keyword-only arguments (`*,`)
for functions of more than four parameters besides self/cls, so a call site says what each value is.
A heuristic: a parameter rebound to a fresh copy (`meta = dict(meta)`) and then changed counts too, so
give the copy its own name.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from tests.test_layers import ROOT, top_level_packages

MAX_LINES = 60
MAX_POSITIONAL = 4
MUTATORS = {
    "append", "extend", "insert", "update", "add", "pop", "popitem", "remove", "discard", "clear",
    "setdefault", "sort", "reverse",
}  # fmt: skip

# Mutation that an API outside the project requires: "path:qualified name" -> why.
MAY_MUTATE = {
    # Celery's `before_task_publish` signal hands the handler the outgoing message's headers to fill
    # in; the return value is ignored, so setting the header on them is the only way to add it.
    "workers/observability.py:_add_request_id": "Celery before_task_publish fills the headers it gets",
}

# Signatures a framework calls positionally, which keyword-only arguments would break.
FRAMEWORK_SIGNATURES = {
    # Celery calls Task.on_failure(exc, task_id, args, kwargs, einfo) with positional arguments.
    "workers/tasks.py:EncodeTask.on_failure": "Celery Task.on_failure",
    "workers/reencode.py:JobTask.on_failure": "Celery Task.on_failure",
}


@dataclass(frozen=True)
class Function:
    key: str  # "path:Qualified.name"
    node: ast.FunctionDef | ast.AsyncFunctionDef

    def __str__(self) -> str:
        return f"{self.key} (line {self.node.lineno})"


def functions() -> Iterator[Function]:
    """Every def (methods and nested ones too) of every top-level package, with its qualified name."""
    for package in sorted(top_level_packages()):
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            yield from _defs(ast.parse(path.read_text(), str(path)), rel, "")


def _defs(parent: ast.AST, rel: str, prefix: str) -> Iterator[Function]:
    for node in ast.iter_child_nodes(parent):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield Function(f"{rel}:{prefix}{node.name}", node)
            yield from _defs(node, rel, f"{prefix}{node.name}.")
        elif isinstance(node, ast.ClassDef):
            yield from _defs(node, rel, f"{prefix}{node.name}.")
        else:
            yield from _defs(node, rel, prefix)


def too_long(fn: Function) -> list[str]:
    lines = fn.node.end_lineno - fn.node.lineno + 1  # type: ignore[operator]
    return [f"{fn} is {lines} lines"] if lines > MAX_LINES else []


def mutations(fn: Function) -> list[str]:
    """Where the function (or a function nested in it) changes a container one of its parameters names."""
    if fn.key in MAY_MUTATE:
        return []
    args = fn.node.args
    params = {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]} - {"self", "cls"}

    def param_of(node: ast.AST) -> str | None:
        return node.id if isinstance(node, ast.Name) and node.id in params else None

    found = []
    for node in ast.walk(fn.node):
        call = node.func if isinstance(node, ast.Call) else None
        if isinstance(call, ast.Attribute) and call.attr in MUTATORS and param_of(call.value):
            found.append(f"{fn}: {param_of(call.value)}.{call.attr}() at line {node.lineno}")
        targets: list[ast.expr] = []
        if isinstance(node, (ast.Assign, ast.Delete)):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        for target in targets:
            if isinstance(target, ast.Subscript) and param_of(target.value):
                found.append(f"{fn}: {param_of(target.value)}[...] changed at line {node.lineno}")
    return found


def positional_overflow(fn: Function) -> list[str]:
    args = fn.node.args
    positional = [a.arg for a in [*args.posonlyargs, *args.args] if a.arg not in ("self", "cls")]
    if len(positional) <= MAX_POSITIONAL or fn.key in FRAMEWORK_SIGNATURES:
        return []
    return [f"{fn} takes {len(positional)} positional parameters"]


def offenders(check: Callable[[Function], list[str]]) -> list[str]:
    """What one check finds over every function."""
    return [found for fn in functions() for found in check(fn)]


def test_the_scan_sees_the_code() -> None:
    """Guards the checks below against passing because they read nothing."""
    keys = {fn.key for fn in functions()}
    assert "ingest/passages.py:split" in keys and "ingest/passages.py:split.flush" in keys
    assert set(FRAMEWORK_SIGNATURES) <= keys and set(MAY_MUTATE) <= keys


def test_no_function_over_60_lines() -> None:
    found = offenders(too_long)
    assert not found, "functions over 60 lines:\n" + "\n".join(found)


def test_no_function_mutates_a_container_it_received() -> None:
    found = offenders(mutations)
    assert not found, "functions changing a container passed to them:\n" + "\n".join(found)


def test_functions_of_more_than_four_parameters_take_keywords() -> None:
    found = offenders(positional_overflow)
    assert not found, "more than four positional parameters:\n" + "\n".join(found)
