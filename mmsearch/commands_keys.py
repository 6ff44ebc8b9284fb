"""`mmsearch keys create`: a new API key, printed once, and the hashed entry the server stores."""

from __future__ import annotations

import json

import click

from search.security import new_key


@click.group()
def keys() -> None:
    """API keys (MMSEARCH_API_KEYS holds their SHA-256 only)."""


@keys.command("create")
@click.option("--name", required=True, help="Shown in logs and used for rate limits, e.g. `ingest-bot`.")
@click.option("--scope", type=click.Choice(["read", "write", "admin"]), default="read", show_default=True)
def create(name: str, scope: str) -> None:
    """Print a new key (keep it: it is not stored) and its entry for the server's MMSEARCH_API_KEYS list."""
    key, entry = new_key(name, scope)
    click.echo(f"key:   {key}")
    click.echo(f"entry: {json.dumps(entry.model_dump())}")
    click.echo(
        "Add the entry to the JSON list in MMSEARCH_API_KEYS; clients send `Authorization: Bearer <key>`"
        " (the CLI reads MMSEARCH_API_KEY).",
        err=True,
    )
