"""Elasticsearch vs OpenSearch: the same encoded collection evaluated on both engines, side by side.

An encoded collection (documents with their vectors and nested passages, as stored) is copied from the
source cluster into a collection of the same name on the target cluster, created by the product's own
`catalog.create`, so the mapping is the target engine's dialect. No document is re-encoded: both
engines hold the very same vectors and text. Then `mmsearch eval`'s runs (evaluation/runs.py) go through an
API process on each engine (query vectors computed by the API as usual), and one table shows each metric on
both engines with the difference, and the latencies (p50/p95, the API's own `took_ms`) with their ratio.
`--rounds N` alternates the engines N times (A B A B) after a warm-up round and pools the latencies, so
load from other processes falls on both alike. The `direct` phase (`bench.engines_direct`) sends the API's
own requests straight to both engines and splits each one's time into the engine's `took` per sub-query
and the client's wall time. The source cluster is only read.

  python -m bench.engines --collection scifact-base --dataset DIR --qrels FILE --source-url URL
                          [--target-url URL] [--target-engine opensearch] [--modes lexical,vector,...]
                          [--replace] [--phase copy|eval|direct|all] [--rounds N] [--queries N]

The target is the configured cluster (ELASTICSEARCH_URL, MMSEARCH_ENGINE) unless --target-url says.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rich.console import Console

from bench import engines_direct as direct
from bench.common import Report, save, show, spawned_api
from core.config import Settings, get_settings
from core.es import Client, engine_of, make_client, scan, streaming_bulk
from evaluation import runs
from ingest.beir import find, load_qrels, load_queries
from mappings import catalog

METRICS = {"ndcg@10": "nDCG@10", "mrr@10": "MRR@10", "recall@100": "R@100"}
DEFAULT_MODES = ("lexical", "vector", "hybrid", "hybrid-rrf")
# Latency rows (runs.latency_summary keys): the client's p50/p95 and the API's own mean `took_ms`.
LATENCIES = {"p50": "p50 ms", "p95": "p95 ms", "server_mean": "API took ms (mean)"}
SIZE = 100  # hits per query: R@100 needs them
DIRECT_MODES = ("lexical", "vector", "hybrid")  # the direct phase's (its fusion is the default profile's)


def cluster(settings: Settings, url: str | None, engine: str | None) -> Settings:
    """`settings` pointed at another cluster (`engine` None: asked of the cluster itself)."""
    update: dict[str, Any] = {}
    if url:
        update |= {"elasticsearch_url": url, "kind": engine or "auto"}
    elif engine:
        update["kind"] = engine
    return settings.replace(engine=update)


def stored_documents(es: Client, alias: str) -> Iterator[dict[str, Any]]:
    """Every document of a collection as stored, vectors and nested passages included."""
    body = {"query": {"match_all": {}}, "_source": engine_of(es).source_with_vectors()}
    for hit in scan(es, index=alias, query=body, size=500, scroll="10m"):
        yield {"_id": hit["_id"], "_source": hit["_source"]}


def copy_collection(
    source: Client,
    target: Client,
    settings: Settings,
    name: str,
    *,
    target_name: str | None = None,
    transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Copy collection `name` from `source` into a new collection `target_name` (default: the same name)
    on `target`: same encoders, models, extractors, passages and profiles; documents as stored, or as
    `transform` returns each stored source (a new dict)."""
    target_name = target_name or name
    info = catalog.get(source, settings, name)
    models = {enc: desc["model"] for enc, desc in info.encoders.items() if desc.get("model")}
    started = time.perf_counter()
    made = catalog.create(
        target,
        settings,
        target_name,
        list(info.encoders),
        models=models,
        extractors=info.extractors or None,
        passages=bool(info.passages),
    )
    if info.profiles:
        catalog.update_meta(target, made.index, profiles=info.profiles)
    target.indices.put_settings(index=made.index, settings={"index": {"refresh_interval": "-1"}})

    def actions() -> Iterator[dict[str, Any]]:
        for doc in stored_documents(source, info.alias):
            yield {
                "_index": made.index,
                "_id": doc["_id"],
                "_source": {**(transform or dict)(doc["_source"]), "collection": target_name},
            }

    copied = 0
    for ok, item in streaming_bulk(target, actions(), chunk_size=200, max_retries=3):
        if not ok:
            raise RuntimeError(f"bulk into {made.index} failed: {item}")
        copied += 1
    target.indices.put_settings(index=made.index, settings={"index": {"refresh_interval": None}})
    target.options(request_timeout=600).indices.refresh(index=made.index)
    catalog.CACHE.invalidate(target_name)
    return {"documents": copied, "seconds": round(time.perf_counter() - started, 1)}


def ensure_copy(
    source: Client, target: Client, settings: Settings, name: str, *, replace: bool
) -> dict[str, Any]:
    """Reuse a target collection whose documents are in the same states as the source's (as many encoded,
    pending, failed); otherwise copy (an existing one that differs is deleted only with `replace`)."""
    alias = catalog.alias_for(settings, name)
    want = catalog.status_counts(source, alias)
    if target.indices.exists_alias(name=alias):
        have = catalog.status_counts(target, alias)
        if have == want:
            return {"documents": have["total"], "seconds": "kept"}
        if not replace:
            raise SystemExit(f"{name!r} on the target holds {have}, the source {want}: pass --replace")
        catalog.delete(target, settings, name)
    return copy_collection(source, target, settings, name)


def evaluate(
    settings: Settings,
    name: str,
    queries: dict[str, str],
    qrels: runs.Judgments,
    *,
    modes: list[str],
    threads: int,
) -> dict[str, dict[str, Any]]:
    """`mmsearch eval`'s runs through an API process on the cluster `settings` names: mode -> results
    (metrics, each query's top 10, and the raw latencies, summarised by `summarise`)."""
    results: dict[str, dict[str, Any]] = {}
    with spawned_api({}, settings) as client:
        for mode in modes:
            request = {**runs.MODES[mode], "size": SIZE, "cutoff": False}
            result = runs.mode_result(*runs.run_queries(client, name, queries, request, threads=threads))
            top10 = {qid: list(ranking)[:10] for qid, ranking in result.run.items()}
            results[mode] = {
                "metrics": runs.scores(qrels, result.run, METRICS),
                "top10": top10,
                "raw": (result.latencies_ms, result.server_ms, result.wall_s),
            }
    return results


def summarise(rounds: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """One engine's rounds as one result per mode: the first round's metrics and top 10 (the rankings do
    not change between rounds) and the latencies of every later round together (the first warms the
    engine's caches and the API's models, so the engine that goes first would pay for both)."""
    out: dict[str, dict[str, Any]] = {}
    timed = rounds[1:] or rounds
    for mode, first in rounds[0].items():
        latencies = [ms for r in timed for ms in r[mode]["raw"][0]]
        server = [ms for r in timed for ms in r[mode]["raw"][1]]
        wall = sum(r[mode]["raw"][2] for r in timed)
        latency = runs.latency_summary(latencies, server, wall)
        out[mode] = {"metrics": first["metrics"], "top10": first["top10"], "latency": latency}
    return out


def evaluate_both(
    engines: dict[str, Settings],
    name: str,
    queries: dict[str, str],
    qrels: runs.Judgments,
    *,
    args: argparse.Namespace,
) -> dict[str, dict[str, Any]]:
    """Each engine in turn, a warm-up round and then `args.rounds` timed ones (A B A B ...), so load from
    elsewhere falls on both alike."""
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    rounds: dict[str, list[dict[str, dict[str, Any]]]] = {label: [] for label in engines}
    for round_no in range(args.rounds + 1):
        for label, settings in engines.items():
            started = time.perf_counter()
            rounds[label].append(evaluate(settings, name, queries, qrels, modes=modes, threads=args.threads))
            print(
                f"round {round_no or 'warm-up'}, {label}: {len(queries)} queries x {len(modes)} modes in "
                f"{time.perf_counter() - started:.0f} s",
                flush=True,
            )
    return {label: summarise(r) for label, r in rounds.items()}


def side_by_side(label_a: str, a: dict, label_b: str, b: dict) -> list[dict[str, Any]]:
    """One row per (mode, metric): both engines and the difference b - a; then the share of queries whose
    top 10 is the same list on both, and the latencies (client p50/p95, the API's own `took_ms`) with
    their ratio b / a."""
    rows: list[dict[str, Any]] = []
    for mode in a:
        for metric, label in METRICS.items():
            va, vb = a[mode]["metrics"][metric], b[mode]["metrics"][metric]
            rows.append({"mode": mode, "metric": label, label_a: va, label_b: vb, "difference": vb - va})
        same = [a[mode]["top10"][q] == b[mode]["top10"].get(q) for q in a[mode]["top10"]]
        share = sum(same) / len(same) if same else 0.0
        rows.append({"mode": mode, "metric": "same top 10", label_a: "", label_b: share, "difference": ""})
        for key, label in LATENCIES.items():
            pa, pb = a[mode]["latency"][key], b[mode]["latency"][key]
            ratio = f"x{pb / pa:.2f}" if pa else ""
            rows.append({"mode": mode, "metric": label, label_a: pa, label_b: pb, "difference": ratio})
    return rows


def run(args: argparse.Namespace) -> Iterator[Report]:
    """Each report as soon as it is done (the API runs', then the direct one's), so a later phase that
    fails loses nothing already measured."""
    base = get_settings()
    settings = (
        cluster(base, args.source_url, args.source_engine),
        cluster(base, args.target_url, args.target_engine),
    )
    source, target = make_client(settings[0]), make_client(settings[1])
    labels = (engine_of(source).name, engine_of(target).name)
    if labels[0] == labels[1]:
        labels = (f"{labels[0]} (source)", f"{labels[1]} (target)")
    copied = ensure_copy(source, target, base, args.collection, replace=args.replace)
    print(f"copy: {copied}", flush=True)
    if args.phase == "copy":
        yield Report("engines", f"copied {args.collection!r}", [{"collection": args.collection, **copied}])
        return
    qrels = load_qrels(args.qrels)
    if args.queries:  # a smoke run on the first judged queries
        qrels = dict(list(qrels.items())[: args.queries])
    queries = runs.judged_queries(load_queries(find(args.dataset, "queries")), qrels)
    if args.phase in ("eval", "all"):
        engines = dict(zip(labels, settings, strict=True))
        results = evaluate_both(engines, args.collection, queries, qrels, args=args)
        rows = side_by_side(labels[0], results[labels[0]], labels[1], results[labels[1]])
        yield eval_report(args, labels, rows, copied=copied, n=len(queries))
    if args.phase in ("direct", "all"):
        clients = dict(zip(labels, zip((source, target), settings, strict=True), strict=True))
        yield direct_report(args, clients, list(queries.values()))


def eval_report(
    args: argparse.Namespace, labels: tuple[str, str], rows: list[dict[str, Any]], *, copied: dict, n: int
) -> Report:
    return Report(
        "engines",
        f"{args.collection!r} on {labels[0]} and {labels[1]}: {n} judged queries of "
        f"{args.qrels.name}, {SIZE} hits per query",
        rows,
        [
            f"copy: {copied['documents']} documents with their stored vectors and passages "
            f"({copied['seconds']} s), no re-encoding; the target's mapping is the product's for its engine;",
            "runs as `mmsearch eval` (evaluation/runs.py) through one API process per engine, "
            f"{args.threads} client threads; query vectors computed by the API;",
            f"latencies: {args.rounds} round(s) after a warm-up round, the engines alternating (A B A B), "
            "pooled; difference of a latency row = target / source;",
            "difference = target - source; vector search is approximate on both (Elasticsearch bbq_hnsw, "
            "int8_hnsw for passages; OpenSearch Lucene HNSW + sq), rescored with the float vectors;",
            "same top 10 = share of queries whose first 10 ids are the same list on both engines (BM25 "
            "statistics count deleted documents until segments merge, so a copy's can differ slightly).",
        ],
    )


def direct_report(
    args: argparse.Namespace, clients: dict[str, tuple[Client, Settings]], texts: list[str]
) -> Report:
    """The API's own requests sent straight to both engines (`bench.engines_direct`)."""
    modes = [m for m in (m.strip() for m in args.modes.split(",")) if m in DIRECT_MODES]
    es, settings = next(iter(clients.values()))
    vectors = direct.encoded_queries(es, settings, args.collection, texts)
    targets = [
        direct.target(label, c, s, args.collection, texts=texts, modes=modes, vectors=vectors)
        for label, (c, s) in clients.items()
    ]
    rows = direct.profile(targets, size=SIZE, threads=args.threads, rounds=args.rounds + 1)
    labels = list(clients)
    return Report(
        "engines-direct",
        f"{args.collection!r}: the API's requests sent directly, {len(texts)} queries, "
        f"{args.threads} threads",
        direct.with_ratios(rows, labels[0], labels[1]),
        [
            "the product's plan per engine (SearchService.plan, precomputed query vectors, default profile), "
            f"one _msearch of its sub-queries and one page fetch of the top {SIZE} fused ids, "
            "no API process;",
            "wall = the client's time (engine + HTTP + JSON + client library); took = the engine's own;",
            f"{args.rounds + 1} rounds with the engines alternating; the first warms caches and is left out.",
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--collection", required=True, help="an encoded collection on the source cluster")
    parser.add_argument("--dataset", type=Path, required=True, help="BEIR directory (queries)")
    parser.add_argument("--qrels", type=Path, required=True, help="judgments (BEIR tsv)")
    parser.add_argument("--source-url", required=True, help="the cluster holding the collection (read only)")
    parser.add_argument("--source-engine", choices=("elasticsearch", "opensearch"), help="default: asked")
    parser.add_argument("--target-url", help="default: the configured cluster (ELASTICSEARCH_URL)")
    parser.add_argument("--target-engine", choices=("elasticsearch", "opensearch"), help="default: asked")
    parser.add_argument("--modes", default=",".join(DEFAULT_MODES), help=f"of {', '.join(runs.MODES)}")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--queries", type=int, default=0, help="only the first N judged queries (0: all)")
    parser.add_argument("--replace", action="store_true", help="recopy a target collection of another size")
    parser.add_argument(
        "--phase",
        choices=("copy", "eval", "direct", "all"),
        default="all",
        help="copy only; eval through the API; direct (the same requests straight to both engines); all",
    )
    parser.add_argument("--rounds", type=int, default=1, help="latency rounds, the engines alternating")
    args = parser.parse_args()
    for report in run(args):
        show(report, Console(width=None if sys.stdout.isatty() else 200))
        print(f"wrote {save(report)}")


if __name__ == "__main__":
    main()
