"""Query latency and throughput: the API (query-vector cache warm, and off) vs the same Elasticsearch
requests sent directly with precomputed vectors, for lexical, vector and hybrid, 1 and 4 clients."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from bench.common import Report, latency_row, query_texts, spawned_api, timed_calls
from core.access import ADMIN
from core.config import get_settings
from core.es import engine_of, make_client
from encoders import get_encoder
from mappings.catalog import Collection, get
from search import fusion, plan
from search.schema import Fusion, SearchRequest
from search.service import SearchService

MODES = ("lexical", "vector", "hybrid")
THREADS = (1, 4)
DIRECT = "Elasticsearch direct"
API_WARM, API_COLD = "API, query cache warm", "API, no query cache"
DIRECT_PAGE = "Elasticsearch direct + page"


@dataclass(frozen=True)
class Direct:
    """One search as the API would send it: the fusion it applies and its named sub-query bodies (and the
    request and query vectors, for the page's requests)."""

    fusion: Fusion
    bodies: dict[str, dict[str, Any]]
    req: SearchRequest | None = None
    vectors: dict[str, Any] = field(default_factory=dict)


def direct_plan(
    service: SearchService, collection: Collection, text: str, vectors: dict[str, list[float]], *, mode: str
) -> Direct:
    """The API's own plan for this text (the collection's `default` profile), with precomputed vectors."""
    req = SearchRequest(query=text, mode=mode)
    profile, bodies = service.plan(collection, req, vectors, principal=ADMIN)
    return Direct(profile.fusion, bodies, req, vectors)


def msearch(es: Any, alias: str, bodies: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Named bodies in one `_msearch` round trip: their responses by name."""
    searches = [part for body in bodies.values() for part in ({"index": alias}, body)]
    return dict(zip(bodies, es.msearch(searches=searches)["responses"], strict=True))


def direct_search(es: Any, alias: str, direct: Direct) -> list[fusion.FusedHit]:
    """One `_msearch` round trip and the API's fusion (minus HTTP, validation and encoding)."""
    return fusion.fuse(plan.rankings(msearch(es, alias, direct.bodies)), direct.fusion)


def direct_with_page(es: Any, alias: str, direct: Direct) -> dict[str, dict[str, Any]]:
    """Every request the API sends for a search (without a relevance cut-off, which only shortens the
    list): the sub-queries, fusion, then the page's sources and best passages in a second `_msearch`."""
    if direct.req is None:
        raise ValueError("direct_with_page needs the plan's request (direct_plan keeps it)")
    responses = msearch(es, alias, direct.bodies)
    req, engine = direct.req, engine_of(es)
    ids = [h.doc_id for h in fusion.fuse(plan.rankings(responses), direct.fusion)[: req.size]]
    page = {
        "page": plan.page_fetch(req, ids, engine),
        **plan.page_passages(req, direct.vectors, responses, ids, engine=engine),
    }
    return msearch(es, alias, page)


def query_vectors(collection: Collection, texts: list[str]) -> list[dict[str, list[float]]]:
    """Every text encoded once up front by each encoder a text query reaches."""
    per_encoder = {
        name: get_encoder(name, desc.get("model")).encode(texts, kind="text")
        for name, desc in collection.encoders.items()
        if "text" in desc.get("query_kinds", [])
    }
    return [{name: [float(x) for x in m[i]] for name, m in per_encoder.items()} for i in range(len(texts))]


Target = tuple[Callable[[Any], object], list[Any]]  # a call and the items it takes, one per query


def interleaved(targets: dict[str, Target], threads: int, chunk: int = 20) -> dict[str, dict[str, float]]:
    """Latency of each target over its items with `threads` clients, taking turns `chunk` queries at a
    time (the order rotating), so a neighbour's load on this shared machine falls on all of them alike."""
    latencies: dict[str, list[float]] = {label: [] for label in targets}
    walls = dict.fromkeys(targets, 0.0)
    count = min(len(items) for _, items in targets.values())
    labels = list(targets)
    for turn, start in enumerate(range(0, count, chunk)):
        for label in labels[turn % len(labels) :] + labels[: turn % len(labels)]:
            call, items = targets[label]
            took, wall = timed_calls(call, items[start : start + chunk], threads)
            latencies[label] += took
            walls[label] += wall
    return {label: latency_row(latencies[label], walls[label]) for label in targets}


def with_ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with the ratios the goals name: p50 over the direct p50 of the same mode and clients (API
    hybrid with the cache warm: goal <= 1.1), and p50 over the same target's lexical p50 (vector: goal
    <= 1.5)."""
    p50 = {(r["target"], r["mode"], r["clients"]): r["p50 ms"] for r in rows}

    def ratio(key: tuple[str, str, int], base: tuple[str, str, int]) -> float | str:
        return round(p50[key] / p50[base], 2) if base in p50 and p50[base] else "-"

    return [
        {
            **row,
            "x direct (p50)": ratio(key, (DIRECT, row["mode"], row["clients"])),
            "x direct+page (p50)": ratio(key, (DIRECT_PAGE, row["mode"], row["clients"])),
            "x lexical (p50)": ratio(key, (row["target"], "lexical", row["clients"])),
        }
        for row in rows
        for key in [(row["target"], row["mode"], row["clients"])]
    ]


def run(collection_name: str, dataset: Path, n: int = 200) -> Report:
    settings = get_settings()
    es = make_client(settings)
    collection = get(es, settings, collection_name)
    texts = query_texts(dataset, n)
    vectors = query_vectors(collection, texts)
    service = SearchService(es, settings)
    search = partial(direct_search, es, collection.alias)
    with_page = partial(direct_with_page, es, collection.alias)
    rows: list[dict[str, Any]] = []
    with spawned_api({}) as warm, spawned_api({"MMSEARCH_QUERY_CACHE_SIZE": "0"}) as cold:
        for mode in MODES:
            items = [
                direct_plan(service, collection, t, v, mode=mode) for t, v in zip(texts, vectors, strict=True)
            ]
            targets: dict[str, Target] = {API_WARM: (partial(warm.search, collection_name, mode=mode), texts)}
            if mode != "lexical":  # lexical never encodes: the cache does not matter
                targets[API_COLD] = (partial(cold.search, collection_name, mode=mode), texts)
            targets |= {DIRECT: (search, items), DIRECT_PAGE: (with_page, items)}
            for label in (API_WARM, API_COLD):
                if label in targets:  # loads the model; fills the cache where there is one
                    timed_calls(targets[label][0], texts, 4)
            for threads in THREADS:
                measured = interleaved(targets, threads)
                rows += [
                    {"target": t, "mode": mode, "clients": threads, **row} for t, row in measured.items()
                ]
    return Report(
        "query",
        f"query latency on {collection_name!r}: {len(texts)} SciFact queries, size 10, rank window 100",
        with_ratios(rows),
        [
            "API = HTTP + validation + query encoding (cached or not) + _msearch + fusion + JSON, in a "
            "temporary API process (gunicorn, 1 worker, 4 threads) for each of the two;",
            "direct = the API's own plan (search.plan, the collection's default profile, precomputed "
            "vectors) in one _msearch + the API's fusion (search.fusion.fuse); direct + page = that, then "
            "the page's sources, highlights and best passages in a second _msearch, as the API sends them;",
            "no query cache = MMSEARCH_QUERY_CACHE_SIZE=0 (lexical never encodes, so it is not repeated);",
            "targets take turns 20 queries at a time (bench.query.interleaved); Elasticsearch, the "
            "benchmark client and the API processes share this machine's CPUs with whatever else runs.",
        ],
    )
