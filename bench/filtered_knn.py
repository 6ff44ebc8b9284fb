"""Filtered kNN under permissions: recall@10 and latency of the product's kNN sub-query when a principal may
read 1%, 10% or 50% of the documents, next to the unfiltered figures.

Each document's `readers` hold the groups of the principals allowed to read it (nested: a document of the
1% principal is also one of the 10% and 50% principals'), so the principal's `read_filter` (core.access)
matches exactly that share. The filter goes inside the kNN (Elasticsearch `knn.filter`, OpenSearch's
efficient filtering `filter` inside the `knn` query), in the body `search.query.knn_body` builds with the
default profile's `num_candidates` and the API's window as `k`, as `search.plan.subqueries` sends it.
Recall is measured against exact cosine search in numpy over the allowed documents' vectors.

Vectors are the real text encoder's (all-MiniLM-L6-v2 by default) over SciFact abstracts (`--base` of them,
encoded here once and cached under <data_dir>/bench), repeated with noise to `--docs` as bench/scale.py
does (cosine 0.95 to the original), so the index holds real-model geometry at any size.

  python -m bench.filtered_knn --docs 100000 [--base 2000] [--queries 200] [--candidates 100,200]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from bench.common import ROOT, Report, latency_row, query_texts, results_dir, save, show
from bench.knn_recall import index_options
from bench.scale import NOISE_COS, vectors
from core.access import READERS_FIELD, Principal, read_filter
from core.config import get_settings
from core.es import Client, engine_of, make_client, streaming_bulk
from core.opensearch import OpenSearchClient
from encoders import get_encoder
from ingest.beir import find, iter_corpus
from mappings import catalog
from mappings.render import index_body
from search.query import knn_body
from search.schema import Profile

FIELD = "text"
K = 10
SEED = 17
SHARES = (0.01, 0.10, 0.50)  # of the documents a principal may read
DEFAULT_DATASET = ROOT.parent / "shared" / "data" / "scifact"


def group_of(share: float) -> str:
    return f"share-{share * 100:g}pct"


def principal_for(share: float | None) -> Principal | None:
    """The principal allowed `share` of the documents; None for the unfiltered row (an admin's search)."""
    return None if share is None else Principal(name=f"bench-{share:g}", groups=frozenset({group_of(share)}))


def draws(size: int) -> np.ndarray:
    """One uniform draw per document: it may be read by the principals of every share above its draw."""
    return np.random.default_rng(SEED).random(size)


def readers_of(draw: float) -> list[str]:
    return [f"group:{group_of(share)}" for share in SHARES if draw < share] or ["group:nobody"]


def base_vectors(model: str | None, n: int, dataset: Path) -> tuple[np.ndarray, str]:
    """Unit text vectors of the first `n` SciFact abstracts (title and text), cached as .npy by model."""
    encoder = get_encoder(FIELD, model)
    path = results_dir() / f"filtered-knn-base-{encoder.model_ref.replace('/', '_')}-{n}.npy"
    if not path.exists():
        docs = list(islice(iter_corpus(find(dataset, "corpus")), n))
        matrix = encoder.encode([f"{d['title'] or ''}\n{d['text']}" for d in docs])
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, np.asarray(matrix, dtype=np.float32))
    base = np.load(path)
    return base / np.linalg.norm(base, axis=1, keepdims=True), encoder.model_ref


def create(es: Client, name: str, model: str | None) -> tuple[str, str]:
    """The product's index body (vector field, engine dialect), with the `readers` keyword field."""
    settings = get_settings()
    body = index_body(name, [get_encoder(FIELD, model)], settings, engine_of(es), passages=False)
    body["mappings"]["properties"].setdefault(READERS_FIELD, {"type": "keyword"})
    body["settings"]["index"]["refresh_interval"] = "-1"  # bulk load; refreshed once at the end
    index, alias = catalog.physical_index(settings, name, 1), catalog.alias_for(settings, name)
    if es.indices.exists_alias(name=alias):
        catalog.delete(es, settings, name)
    es.indices.create(index=index, **body, aliases={alias: {}})
    return index, alias


def actions(index: str, name: str, base: np.ndarray, size: int) -> Iterator[dict[str, Any]]:
    shares = draws(size)
    i = 0
    for chunk in vectors(base, size):
        for row in chunk:
            source = {
                "doc_id": f"d{i}",
                "collection": name,
                "modality": "text",
                READERS_FIELD: readers_of(float(shares[i])),
                "vectors": {FIELD: row.tolist()},
            }
            yield {"_index": index, "_id": f"d{i}", "_source": source}
            i += 1


def build(
    es: Client, base: np.ndarray, *, size: int, model: str | None, keep: bool
) -> tuple[str, str, float | None]:
    """The index of `size` documents: (index, alias, seconds to build; None when an index holding them
    all was kept, with `keep`). Built with refresh off, then refreshed and merged to one segment."""
    name = f"bench-filtered-knn-{size}"
    alias = catalog.alias_for(get_settings(), name)
    if keep and es.indices.exists_alias(name=alias) and es.count(index=alias)["count"] == size:
        index = next(iter(es.indices.get_alias(name=alias)))
        force_merge(es, index)
        return index, alias, None
    started = time.perf_counter()
    index, alias = create(es, name, model)
    for ok, item in streaming_bulk(
        es, actions(index, name, base, size), chunk_size=500, request_timeout=600, max_retries=5
    ):
        if not ok:
            raise RuntimeError(f"bulk failed: {item}")
    es.indices.put_settings(index=index, settings={"index": {"refresh_interval": None}})
    es.indices.refresh(index=index, request_timeout=3600)
    force_merge(es, index)
    return index, alias, time.perf_counter() - started


def force_merge(es: Client, index: str) -> None:
    """One segment, so every run searches the same graph (the OpenSearch wrapper would send the
    parameter as a body, which the force-merge API does not take)."""
    if isinstance(es, OpenSearchClient):
        es.raw.indices.forcemerge(index=index, max_num_segments=1, request_timeout=3600)
    else:
        es.options(request_timeout=3600).indices.forcemerge(index=index, max_num_segments=1)


def exact_top(docs: np.ndarray, allowed: np.ndarray, queries: np.ndarray) -> list[set[str]]:
    """Ids of the exact top K by cosine among the allowed rows (brute force over their vectors)."""
    rows = np.flatnonzero(allowed)
    scores = queries @ docs[rows].T
    top = np.argpartition(-scores, K - 1, axis=1)[:, :K] if len(rows) > K else np.argsort(-scores, axis=1)
    return [{f"d{rows[j]}" for j in line} for line in top]


def knn_ids(es: Client, alias: str, body: dict[str, Any]) -> tuple[list[str], float]:
    started = time.perf_counter()
    hits = es.search(index=alias, **body)["hits"]["hits"]
    return [hit["_id"] for hit in hits[:K]], time.perf_counter() - started


def measure(
    es: Client,
    alias: str,
    docs: np.ndarray,
    queries: np.ndarray,
    *,
    share: float | None,
    num_candidates: int,
    window: int,
) -> dict[str, Any]:
    """One row: recall@10 and latency of the filtered kNN body for the principal of `share`."""
    principal = principal_for(share)
    clause = read_filter(principal) if principal else None
    allowed = draws(len(docs)) < share if share is not None else np.ones(len(docs), dtype=bool)
    if clause:  # the filter the engine runs selects exactly the documents the exact search ranks
        matched = es.count(index=alias, query=clause)["count"]
        if matched != int(allowed.sum()):
            raise RuntimeError(f"read filter matches {matched} documents, {int(allowed.sum())} expected")
    exact = exact_top(docs, allowed, queries)
    engine = engine_of(es)
    bodies = [
        knn_body(
            engine,
            f"vectors.{FIELD}",
            [float(x) for x in q],
            [clause] if clause else [],
            window=window,
            num_candidates=num_candidates,
        )
        for q in queries
    ]
    knn_ids(es, alias, bodies[0])  # warm-up, not counted
    found, latencies = [], []
    for body in bodies:
        ids, seconds = knn_ids(es, alias, body)
        found.append(set(ids))
        latencies.append(seconds)
    recall = np.mean([len(f & e) / K for f, e in zip(found, exact, strict=True)])
    stats = latency_row(latencies, sum(latencies))
    return {
        "allowed": "all (no filter)" if share is None else f"{share:.0%}",
        "allowed docs": int(allowed.sum()),
        "num_candidates": num_candidates,
        "k": window,
        "recall@10": round(float(recall), 4),
        "p50 ms": stats["p50 ms"],
        "p95 ms": stats["p95 ms"],
    }


def run(args: argparse.Namespace) -> Report:
    settings = get_settings()
    es = make_client(settings)
    base, model = base_vectors(args.model, args.base, args.dataset)
    docs = np.concatenate(list(vectors(base, args.docs)))
    index, alias, built_s = build(es, base, size=args.docs, model=args.model, keep=args.keep)
    texts = query_texts(args.dataset, args.queries)
    queries = np.asarray(get_encoder(FIELD, args.model).encode(texts, kind="text"), dtype=np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    profile = Profile()
    window = min(profile.rank_window, settings.limits.max_window)  # SearchService.window for page 1
    candidates = [int(c) for c in args.candidates.split(",")] if args.candidates else [profile.num_candidates]
    rows = [
        measure(es, alias, docs, queries, share=share, num_candidates=nc, window=window)
        for nc in candidates
        for share in (None, *SHARES)
    ]
    engine = engine_of(es)
    knn = "knn.filter" if not engine.is_opensearch else "the knn query's efficient `filter`"
    return Report(
        f"filtered-knn-{engine.name}",
        f"filtered kNN under permissions on {engine.name}: {args.docs} documents, {len(texts)} queries",
        rows,
        [
            f"vectors: {model} over {len(base)} SciFact abstracts (real model output), repeated to "
            f"{args.docs} with noise (cosine {NOISE_COS} to the original) as bench/scale.py does;",
            f"filter: core.access.read_filter of a principal whose group is on 1/10/50% of the documents "
            f"(readers terms), inside the kNN ({knn}), body from search.query.knn_body "
            f"(k = the API's window {window}, rescore on, the default profile's num_candidates "
            f"{profile.num_candidates} unless the row says otherwise);",
            f"vector index: {index_options(es, index, FIELD)} (the product's mapping for this engine);",
            "recall@10 = the top 10 of that kNN against exact cosine (numpy) over the allowed vectors;",
            "latency = one client, the engine's round trip from Python (no API), after one warm-up;",
            (f"index built in {built_s:.0f} s" if built_s is not None else "index kept from an earlier run")
            + " (bulk, refresh off, force-merged to one segment).",
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--base", type=int, default=2000, help="SciFact abstracts encoded for real")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--candidates", default="", help="num_candidates values; default: the profile's")
    parser.add_argument("--model", default=None, help="text model; default: MMSEARCH_TEXT_MODEL")
    parser.add_argument("--keep", action="store_true", help="reuse an index already holding --docs")
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET, help="BEIR SciFact directory")
    args = parser.parse_args()
    report = run(args)
    show(report, Console(width=None if sys.stdout.isatty() else 200))
    print(f"wrote {save(report)}")


if __name__ == "__main__":
    main()
