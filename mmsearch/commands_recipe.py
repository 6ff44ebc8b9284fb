"""`mmsearch improve`: the whole quality recipe in one command, scored on queries the model never sees."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table

from client.api import ApiClient
from encoders.training import TrainConfig
from mmsearch import commands_models, commands_quality
from mmsearch.common import api, console, errors

MODES = ("lexical", "vector", "hybrid")


@click.command()
@commands_quality.dataset_option
@click.option("--qrels", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--collection", "-c", required=True)
@click.option("--holdout", default=TrainConfig.holdout, show_default=True, help="Share of queries held back.")
@click.option("--seed", default=TrainConfig.seed, show_default=True)
@click.option("--epochs", default=TrainConfig.epochs, show_default=True, help="At most; stops early.")
@click.option("--hard-negatives", default=TrainConfig.hard_negatives, show_default=True)
@click.option(
    "--negatives-from", type=click.Choice(["lexical", "hybrid"]), default=TrainConfig.negatives_from
)
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.pass_context
def improve(
    *,
    ctx: click.Context,
    dataset: Path,
    qrels: Path,
    collection: str,
    holdout: float,
    seed: int,
    epochs: int,
    hard_negatives: int,
    negatives_from: str,
    json_out: Path | None,
) -> None:
    """Split the judgments by query; score the held-back ones; fine-tune on the rest (early-stopped on
    the held-back ones), re-encode, tune the profile on the held-back ones (`tune`'s default after
    `train`); score them again. Prints before / after side by side with the tuned profile's CV estimate."""
    from evaluation.training import split_queries

    if not 0 < holdout < 1:
        raise click.UsageError("--holdout must be between 0 and 1: the recipe scores held-back queries")
    client = api()
    with errors():
        queries, judgments = commands_quality._load(dataset, qrels)
        _, held = split_queries(judgments, queries, holdout, seed)
        held_queries = {q: queries[q] for q in held}
        before = held_scores(client, collection, held_queries, judgments, profile=None)
    ctx.invoke(
        commands_models.train,
        dataset=dataset,
        qrels=qrels,
        collection=collection,
        epochs=epochs,
        hard_negatives=hard_negatives,
        negatives_from=negatives_from,
        holdout=holdout,
        seed=seed,
        reencode=True,
    )
    ctx.invoke(commands_quality.tune, dataset=dataset, qrels=qrels, collection=collection)
    with errors():
        after = held_scores(client, collection, held_queries, judgments, profile="default")
        cv = client.profiles(collection)["default"]["scores"]
    report = {"held_queries": len(held), "seed": seed, "before": before, "after": after, "tune_cv": cv}
    show(report)
    if json_out:
        commands_quality._write_json(json_out, report)


def held_scores(
    client: ApiClient,
    collection: str,
    queries: dict[str, str],
    judgments: dict[str, dict[str, int]],
    *,
    profile: str | None,
) -> dict[str, float]:
    """nDCG@10 of each mode on the held-back queries, through the API."""
    from evaluation import runs

    qrels = {qid: judgments[qid] for qid in queries}
    out = {}
    for mode in MODES:
        params: dict[str, Any] = {
            "mode": mode,
            "size": 10,
            "cutoff": False,
            **({"profile": profile} if profile else {}),
        }
        result = runs.mode_result(*runs.run_queries(client, collection, queries, params))
        out[mode] = round(runs.scores(qrels, result.run, ["ndcg@10"])["ndcg@10"], 4)
    return out


def show(report: dict[str, Any]) -> None:
    table = Table(
        "nDCG@10", *MODES, title=f"{report['held_queries']} held-back queries (seed {report['seed']})"
    )
    for label, key in (("zero-shot, default profile", "before"), ("fine-tuned + tuned profile", "after")):
        table.add_row(label, *(f"{report[key][m]:.4f}" for m in MODES))
    console.print(table)
    cv = report["tune_cv"]
    console.print(
        f"tune's CV estimate on the same held-back queries: {cv['cv_mean']:.4f} ± {cv['cv_std']:.4f} "
        f"({cv['selected']} profile saved)"
    )


@click.command("rerank")
@commands_quality.dataset_option
@click.option("--qrels", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--collection", "-c", required=True)
@click.option("--base", default="all-MiniLM-L6-v2", show_default=True, help="Model to start from.")
@click.option("--name", default=None, help="Model name; default rerank-<collection>-<time>.")
@click.option("--negatives", default=3, show_default=True, help="Fused hits not judged relevant, per query.")
@click.option("--epochs", default=2, show_default=True)
@click.option(
    "--top-k",
    default="20,50",
    show_default=True,
    help="Fused hits the reranker reorders, depths to try: the deepest that wins within --budget-ms is kept.",
)
@click.option(
    "--budget-ms",
    type=float,
    default=None,
    help="p50 ms the reranker may add to a search on this host (default MMSEARCH_RERANK_BUDGET_MS).",
)
@click.option("--holdout", default=TrainConfig.holdout, show_default=True)
@click.option("--seed", default=TrainConfig.seed, show_default=True)
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None)
def rerank(
    *,
    dataset: Path,
    qrels: Path,
    collection: str,
    base: str,
    name: str | None,
    negatives: int,
    epochs: int,
    top_k: str,
    budget_ms: float | None,
    holdout: float,
    seed: int,
    json_out: Path | None,
) -> None:
    """Train a cross-encoder reranker on the judged queries (the held-back share excluded, the same one
    `train` held back when the collection's model came from it), score hybrid search on the held-back
    queries without it and with it at each weight against the fused score (the weight chosen there, with
    its k-fold estimate), at each depth of --top-k with the latency it adds; turn it on in the `default`
    profile at the deepest depth that wins there and fits the budget."""
    from datetime import UTC, datetime

    from core.config import get_settings
    from evaluation import rerank as recipe
    from evaluation.training import held_queries, model_card, split_queries
    from evaluation.tuning import save_profile

    if not 0 < holdout < 1:
        raise click.UsageError(
            "--holdout must be between 0 and 1: the reranker is judged on held-back queries"
        )
    settings = get_settings()
    depths = commands_quality._ints(top_k)
    if not depths or min(depths) < 1:
        raise click.UsageError("--top-k must list positive depths, e.g. 20,50")
    budget = budget_ms if budget_ms is not None else settings.models.rerank_budget_ms
    client = api()
    with errors():
        queries, judgments = commands_quality._load(dataset, qrels)
        held = held_queries(model_card(client, settings, collection), qrels)
        if held is None:
            held = split_queries(judgments, queries, holdout, seed)[1]
        fit = {q: t for q, t in queries.items() if q not in set(held)}
        console.print(f"training on {len(fit)} queries, judging on the {len(held)} held back")
        groups = recipe.examples(client, collection, dataset, fit, qrels=judgments, negatives=negatives)
        name = name or f"rerank-{collection}-{datetime.now(UTC):%Y%m%d-%H%M%S}"
        info = {"collection": collection, "qrels": str(qrels.resolve()), "held": held, "negatives": negatives}
        ref, card = recipe.fit(settings, base, groups, name, info=info, epochs=epochs)
        held_queries_ = {q: queries[q] for q in held}
        result = recipe.choose_depth(
            client, collection, held_queries_, judgments, model=ref, depths=depths, budget_ms=budget
        )
        if result["adopted"]:
            save_profile(client, collection, "default", result["profile"])
    show_rerank(result, ref)
    if json_out:
        report = {**{k: v for k, v in result.items() if k != "profile"}, "model": ref}
        commands_quality._write_json(json_out, {**report, "card": card})


def show_rerank(result: dict[str, Any], ref: str) -> None:
    """The held-back score at each reranker weight and each depth's cost, and the verdict."""
    from evaluation.rerank import wins

    table = Table("reranker weight", "held-back nDCG@10", title=f"{result['queries']} held-back queries")
    for weight, value in result["by_weight"].items():
        table.add_row("0 (fusion alone)" if weight == 0 else str(weight), f"{value:.4f}")
    console.print(table)
    depths = Table("top_k", "weight", "nDCG@10 without", "with", "adds p50 ms", "fits budget")
    for row in result["depths"]:
        depths.add_row(*(str(row[k]) for k in ("top_k", "weight", "without", "with", "added_p50_ms", "fits")))
    console.print(depths)
    if result["adopted"]:
        verdict = "on in profile 'default'"
    elif wins(result):
        verdict = f"left off: it wins but adds more than the budget ({result['budget_ms']} ms p50)"
    else:
        verdict = "left off: it does not beat fusion alone on held-back queries"
    cv, cv_without = result["cv"], result["cv_without"]
    console.print(
        f"reranker {ref} (top {result['top_k']}, weight {result['weight']}): held-back nDCG@10 "
        f"{result['without']:.4f} without, {result['with']:.4f} with "
        f"(k-fold estimate of choosing the weight there: {cv['mean']:.4f} ± {cv['std']:.4f}; "
        f"without: {cv_without['mean']:.4f}); adds {result['added_p50_ms']} ms p50 per search here "
        f"(server mean {result['server_ms_without']} vs {result['server_ms_with']} ms); {verdict}"
    )
