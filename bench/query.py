"""Query latency and throughput: the API (query-vector cache warm, and off) vs the same Elasticsearch
requests sent directly with precomputed vectors, for lexical, vector and hybrid, 1 and 4 clients."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from bench.common import Report, latency_row, query_texts, spawned_api, timed_calls
from core.access import ADMIN
from core.config import get_settings
from core.es import make_client
from encoders import get_encoder
from mappings.catalog import Collection, get
from search import fusion, plan
from search.schema import Fusion, SearchRequest
from search.service import SearchService

MODES = ("lexical", "vector", "hybrid")
THREADS = (1, 4)


@dataclass(frozen=True)
class Direct:
    """One search as the API would send it: the fusion it applies and its named sub-query bodies."""

    fusion: Fusion
    bodies: dict[str, dict[str, Any]]


def direct_plan(
    service: SearchService, collection: Collection, text: str, vectors: dict[str, list[float]], *, mode: str
) -> Direct:
    """The API's own plan for this text (the collection's `default` profile), with precomputed vectors."""
    profile, bodies = service.plan(collection, SearchRequest(query=text, mode=mode), vectors, principal=ADMIN)
    return Direct(profile.fusion, bodies)


def direct_search(es: Any, alias: str, direct: Direct) -> list[fusion.FusedHit]:
    """One `_msearch` round trip and the API's fusion (minus HTTP, validation and encoding)."""
    searches = [part for body in direct.bodies.values() for part in ({"index": alias}, body)]
    responses = dict(zip(direct.bodies, es.msearch(searches=searches)["responses"], strict=True))
    return fusion.fuse(plan.rankings(responses), direct.fusion)


def query_vectors(collection: Collection, texts: list[str]) -> list[dict[str, list[float]]]:
    """Every text encoded once up front by each encoder a text query reaches."""
    per_encoder = {
        name: get_encoder(name, desc.get("model")).encode(texts, kind="text")
        for name, desc in collection.encoders.items()
        if "text" in desc.get("query_kinds", [])
    }
    return [{name: [float(x) for x in m[i]] for name, m in per_encoder.items()} for i in range(len(texts))]


def measure(label: str, mode: str, call: Callable[[Any], object], items: list[Any]) -> list[dict[str, Any]]:
    rows = []
    for threads in THREADS:
        latencies, wall = timed_calls(call, items, threads)
        rows.append({"target": label, "mode": mode, "clients": threads, **latency_row(latencies, wall)})
    return rows


def run(collection_name: str, dataset: Path, n: int = 200) -> Report:
    settings = get_settings()
    es = make_client(settings)
    collection = get(es, settings, collection_name)
    texts = query_texts(dataset, n)
    vectors = query_vectors(collection, texts)
    rows: list[dict[str, Any]] = []
    for label, env, modes in (
        ("API, query cache warm", {}, MODES),
        ("API, no query cache", {"MMSEARCH_QUERY_CACHE_SIZE": "0"}, MODES[1:]),
    ):
        with spawned_api(env) as client:
            for mode in modes:
                search = partial(client.search, collection_name, mode=mode)
                timed_calls(search, texts, 4)  # loads the model; fills the cache where there is one
                rows += measure(label, mode, search, texts)
    service = SearchService(es, settings)
    for mode in MODES:
        items = [
            direct_plan(service, collection, t, v, mode=mode) for t, v in zip(texts, vectors, strict=True)
        ]
        rows += measure("Elasticsearch direct", mode, partial(direct_search, es, collection.alias), items)
    return Report(
        "query",
        f"query latency on {collection_name!r}: {len(texts)} SciFact queries, size 10, rank window 100",
        rows,
        [
            "API = HTTP + validation + query encoding (cached or not) + _msearch + fusion + JSON, in a "
            "temporary API process (gunicorn, 1 worker, 4 threads) per row group;",
            "direct = the API's own plan (search.plan, the collection's default profile, precomputed "
            "vectors) in one _msearch + the API's fusion (search.fusion.fuse);",
            "no query cache = MMSEARCH_QUERY_CACHE_SIZE=0 (lexical never encodes, so it is not repeated);",
            "Elasticsearch, the benchmark client and the API share this machine's CPUs.",
        ],
    )
