"""`mmsearch demo`: load a small demo collection through the API and show a few searches."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from ingest.beir import iter_jsonl
from mmsearch.client import ApiClient
from mmsearch.config import get_settings

DEMO_QUERIES = [
    ("lexical", "sourdough starter"),
    ("vector", "baking loaves with natural leavening"),
    ("hybrid", "how do oceans suffer from warming"),
    ("hybrid", "vector search graph index"),
]


def load_articles(client: ApiClient, collection: str) -> None:
    path = Path(str(resources.files("mmsearch").joinpath("demo_data/articles.jsonl")))
    client.add_documents(collection, iter_jsonl(path), refresh=True)


@click.command()
@click.option("--collection", "-c", default="demo", show_default=True)
@click.option("--reset/--keep", default=True, help="Recreate the demo collection.")
def demo(collection: str, reset: bool) -> None:
    """Create and fill a demo collection, wait for encoding, print example searches and the API URL."""
    settings = get_settings()
    client = ApiClient(settings.api_base, settings.api_keys[0] if settings.api_keys else None)
    console = Console()
    if reset and client.collection_exists(collection):
        client.delete_collection(collection)
    if not client.collection_exists(collection):
        client.create_collection(collection)
        load_articles(client, collection)
    with console.status("encoding documents in the worker..."):
        counts = client.wait_encoded(collection, timeout=1800)
    console.print(f"collection [bold]{collection}[/]: {counts}")
    for mode, query in DEMO_QUERIES:
        result = client.search(collection, query, mode=mode, size=3, explain=True)
        table = Table("#", "id", "score", "title", "components", title=f"{mode}: {query!r}")
        for hit in result["hits"]:
            parts = ", ".join(
                f"{name} #{int(c['rank'])}" for name, c in hit["explanation"]["components"].items()
            )
            table.add_row(
                str(hit["rank"]), hit["id"], f"{hit['score']:.4f}", hit["source"].get("title", ""), parts
            )
        console.print(table)
    console.print(
        f"API: {settings.api_base}  (try: curl -s -XPOST {settings.api_base}/v1/collections/"
        f"{collection}/search -H 'Content-Type: application/json' -d '{{\"query\": \"solar power\"}}')"
    )
    console.print("Stop everything with: make down")
