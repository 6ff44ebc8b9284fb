"""`mmsearch train` and `mmsearch reencode`: fine-tune a collection's text model, put a model in service."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from client.api import ApiClient
from client.progress import progress as progress_bar
from core.config import get_settings
from encoders.training import TrainConfig
from mmsearch.common import api, errors, wait_job

DEFAULTS = TrainConfig()


@click.command()
@click.option(
    "--dataset",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="BEIR folder with queries.jsonl[.gz] and corpus.jsonl[.gz].",
)
@click.option(
    "--qrels",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Training judgments (tsv: query-id, corpus-id, score). Never the test judgments.",
)
@click.option(
    "--collection", "-c", required=True, help="Collection whose text model is tuned (BM25 negatives)."
)
@click.option("--name", "version", default=None, help="Model name; default <base>-ft-<collection>-<time>.")
@click.option("--epochs", default=DEFAULTS.epochs, show_default=True, help="At most; stops early.")
@click.option("--batch-size", default=DEFAULTS.batch_size, show_default=True)
@click.option("--learning-rate", default=DEFAULTS.learning_rate, show_default=True)
@click.option(
    "--hard-negatives",
    default=DEFAULTS.hard_negatives,
    show_default=True,
    help="Hard negatives per pair (0: in-batch only).",
)
@click.option(
    "--negatives-from",
    type=click.Choice(["lexical", "hybrid"]),
    default=DEFAULTS.negatives_from,
    show_default=True,
    help="Mine negatives from the BM25 ranking or the fused one users see.",
)
@click.option(
    "--holdout",
    default=DEFAULTS.holdout,
    show_default=True,
    help="Share of judged queries kept out of training, for early stopping, `tune` and `eval` (0: none).",
)
@click.option("--seed", default=DEFAULTS.seed, show_default=True, help="Seeds the query split and training.")
@click.option("--max-pairs", default=None, type=int, help="Train on at most N (query, passage) pairs.")
@click.option(
    "--max-seq-length",
    default=DEFAULTS.max_seq_length,
    show_default=True,
    help="Tokens per text while training.",
)
@click.option("--reencode/--no-reencode", default=True, help="Re-encode the collection with the new model.")
def train(
    *,
    dataset: Path,
    qrels: Path,
    collection: str,
    version: str | None,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    hard_negatives: int,
    negatives_from: str,
    holdout: float,
    seed: int,
    max_pairs: int | None,
    max_seq_length: int,
    reencode: bool,
) -> None:
    """Fine-tune the collection's text encoder on training judgments (MultipleNegativesRankingLoss)."""
    from evaluation.training import fine_tune

    client = api()
    config = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        hard_negatives=hard_negatives,
        max_pairs=max_pairs,
        max_seq_length=max_seq_length,
        learning_rate=learning_rate,
        seed=seed,
        negatives_from=negatives_from,
        holdout=holdout,
    )
    bar = progress_bar(desc=f"mining {negatives_from} negatives", unit="query")

    def progress(done: int, total: int) -> None:
        bar.total, bar.n = total, done
        bar.refresh()
        if done == total:
            bar.close()

    try:
        with errors():
            ref, card = fine_tune(
                client,
                get_settings(),
                collection,
                dataset,
                qrels_path=qrels,
                config=config,
                version=version,
                progress=progress,
            )
    finally:
        bar.close()
    click.echo(json.dumps({"model": ref, **card}, indent=2))
    if reencode:
        _start_and_wait(client, collection, {"text": ref})


@click.command()
@click.argument("collection")
@click.option("--model", "models", multiple=True, required=True, help="ENCODER=MODEL (repeatable).")
@click.option("--wait/--no-wait", default=True, help="Follow the job until the alias switch is done.")
def reencode(collection: str, models: tuple[str, ...], wait: bool) -> None:
    """Re-encode a collection with new models into a new index, then switch its alias."""
    spec = dict(m.split("=", 1) for m in models)
    client = api()
    if wait:
        _start_and_wait(client, collection, spec)
    else:
        click.echo(json.dumps(_start(client, collection, spec), indent=2))


def _start(client: ApiClient, collection: str, models: dict[str, str]) -> dict[str, Any]:
    with errors():
        return client.request("POST", f"/v1/collections/{collection}/reencode", json={"models": models})


def _start_and_wait(client: ApiClient, collection: str, models: dict[str, str]) -> None:
    job = _start(client, collection, models)
    job = wait_job(client, collection, job["id"])
    click.echo(json.dumps(job, indent=2))
    if job["status"] != "done":
        raise click.ClickException(f"re-encode job {job['id']} ended {job['status']}: {job.get('error')}")
