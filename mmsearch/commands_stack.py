"""`mmsearch up`, `down`, `status`, `worker`, `serve` and `migrate`: the services, embedded or in the
foreground, and the one-off moves of data older versions wrote."""

from __future__ import annotations

import os

import click
from rich.table import Table

import stack
from core.config import get_settings
from core.es import get_client
from mappings.catalog import upgrade
from mmsearch.common import console
from search.security import InsecureConfiguration, check_bind


@click.command()
def up() -> None:
    """Start what is not configured externally (Elasticsearch, Redis, worker, API) and wait until healthy."""
    stack.up(get_settings())
    _print_status()


@click.command()
def down() -> None:
    """Stop the embedded stack."""
    stack.down(get_settings())
    _print_status()


@click.command()
def status() -> None:
    """Each component, its state and URL."""
    _print_status()


def _print_status() -> None:
    table = Table("component", "state", "pid", "url")
    for row in stack.status(get_settings()):
        table.add_row(row["label"], row["state"], str(row.get("pid") or ""), row.get("url") or "")
    console.print(table)


@click.command()
@click.option("--queues", default=None, help="Comma-separated Celery queues to consume.")
@click.option("--concurrency", default=1, show_default=True)
@click.option("--hostname", default=None, help="Celery node name, e.g. worker@%h (default: celery@%h).")
def worker(queues: str | None, concurrency: int, hostname: str | None) -> None:
    """Run a Celery encoding worker in the foreground (what docker-compose runs)."""
    argv = stack.worker_command(queues, concurrency, hostname)
    os.execv(argv[0], argv)


@click.command()
@click.option("--workers", default=2, show_default=True)
def serve(workers: int) -> None:
    """Run the HTTP API under gunicorn in the foreground (what docker-compose runs)."""
    settings = get_settings()
    try:
        check_bind(settings)
    except InsecureConfiguration as exc:
        raise click.ClickException(str(exc)) from None
    argv = stack.api_command(settings, workers)
    os.execv(argv[0], argv)


@click.command()
def migrate() -> None:
    """Upgrade collections made by older versions: crawl fields added to their mappings, profiles and jobs
    kept in `_meta` moved to the state index (a starting worker does it too; safe to repeat)."""
    moved = upgrade(get_client(), get_settings())
    for name, count in sorted(moved.items()):
        console.print(f"{name}: {count} profiles/jobs moved to the state index")
    console.print(f"{len(moved)} collections migrated")
