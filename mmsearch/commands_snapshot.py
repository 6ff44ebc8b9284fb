"""`mmsearch snapshot create|list|restore`: back up collections with their state and blobs, and bring
them back. Run on the machine that holds the data dir (blobs are copied from and to its blob store)."""

from __future__ import annotations

import click
from rich.table import Table

from core.config import get_settings
from core.es import make_client
from ingest import snapshots
from mmsearch.common import console, echo_json, errors

COLLECTION = click.option(
    "--collection", "names", multiple=True, help="A collection to include (repeatable); default: all."
)


@click.group()
def snapshot() -> None:
    """Backups: the engine's snapshot of the indices, plus the profiles, jobs and blobs of each collection."""


@snapshot.command("create")
@COLLECTION
@click.option("--name", default=None, help="The snapshot's name (default: snap-<UTC date-time>).")
def create(names: tuple[str, ...], name: str | None) -> None:
    """Snapshot collections; prints the manifest (collections, indices, documents, blobs)."""
    settings = get_settings()
    with errors():
        manifest = snapshots.create(make_client(settings), settings, list(names) or None, name)
    echo_json(
        {
            "snapshot": manifest["snapshot"],
            "collections": {
                n: {"documents": c["documents"], "blobs": len(c["blobs"]), "missing": c["missing_blobs"]}
                for n, c in manifest["collections"].items()
            },
        }
    )


@snapshot.command("list")
def list_() -> None:
    """The snapshots of the repository and the collections each holds."""
    settings = get_settings()
    with errors():
        found = snapshots.list_snapshots(make_client(settings), settings)
    table = Table("snapshot", "state", "started", "collections (documents, blobs)")
    for snap in found:
        held = ", ".join(f"{n} ({c['documents']}, {c['blobs']})" for n, c in snap["collections"].items())
        table.add_row(snap["snapshot"], str(snap["state"]), str(snap["start_time"]), held)
    console.print(table)


@snapshot.command("restore")
@click.argument("name")
@COLLECTION
def restore(name: str, names: tuple[str, ...]) -> None:
    """Restore collections (default: every one in the snapshot) that do not exist now."""
    settings = get_settings()
    with errors():
        echo_json(snapshots.restore(make_client(settings), settings, name, list(names) or None))
