"""`mmsearch eval`, `tune` and `bench`: retrieval quality, learnt profiles, benchmarks (via the HTTP API)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from client.api import ApiClient
from client.progress import progress as progress_bar
from mmsearch.common import api, console, errors, wait_encoded

BENCHMARKS = (
    "ingest", "query", "knn-recall", "growth", "train", "long-docs", "rerank", "encoders", "rerank-backends",
    "cutoff",
)  # fmt: skip

dataset_option = click.option(
    "--dataset",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="BEIR directory: corpus.jsonl[.gz], queries.jsonl[.gz] and qrels.",
)


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(",") if x.strip())


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def _find_qrels(dataset: Path, qrels: Path | None) -> Path:
    """The given file, or the only `qrels*.tsv` of the dataset (several: say which to use)."""
    if qrels:
        return qrels
    found = sorted({*dataset.glob("qrels*.tsv"), *dataset.glob("qrels/*.tsv")})
    if len(found) != 1:
        raise click.UsageError(f"pass --qrels: found {[str(p) for p in found] or 'no qrels files'}")
    return found[0]


def _load(dataset: Path, qrels_path: Path) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    from evaluation.runs import judged_queries
    from ingest.beir import find, load_qrels, load_queries

    qrels = load_qrels(qrels_path)
    return judged_queries(load_queries(find(dataset, "queries")), qrels), qrels


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False))
    console.print(f"wrote {path}")


@click.command("eval")
@dataset_option
@click.option("--qrels", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option("--collection", "-c", default=None, help="Default: the dataset directory's name.")
@click.option(
    "--modes", default=None, help="Comma-separated: lexical, vector, hybrid, hybrid-rrf, hybrid-linear."
)
@click.option("--profile", default=None, help="Search profile of the collection to evaluate.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--plot", "plot_out", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--size", default=100, show_default=True, help="Hits per query (MAP@100, Recall@100).")
@click.option("--threads", default=4, show_default=True)
def evaluate(
    *,
    dataset: Path,
    qrels: Path | None,
    collection: str | None,
    modes: str | None,
    profile: str | None,
    json_out: Path | None,
    plot_out: Path | None,
    size: int,
    threads: int,
) -> None:
    """Retrieval quality of each search mode on judged queries (loads the corpus when needed).

    `hybrid` fuses as the profile in effect says (the named one, else the collection's `default`);
    `hybrid-rrf` and `hybrid-linear` force that method with its defaults. Every mode uses the profile's
    lexical boosts and kNN candidates."""
    from evaluation import runs as evaluation

    qrels_path = _find_qrels(dataset, qrels)
    collection = collection or dataset.name.lower()
    client = api()
    with errors():
        queries, judgments = _load(dataset, qrels_path)
        reused, counts = _ready_collection(client, collection, dataset)
        stored = client.collection(collection)["profiles"]
        in_effect = profile or ("default" if "default" in stored else None)
        names = _modes(modes, in_effect)
        params = {"size": size, **({"profile": profile} if profile else {})}
        results = {
            mode: _mode_report(
                client,
                collection,
                queries,
                judgments,
                request={**evaluation.MODES[mode], **params},
                mode=mode,
                threads=threads,
            )
            for mode in names
        }
    report = {
        "dataset": str(dataset),
        "qrels": str(qrels_path),
        "collection": collection,
        "corpus_reused": reused,
        "documents": counts,
        "queries": len(queries),
        "profile": in_effect,
        "threads": threads,
        "modes": results,
    }
    title = f"{collection}: {len(queries)} judged queries of {qrels_path.name}, profile {in_effect or '-'}"
    _print_eval(title, results)
    if json_out:
        _write_json(json_out, report)
    if plot_out:
        evaluation.plot({m: r["metrics"] for m, r in results.items()}, title, plot_out)
        console.print(f"wrote {plot_out}")


def _ready_collection(client: ApiClient, collection: str, dataset: Path) -> tuple[bool, dict[str, int]]:
    """The collection loaded from the dataset's corpus unless it already holds it, and encoded; returns
    (whether it was reused, its document counts)."""
    from evaluation.runs import ensure_collection
    from ingest.beir import find

    reused = ensure_collection(client, collection, find(dataset, "corpus"))
    counts = wait_encoded(client, collection)
    if counts.get("failed"):
        console.print(f"[yellow]{counts['failed']} documents failed to encode (lexical only)[/]")
    return reused, counts


def _mode_report(
    client: ApiClient,
    collection: str,
    queries: dict[str, str],
    judgments: dict[str, dict[str, int]],
    *,
    request: dict[str, Any],
    mode: str,
    threads: int,
) -> dict[str, Any]:
    """One mode's run over the judged queries: the request, its metrics and its latencies. Ranked
    metrics and latencies come from the whole ranking (`cutoff: false`), the set metrics from a second
    run of the same request with the relevance cut-off in force (the returned set a person gets)."""
    from evaluation import runs as evaluation

    outcome = {}
    for label, cut in (("ranked", False), ("cut", True)):
        with progress_bar(total=len(queries), desc=f"{mode} ({label})", unit="q", leave=False) as bar:
            outcome[label] = evaluation.mode_result(
                *evaluation.run_queries(
                    client,
                    collection,
                    queries,
                    {**request, "cutoff": cut},
                    threads=threads,
                    progress=bar.update,
                )
            )
    ranked, returned = outcome["ranked"], outcome["cut"].run
    return {
        "request": request,
        "metrics": {**evaluation.scores(judgments, ranked.run), **evaluation.set_scores(judgments, returned)},
        "returned": round(sum(map(len, returned.values())) / max(len(returned), 1), 2),
        "latency_ms": evaluation.latency_summary(ranked.latencies_ms, ranked.server_ms, ranked.wall_s),
    }


def _modes(modes: str | None, profile: str | None) -> list[str]:
    from evaluation.runs import DEFAULT_MODES, MODES

    if modes is None:
        return [*DEFAULT_MODES[:2], *(["hybrid"] if profile else []), *DEFAULT_MODES[2:]]
    names = [m.strip() for m in modes.split(",") if m.strip()]
    unknown = set(names) - set(MODES)
    if unknown or not names:
        raise click.UsageError(f"unknown modes {sorted(unknown)}; choose from {', '.join(MODES)}")
    return names


def _print_eval(title: str, results: dict[str, dict[str, Any]]) -> None:
    from evaluation.runs import METRICS, SET_METRICS

    names = {**METRICS, **SET_METRICS}
    table = Table("mode", *names.values(), "returned", "p50 ms", "p95 ms", "QPS", title=title)
    for mode, result in results.items():
        metrics, latency = result["metrics"], result["latency_ms"]
        table.add_row(
            mode,
            *(f"{metrics[m]:.4f}" for m in names),
            f"{result['returned']:.1f}",
            f"{latency['p50']:.1f}",
            f"{latency['p95']:.1f}",
            f"{latency['qps']:.1f}",
        )
    console.print(table)


def _print_cutoff(report: dict[str, Any]) -> None:
    """Cross-validated F-beta of the returned set per list kind: learned against the baselines."""
    from evaluation.cutoff import cv_table

    for kind, fitted in report.items():
        table = Table(
            "cut-off",
            "rule (all queries)",
            "CV F (mean ± std)",
            title=f"{kind}: F{fitted['beta']:g} "
            f"of the returned set, {fitted['queries']} lists, saved: {fitted['selected']}",
        )
        for row in cv_table(fitted["cv"]):
            table.add_row(*row)
        console.print(table)


@click.command()
@dataset_option
@click.option("--qrels", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--collection", "-c", required=True)
@click.option("--folds", default=5, show_default=True)
@click.option("--name", default="default", show_default=True, help="Profile name to save.")
@click.option("--title-boosts", default="0.5,1,2", show_default=True, help="Title boosts (content is 1).")
@click.option("--num-candidates", default="100,200", show_default=True)
@click.option("--rrf-k", default="10,20,40,60,100", show_default=True)
@click.option(
    "--lexical-weights",
    default="0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9",
    show_default=True,
    help="Lexical share of the fusion weight (vector sub-queries share the rest).",
)
@click.option("--normalizations", default="minmax,zscore,l2", show_default=True)
@click.option("--window", default=100, show_default=True, help="rank_window: each sub-query's list length.")
@click.option("--threads", default=4, show_default=True)
@click.option(
    "--all-queries",
    is_flag=True,
    help="Tune on every judged query even when the collection's model was trained on some of them.",
)
@click.option(
    "--beta",
    default=1.0,
    show_default=True,
    help="The cut-off maximises F-beta of the returned set (1: F1; 2 weighs recall more).",
)
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None)
def tune(
    *,
    dataset: Path,
    qrels: Path,
    collection: str,
    folds: int,
    name: str,
    title_boosts: str,
    num_candidates: str,
    rrf_k: str,
    lexical_weights: str,
    normalizations: str,
    window: int,
    threads: int,
    all_queries: bool,
    beta: float,
    json_out: Path | None,
) -> None:
    """Learn fusion, boosts and kNN candidates (k-fold CV on nDCG@10) and where each mode's result set
    ends (k-fold CV on F-beta of the returned set) on training judgments; save it with the collection.

    After `mmsearch train` on these judgments, only the queries its training held back are used (the
    model has seen the others, so their vector scores flatter it and the weights lean to the vector side)."""
    from evaluation import cutoff, tuning

    grid = tuning.Grid(
        title_boosts=_floats(title_boosts),
        num_candidates=_ints(num_candidates),
        rrf_k=_floats(rrf_k),
        lexical_weights=_floats(lexical_weights),
        normalizations=tuple(n.strip() for n in normalizations.split(",") if n.strip()),
        window=window,
    )
    client = api()
    progress, bars = _stage_bars()
    with errors():
        queries, judgments = _load(dataset, qrels)
        if not all_queries:
            queries = _unseen(client, collection, qrels, queries)
        result = tuning.tune(
            client,
            collection,
            queries,
            judgments,
            n_folds=folds,
            grid=grid,
            threads=threads,
            progress=progress,
        )
        for bar in bars:
            bar.close()
        fitted = cutoff.fit_profile(result, judgments, n_folds=folds, beta=beta)
        result.profile, result.report["cutoff"] = fitted
        tuning.save_profile(client, collection, name, result.profile)
        result.report["verify"] = tuning.verify_online(client, collection, name, result, queries=queries)
    result.report.update(profile_name=name, profile=result.profile.model_dump(mode="json"), qrels=str(qrels))
    _print_tune(result.report)
    if json_out:
        _write_json(json_out, result.report)


def _stage_bars() -> tuple[Callable[[str, int], Callable[..., Any]], list[Any]]:
    """A `progress(stage, total)` for `tuning.tune` that opens one bar per stage, and the bars opened (to
    close when it returns)."""
    bars: list[Any] = []

    def progress(stage: str, total: int) -> Callable[..., Any]:
        bars.append(progress_bar(total=total, desc=stage, leave=False))
        return bars[-1].update

    return progress, bars


def _unseen(client: Any, collection: str, qrels: Path, queries: dict[str, str]) -> dict[str, str]:
    """The judged queries the collection's text model was not trained on (all, for a stock model)."""
    from core.config import get_settings
    from evaluation.training import held_queries, model_card

    card = model_card(client, get_settings(), collection)
    held = held_queries(card, qrels)
    if held is None:
        if card and Path(card.get("qrels", "")).resolve() == qrels.resolve():
            console.print("[yellow]the model was trained on all of these judgments: CV scores flatter it[/]")
        return queries
    console.print(
        f"tuning on the {len(held)} queries training held back from {qrels.name} (model {card['version']}); "
        "--all-queries to use every one"
    )
    return {qid: queries[qid] for qid in held if qid in queries}


def _print_tune(report: dict[str, Any]) -> None:
    table = Table(
        "configuration",
        "CV nDCG@10 (mean ± std)",
        "all queries (tuned: in-sample)",
        title=f"{report['collection']}: {report['queries']} training queries, {report['folds']} folds, "
        f"{report['candidates']} candidates",
    )
    from evaluation.tuning import describe
    from search.schema import Profile

    labels = {"tuned": f"tuned: {report['chosen']}", "defaults": f"defaults: {describe(Profile())}"}
    for key, cv in report["cv"].items():
        table.add_row(
            labels.get(key, f"{key} only"), f"{cv['mean']:.4f} ± {cv['std']:.4f}", f"{cv['all_queries']:.4f}"
        )
    console.print(table)
    for i, choice in enumerate(report["fold_choices"], start=1):
        console.print(f"  fold {i} chose: {choice}")
    verify = report["verify"]
    colour = "green" if verify["agree"] == verify["queries"] else "red"
    saved = (
        "the defaults (the grid's winner did not beat them cross-validated)"
        if report["selected"] == "defaults"
        else report["chosen"]
    )
    console.print(
        f"saved profile {report['profile_name']!r}: {saved}; online top 10 = offline top 10 on "
        f"[{colour}]{verify['agree']}/{verify['queries']}[/] queries"
    )
    _print_cutoff(report["cutoff"])


@click.command()
@click.argument("which", type=click.Choice([*BENCHMARKS, "all"]))
@click.option("--collection", "-c", default="scifact", show_default=True, help="An encoded collection.")
@dataset_option
@click.option(
    "--docs", default=500, show_default=True, help="ingest: documents to encode; long-docs: long documents."
)
@click.option("--queries", "n_queries", default=200, show_default=True, help="query/knn-recall/growth.")
@click.option("--sizes", default="10000,100000", show_default=True, help="growth: collection sizes.")
@click.option(
    "--qrels", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="train: judgments."
)
@click.option(
    "--configs",
    default="1:1e-4,1:2e-4",
    show_default=True,
    help="train: configs to compare, EPOCHS:LEARNING_RATE[:NEGATIVES[:lexical|hybrid]], comma-separated.",
)
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None)
def bench(
    *,
    which: str,
    collection: str,
    dataset: Path,
    docs: int,
    n_queries: int,
    sizes: str,
    qrels: Path | None,
    configs: str,
    json_out: Path | None,
) -> None:
    """Benchmarks, side by side in one run; each prints a table and writes data/bench/<name>.json.
    `all` runs ingest, query and knn-recall (the others only when asked: they take long). `encoders` and
    `rerank-backends` need no services: the CPU inference backends side by side (at most 50 / 20 queries
    and 200 documents)."""
    from bench import (
        common,
        cutoff,
        encoders,
        growth,
        ingest,
        knn_recall,
        long_docs,
        query,
        rerank,
        train_configs,
    )

    runs = {
        "ingest": lambda: ingest.run(dataset, docs),
        "query": lambda: query.run(collection, dataset, n_queries),
        "knn-recall": lambda: knn_recall.run(collection, dataset, n_queries),
        "growth": lambda: growth.run(api(), collection, dataset, _ints(sizes), n=n_queries),
        "train": lambda: train_configs.run(
            api(),
            collection,
            dataset,
            _find_qrels(dataset, qrels),
            configs=train_configs.parse_configs(configs),
        ),
        "long-docs": lambda: long_docs.run(dataset, n_docs=docs, n_queries=n_queries),
        "rerank": lambda: rerank.run(api(), collection, dataset, min(n_queries, 50)),
        "encoders": lambda: encoders.run(dataset, min(n_queries, 50), min(docs, 200)),
        "rerank-backends": lambda: rerank.backends(dataset, min(n_queries, 20), min(docs, 200)),
        "cutoff": lambda: cutoff.run(api(), dataset),
    }
    reports = []
    with errors():
        for name in BENCHMARKS[:3] if which == "all" else [which]:
            report = runs[name]()
            common.show(report, console)
            console.print(f"wrote {common.save(report)}")
            reports.append(report.as_dict())
    if json_out:
        _write_json(json_out, reports[0] if len(reports) == 1 else reports)
