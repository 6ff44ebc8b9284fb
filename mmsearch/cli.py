"""`mmsearch` command line: the embedded stack, collections, ingest and search (through the HTTP API)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table
from tqdm import tqdm

from client.api import ApiClient, ApiClientError
from core.config import get_settings

console = Console()


def api() -> ApiClient:
    return ApiClient.from_settings()


@click.group()
def main() -> None:
    """Multimodal hybrid search on Elasticsearch."""


@main.command()
def up() -> None:
    """Start what is not configured externally (Elasticsearch, Redis, worker, API) and wait until healthy."""
    from client import stack

    stack.up(get_settings())
    _print_status()


@main.command()
def down() -> None:
    """Stop the embedded stack."""
    from client import stack

    stack.down(get_settings())
    _print_status()


@main.command()
def status() -> None:
    """Each component, its state and URL."""
    _print_status()


def _print_status() -> None:
    from client import stack

    table = Table("component", "state", "pid", "url")
    for row in stack.status(get_settings()):
        table.add_row(row["name"], row["state"], str(row.get("pid") or ""), row.get("url") or "")
    console.print(table)


@main.command()
@click.option("--queues", default=None, help="Comma-separated Celery queues to consume.")
@click.option("--concurrency", default=1, show_default=True)
def worker(queues: str | None, concurrency: int) -> None:
    """Run a Celery encoding worker in the foreground (what docker-compose runs)."""
    args = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers.celery_app",
        "worker",
        "--loglevel",
        "INFO",
        "--pool",
        "solo" if concurrency == 1 else "prefork",
        "--concurrency",
        str(concurrency),
    ]
    if queues:
        args += ["-Q", queues]
    os.execv(sys.executable, args)


@main.command()
@click.option("--workers", default=2, show_default=True)
def serve(workers: int) -> None:
    """Run the HTTP API under gunicorn in the foreground."""
    settings = get_settings()
    os.execv(
        sys.executable,
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            str(workers),
            "--threads",
            "4",
            "--timeout",
            "120",
            "--bind",
            f"{settings.api_host}:{settings.api_port}",
            "search.app:create_app()",
        ],
    )


@main.group()
def collections() -> None:
    """Create, list and delete collections."""


@collections.command("create")
@click.argument("name")
@click.option("--encoder", "encoders", multiple=True, help="Encoder to use (repeatable); default: settings.")
@click.option("--model", "models", multiple=True, help="ENCODER=MODEL override (repeatable).")
@click.option("--extractor", "extractors", multiple=True, help="Extractor to run (ocr, asr).")
def collections_create(
    name: str, encoders: tuple[str, ...], models: tuple[str, ...], extractors: tuple[str, ...]
) -> None:
    spec: dict = {}
    if encoders:
        spec["encoders"] = list(encoders)
    if models:
        spec["models"] = dict(m.split("=", 1) for m in models)
    if extractors:
        spec["extractors"] = list(extractors)
    _echo_json(_call(api().create_collection, name, **spec))


@collections.command("list")
def collections_list() -> None:
    for name in _call(api().list_collections):
        click.echo(name)


@collections.command("show")
@click.argument("name")
def collections_show(name: str) -> None:
    _echo_json(_call(api().collection, name))


@collections.command("delete")
@click.argument("name")
def collections_delete(name: str) -> None:
    _echo_json(_call(api().delete_collection, name))


@main.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--collection", "-c", required=True)
@click.option("--wait/--no-wait", default=False, help="Return when every document is encoded or failed.")
@click.option("--create/--no-create", default=True, help="Create the collection when missing.")
@click.option("--chunk-size", default=500, show_default=True)
def ingest(path: Path, collection: str, wait: bool, create: bool, chunk_size: int) -> None:
    """Ingest JSONL/JSON documents ({id?, title?, text, metadata?}), a BEIR corpus, or files and folders."""
    from client.upload import ingest_path

    client = api()
    if create and not _call(client.collection_exists, collection):
        _call(client.create_collection, collection)
    ingest_path(client, path, collection, chunk_size, refresh=wait)
    if wait:
        _wait(client, collection)


def _wait(client: ApiClient, collection: str) -> None:
    counts = client.collection(collection)["documents"]
    with tqdm(total=counts.get("total", 0), desc="encoding", unit="doc") as bar:

        def progress(c: dict) -> None:
            bar.total = c.get("total", 0)
            bar.n = bar.total - c.get("pending", 0)
            bar.refresh()

        counts = _call(client.wait_encoded, collection, progress=progress)
    click.echo(json.dumps(counts))


@main.command()
@click.argument("query")
@click.option("--collection", "-c", required=True)
@click.option(
    "--mode", type=click.Choice(["lexical", "vector", "hybrid"]), default="hybrid", show_default=True
)
@click.option("--fusion", type=click.Choice(["rrf", "linear"]), default=None)
@click.option("--size", default=10, show_default=True)
@click.option("--profile", default=None)
@click.option("--json", "as_json", is_flag=True, help="Print the raw API response.")
def search(
    query: str, collection: str, mode: str, fusion: str | None, size: int, profile: str | None, as_json: bool
) -> None:
    """Search a collection."""
    params: dict = {"mode": mode, "size": size, "explain": True, "highlight": True}
    if fusion:
        params["fusion"] = {"method": fusion}
    if profile:
        params["profile"] = profile
    result = _call(api().search, collection, query, **params)
    if as_json:
        _echo_json(result)
        return
    table = Table("#", "id", "score", "title / text", "components", title=f"{query!r} ({mode})")
    for hit in result["hits"]:
        src = hit["source"]
        text = (src.get("title") or src.get("content") or "")[:80]
        parts = ", ".join(
            f"{k} #{int(v['rank'])}" for k, v in hit.get("explanation", {}).get("components", {}).items()
        )
        table.add_row(str(hit["rank"]), hit["id"], f"{hit['score']:.4f}", text, parts)
    console.print(table)


def _call(fn, *args, **kwargs):  # noqa: ANN001, ANN202 - thin error translation for the CLI
    try:
        return fn(*args, **kwargs)
    except ApiClientError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot reach the API at {get_settings().api_base}: {exc}") from None


def _echo_json(data: object) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


from mmsearch.demo import demo  # noqa: E402

main.add_command(demo)

from mmsearch.cli_eval import bench, evaluate, tune  # noqa: E402

main.add_command(evaluate, "eval")
main.add_command(tune)
main.add_command(bench)

from mmsearch.cli_train import reencode, train  # noqa: E402

main.add_command(train)
main.add_command(reencode)

if __name__ == "__main__":
    main()
