"""`mmsearch demo`: a small mixed collection (articles, images, speech) loaded through the API; searches."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

import click
from rich.table import Table

from client.api import ApiClient, ApiClientError
from core.config import get_settings
from ingest.beir import iter_jsonl
from mmsearch.common import api, console, errors

IMAGES = ["astronaut", "coffee", "chelsea", "rocket", "horse", "page"]  # skimage.data, offline
SPEECH = {
    "forecast": "the weather forecast predicts heavy rain tomorrow",
    "budget": "please review the annual budget report",
}
ENCODERS = ["text", "clip", "phash", "mfcc"]
EXTRACTORS = ["ocr", "asr"]


def make_media(folder: Path) -> list[Path]:
    """Real images from scikit-image and speech from espeak-ng (each skipped with a note when missing)."""
    paths: list[Path] = []
    try:
        from PIL import Image
        from skimage import data

        for name in IMAGES:
            path = folder / f"{name}.png"
            Image.fromarray(getattr(data, name)()).save(path)
            paths.append(path)
    except ImportError:
        click.echo("scikit-image is not installed: no demo images")
    if shutil.which("espeak-ng") and shutil.which("sox"):
        for name, sentence in SPEECH.items():
            raw, wav = folder / f"{name}-raw.wav", folder / f"{name}.wav"
            subprocess.run(["espeak-ng", "-v", "en-us+f2", "-s", "150", "-w", str(raw), sentence], check=True)
            subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", str(wav)], check=True)
            paths.append(wav)
    else:
        click.echo("espeak-ng/sox are not installed: no demo speech")
    return paths


def create_collection(client: ApiClient, collection: str) -> None:
    """All media encoders; CLIP only where its weights can be loaded (hub or MODELS_DIR)."""
    try:
        client.create_collection(collection, encoders=ENCODERS, extractors=EXTRACTORS)
    except ApiClientError as exc:
        console.print(f"[yellow]CLIP unavailable ({str(exc)[:120]}...); demo runs without it[/]")
        client.create_collection(
            collection, encoders=[e for e in ENCODERS if e != "clip"], extractors=EXTRACTORS
        )


def show(title: str, result: dict) -> None:
    table = Table("#", "modality", "title / file", "score", "components", title=title)
    for hit in result["hits"]:
        src = hit["source"]
        label = src.get("title") or src.get("source", {}).get("filename", hit["id"])
        parts = ", ".join(f"{name} #{int(c['rank'])}" for name, c in hit["explanation"]["components"].items())
        table.add_row(str(hit["rank"]), src.get("modality", ""), label[:50], f"{hit['score']:.4f}", parts)
    console.print(table)


@click.command()
@click.option("--collection", "-c", default="demo", show_default=True)
@click.option("--reset/--keep", default=True, help="Recreate the demo collection.")
def demo(collection: str, reset: bool) -> None:
    """Fill a mixed demo collection, wait for the workers, print example searches and the API URL."""
    settings = get_settings()
    client = api()
    with errors(), tempfile.TemporaryDirectory() as tmp:
        if reset and client.collection_exists(collection):
            client.delete_collection(collection)
        if not client.collection_exists(collection):
            fill(client, collection, Path(tmp))
        with console.status("encoding in the worker (OCR, speech-to-text, embeddings)..."):
            counts = client.wait_encoded(collection, timeout=1800)
        console.print(f"collection [bold]{collection}[/]: {counts}")
        for mode, query in [
            ("lexical", "sourdough starter"),
            ("vector", "baking loaves with natural leavening"),
            ("hybrid", "how do oceans suffer from warming"),
            ("hybrid", "rain tomorrow"),
            ("hybrid", "budget report"),
        ]:
            show(f"{mode}: {query!r}", client.search(collection, query, mode=mode, size=3, explain=True))
        example = Path(tmp) / "astronaut.png"
        if example.exists():
            show(
                "query by example: astronaut.png",
                client.search_by_example(collection, example, size=3, explain=True),
            )
    console.print(
        f"Search page: {settings.api.api_base}/   API: {settings.api.api_base}/v1/collections/{collection}"
    )
    console.print("Stop everything with: make down")


def fill(client: ApiClient, collection: str, tmp: Path) -> None:
    """The collection with its encoders, the bundled articles and the media made in `tmp`."""
    create_collection(client, collection)
    articles = Path(str(resources.files("mmsearch").joinpath("demo_data/articles.jsonl")))
    client.add_documents(collection, iter_jsonl(articles), refresh=True)
    media = make_media(tmp)
    if media:
        client.add_files(collection, media, refresh=True)
