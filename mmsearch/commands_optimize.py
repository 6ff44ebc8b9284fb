"""`mmsearch optimize`: merge collections' segments once a bulk load is encoded. An operator's job, sent
to the engine directly like `snapshot` (a merge can take longer than any HTTP request should)."""

from __future__ import annotations

import click

from core.config import get_settings
from core.es import make_client
from ingest import optimize as merging
from mappings import catalog
from mmsearch.common import echo_json, errors


@click.command()
@click.option(
    "--collection", "-c", "names", multiple=True, help="A collection to merge (repeatable); default: all."
)
@click.option("--segments", default=1, show_default=True, type=click.IntRange(min=1), help="Per shard.")
def optimize(names: tuple[str, ...], segments: int) -> None:
    """Merge segments after a bulk load: every segment is one more HNSW graph for a vector search to visit.
    Prints the segment counts before and after; documents still pending will add segments again."""
    settings = get_settings()
    with errors(), make_client(settings) as es:
        chosen = list(names) or catalog.list_names(es, settings)
        echo_json([merging.optimize(es, settings, name, segments) for name in chosen])
