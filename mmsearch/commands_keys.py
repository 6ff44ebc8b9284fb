"""`mmsearch keys create`: a new API key, printed once, and the hashed entry the server stores."""

from __future__ import annotations

import json

import click
from pydantic import ValidationError

from search.security import new_key


@click.group()
def keys() -> None:
    """API keys (MMSEARCH_API_KEYS holds their SHA-256 only)."""


def _names(value: str) -> tuple[str, ...]:
    """A comma-separated option as a tuple of its non-empty items."""
    return tuple(item.strip() for item in value.split(",") if item.strip())


@keys.command("create")
@click.option("--name", required=True, help="Shown in logs and used for rate limits, e.g. `ingest-bot`.")
@click.option("--scope", type=click.Choice(["read", "write", "admin"]), default="read", show_default=True)
@click.option("--user", default=None, help="The user this key acts for (reads documents with `user:<name>`).")
@click.option("--groups", default="", help="Comma-separated groups (reads documents with `group:<name>`).")
@click.option(
    "--collections",
    default="*",
    show_default=True,
    help="Comma-separated collection names or patterns (`hr-*,wiki`) the key may use; others are 404.",
)
def create(*, name: str, scope: str, user: str | None, groups: str, collections: str) -> None:
    """Print a new key (keep it: it is not stored) and its entry for the server's MMSEARCH_API_KEYS list.
    Admin keys see every document of every collection whatever `--user/--groups/--collections` say."""
    try:
        key, entry = new_key(
            name, scope, user=user, groups=_names(groups), collections=_names(collections) or ("*",)
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        raise click.BadParameter(f"{'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    click.echo(f"key:   {key}")
    click.echo(f"entry: {json.dumps(entry.model_dump(mode='json', exclude_defaults=True))}")
    click.echo(
        "Add the entry to the JSON list in MMSEARCH_API_KEYS; clients send `Authorization: Bearer <key>`"
        " (the CLI reads MMSEARCH_API_KEY).",
        err=True,
    )
