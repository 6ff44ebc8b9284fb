"""The API's own requests sent straight to each engine (no API process), to see where an engine's time goes.

For every query and mode the product's plan (`SearchService.plan`, precomputed query vectors) is built once
per engine in that engine's dialect; then the same `_msearch` and the same page fetch (the top `size` fused
ids, sources without vectors) go to each engine in turn. Per sub-query this reports the engine's own
`took` beside the client's wall time, so the difference between engines splits into the engine's search
work and everything around it (HTTP, JSON, the client library). Engines alternate round by round, so load
from other processes falls on both alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.query import Direct, direct_plan, query_vectors
from core.config import Settings
from core.es import Client, engine_of
from mappings.catalog import get
from search import fusion, plan
from search.schema import SearchRequest
from search.service import SearchService


@dataclass
class Timing:
    """One search's times in ms: the client's wall time per step and the engine's `took` per sub-query."""

    wall: dict[str, float] = field(default_factory=dict)
    took: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Target:
    """One engine: its client, its alias for the collection and its plan of every query per mode."""

    label: str
    es: Client
    alias: str
    plans: dict[str, list[Direct]]


def target(
    label: str,
    es: Client,
    settings: Settings,
    name: str,
    *,
    texts: list[str],
    modes: list[str],
    vectors: list[dict[str, list[float]]],
) -> Target:
    """The product's plan of every text per mode, in the dialect of the engine behind `es`."""
    service = SearchService(es, settings)
    collection = get(es, settings, name)
    plans = {
        mode: [direct_plan(service, collection, t, v, mode=mode) for t, v in zip(texts, vectors, strict=True)]
        for mode in modes
    }
    return Target(label, es, collection.alias, plans)


def encoded_queries(
    es: Client, settings: Settings, name: str, texts: list[str]
) -> list[dict[str, list[float]]]:
    """Each text through the collection's text towers, once, so both engines get the very same vectors."""
    return query_vectors(get(es, settings, name), texts)


def one_search(tgt: Target, direct: Direct, size: int) -> Timing:
    """The API's two round trips for one search: the `_msearch` of its sub-queries, then the page fetch."""
    timing = Timing()
    searches = [part for body in direct.bodies.values() for part in ({"index": tgt.alias}, body)]
    started = time.perf_counter()
    resp = tgt.es.msearch(searches=searches)
    timing.wall["msearch"] = (time.perf_counter() - started) * 1000
    responses = dict(zip(direct.bodies, resp["responses"], strict=True))
    timing.took = {name: float(item.get("took", 0)) for name, item in responses.items()}
    fused = fusion.fuse(plan.rankings(responses), direct.fusion)
    ids = [hit.doc_id for hit in fused[:size]]
    if ids:
        body = plan.page_fetch(SearchRequest(query="", size=size), ids, engine_of(tgt.es))
        started = time.perf_counter()
        page = tgt.es.search(index=tgt.alias, body=body)
        timing.wall["page"] = (time.perf_counter() - started) * 1000
        timing.took["page"] = float(page.get("took", 0))
    timing.wall["total"] = sum(timing.wall.values())
    return timing


def timed(call: Callable[[Direct], Timing], items: list[Direct], threads: int) -> list[Timing]:
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(call, items))


def summary(label: str, mode: str, timings: list[Timing]) -> dict[str, Any]:
    """p50/p95 of the wall times and the median `took` of each sub-query (and the page fetch)."""
    row: dict[str, Any] = {"engine": label, "mode": mode, "queries": len(timings)}
    for step in ("total", "msearch", "page"):
        values = [t.wall[step] for t in timings if step in t.wall]
        if values:
            row[f"{step} p50"] = round(float(np.percentile(values, 50)), 1)
            row[f"{step} p95"] = round(float(np.percentile(values, 95)), 1)
    names = sorted({name for t in timings for name in t.took})
    for name in names:
        values = [t.took[name] for t in timings if name in t.took]
        row[f"took {name} p50"] = round(float(np.percentile(values, 50)), 1)
    return row


def profile(targets: list[Target], *, size: int, threads: int, rounds: int) -> list[dict[str, Any]]:
    """Every mode on every engine, `rounds` times with the engines alternating; one row per engine and
    mode over all rounds (the first round of each warms caches and is left out when there are more)."""
    collected: dict[tuple[str, str], list[Timing]] = {}
    modes = list(targets[0].plans)
    for round_no in range(rounds):
        for mode in modes:
            for tgt in targets:
                timings = timed(lambda d, t=tgt: one_search(t, d, size), tgt.plans[mode], threads)
                if round_no > 0 or rounds == 1:
                    collected.setdefault((tgt.label, mode), []).extend(timings)
    labels = [t.label for t in targets]
    return [summary(label, mode, collected[(label, mode)]) for mode in modes for label in labels]


def with_ratios(rows: list[dict[str, Any]], base: str, other: str) -> list[dict[str, Any]]:
    """The rows plus one `ratio` row per mode: `other`'s numbers over `base`'s (every row gets every
    column, "" where a mode has no such sub-query)."""
    out: list[dict[str, Any]] = []
    by_key = {(r["engine"], r["mode"]): r for r in rows}
    for mode in dict.fromkeys(r["mode"] for r in rows):
        a, b = by_key[(base, mode)], by_key[(other, mode)]
        numbers = [k for k in a if k in b and k not in ("engine", "mode", "queries") and a[k]]
        ratio = {k: round(b[k] / a[k], 2) for k in numbers}
        out += [a, b, {"engine": "ratio", "mode": mode, "queries": "", **ratio}]
    columns = list(dict.fromkeys(key for row in out for key in row))  # modes differ in sub-queries
    return [{key: row.get(key, "") for key in columns} for row in out]
