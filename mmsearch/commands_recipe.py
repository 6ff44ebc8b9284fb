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
        cv = client.collection(collection)["profiles"]["default"]["scores"]
    report = {"held_queries": len(held), "seed": seed, "before": before, "after": after, "tune_cv": cv}
    show(report)
    if json_out:
        commands_quality._write_json(json_out, report)


def held_scores(
    client: ApiClient,
    collection: str,
    queries: dict[str, str],
    judgments: dict[str, dict[str, int]],
    profile: str | None,
) -> dict[str, float]:
    """nDCG@10 of each mode on the held-back queries, through the API."""
    from evaluation import runs

    qrels = {qid: judgments[qid] for qid in queries}
    out = {}
    for mode in MODES:
        params: dict[str, Any] = {"mode": mode, "size": 10, **({"profile": profile} if profile else {})}
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
