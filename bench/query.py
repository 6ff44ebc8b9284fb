"""Query latency and throughput: the API (query-vector cache warm, and off) vs the same Elasticsearch
requests sent directly with precomputed vectors, for lexical, vector and hybrid, 1 and 4 clients."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from bench.common import Report, latency_row, query_texts, spawned_api, timed_calls
from core.config import get_settings
from core.es import make_client
from encoders import get_encoder
from mappings.collections import Collection, get
from search import fusion
from search.query import knn_body, lexical_body, lexical_query
from search.schema import Profile

MODES = ("lexical", "vector", "hybrid")
THREADS = (1, 4)


def direct_bodies(collection: Collection, text: str, vectors: dict[str, list[float]], mode: str) -> dict:
    """The sub-query bodies the API builds for this text with the default profile."""
    profile = Profile()
    bodies: dict[str, dict[str, Any]] = {}
    lexical = lexical_query(text, profile.boosts)
    if mode in ("lexical", "hybrid") and lexical:
        bodies["lexical"] = lexical_body(lexical, [], profile.rank_window, None)
    if mode in ("vector", "hybrid"):
        for name, vector in vectors.items():
            bodies[f"vector:{name}"] = knn_body(
                f"vectors.{name}", vector, [], profile.rank_window, profile.num_candidates, None
            )
    return bodies


def direct_search(es: Any, alias: str, bodies: dict[str, dict]) -> list[fusion.FusedHit]:
    """One `_msearch` round trip and RRF, as the service does (minus HTTP, validation and encoding)."""
    searches = [part for body in bodies.values() for part in ({"index": alias}, body)]
    responses = es.msearch(searches=searches)["responses"]
    rankings = {
        name: [(h["_id"], h["_score"]) for h in resp["hits"]["hits"]]
        for name, resp in zip(bodies, responses, strict=True)
    }
    if len(rankings) == 1:
        return fusion.passthrough(*next(iter(rankings.items())))
    return fusion.rrf(rankings)


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
    for mode in MODES:
        items = [direct_bodies(collection, t, v, mode) for t, v in zip(texts, vectors, strict=True)]
        rows += measure("Elasticsearch direct", mode, partial(direct_search, es, collection.alias), items)
    return Report(
        "query",
        f"query latency on {collection_name!r}: {len(texts)} SciFact queries, size 10, rank window 100",
        rows,
        [
            "API = HTTP + validation + query encoding (cached or not) + _msearch + fusion + JSON, in a "
            "temporary API process (gunicorn, 1 worker, 4 threads) per row group;",
            "direct = the same _msearch bodies (search.query builders, precomputed vectors) + our RRF;",
            "no query cache = MMSEARCH_QUERY_CACHE_SIZE=0 (lexical never encodes, so it is not repeated);",
            "Elasticsearch, the benchmark client and the API share this machine's CPUs.",
        ],
    )
