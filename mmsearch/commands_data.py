"""`mmsearch collections`, `ingest` and `search`: a collection's life, through the HTTP API."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.table import Table

from mmsearch.common import api, console, echo_json, errors, wait_encoded


@click.group()
def collections() -> None:
    """Create, list and delete collections."""


@collections.command("create")
@click.argument("name")
@click.option("--encoder", "encoders", multiple=True, help="Encoder to use (repeatable); default: settings.")
@click.option("--model", "models", multiple=True, help="ENCODER=MODEL override (repeatable).")
@click.option("--extractor", "extractors", multiple=True, help="Extractor to run (ocr, asr).")
@click.option(
    "--passages/--no-passages", default=True, show_default=True, help="Passage vectors for long texts."
)
@click.option("--max-documents", type=click.IntRange(min=0), help="Quota: documents held (0 = unlimited).")
@click.option("--max-bytes", type=click.IntRange(min=0), help="Quota: bytes of stored files (0 = unlimited).")
@click.option(
    "--default-readers",
    "default_readers",
    multiple=True,
    help="Readers of documents that name none: *, user:NAME or group:NAME (repeatable; default *).",
)
def collections_create(
    *,
    name: str,
    encoders: tuple[str, ...],
    models: tuple[str, ...],
    extractors: tuple[str, ...],
    passages: bool,
    max_documents: int | None,
    max_bytes: int | None,
    default_readers: tuple[str, ...],
) -> None:
    spec: dict = {"passages": passages}
    quota = {"max_documents": max_documents, "max_bytes": max_bytes}
    spec.update({key: value for key, value in quota.items() if value is not None})
    if encoders:
        spec["encoders"] = list(encoders)
    if models:
        spec["models"] = dict(m.split("=", 1) for m in models)
    if extractors:
        spec["extractors"] = list(extractors)
    if default_readers:
        spec["default_readers"] = list(default_readers)
    with errors():
        echo_json(api().create_collection(name, **spec))


@collections.command("list")
def collections_list() -> None:
    with errors():
        names = api().list_collections()
    for name in names:
        click.echo(name)


@collections.command("show")
@click.argument("name")
def collections_show(name: str) -> None:
    with errors():
        echo_json(api().collection(name))


@collections.command("delete")
@click.argument("name")
def collections_delete(name: str) -> None:
    with errors():
        echo_json(api().delete_collection(name))


@click.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--collection", "-c", required=True)
@click.option("--wait/--no-wait", default=False, help="Return when every document is encoded or failed.")
@click.option("--create/--no-create", default=True, help="Create the collection when missing.")
@click.option("--chunk-size", default=500, show_default=True)
def ingest(*, path: Path, collection: str, wait: bool, create: bool, chunk_size: int) -> None:
    """Ingest JSONL/JSON documents ({id?, title?, text, metadata?}), a BEIR corpus, or files and folders."""
    from client.upload import ingest_path

    client = api()
    with errors():
        if create and not client.collection_exists(collection):
            client.create_collection(collection)
        ingest_path(client, path, collection, chunk_size, refresh=wait)
    if wait:
        click.echo(json.dumps(wait_encoded(client, collection)))


@click.command()
@click.argument("root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--collection", "-c", required=True)
@click.option(
    "--include", multiple=True, help="Glob on the path relative to ROOT (repeatable); default: all."
)
@click.option("--exclude", multiple=True, help="Glob of paths to leave out (repeatable), e.g. 'drafts/*'.")
@click.option("--follow-symlinks", is_flag=True, help="Follow links that stay inside ROOT (others: skipped).")
@click.option("--watch", is_flag=True, help="Crawl again every --interval seconds, until Ctrl-C.")
@click.option("--interval", default=10.0, show_default=True, type=click.FloatRange(min=0.5))
@click.option("--create/--no-create", default=True, help="Create the collection when missing.")
@click.option("--verbose", "-v", is_flag=True, help="List unchanged files too.")
def crawl(
    *,
    root: Path,
    collection: str,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    follow_symlinks: bool,
    watch: bool,
    interval: float,
    create: bool,
    verbose: bool,
) -> None:
    """Make a collection mirror a folder: index new and changed files, delete the documents of files gone.

    Only files whose size, mtime and sha256 differ from the collection's record are sent; a file keeps
    its document id across edits. Hidden files are skipped and the crawl never leaves ROOT.
    """
    from tqdm import tqdm

    from client.crawl import FileReport, summary
    from client.crawl import crawl as crawl_once
    from client.crawl import watch as watch_loop

    client = api()

    def echo(report: FileReport) -> None:
        if verbose or report.outcome != "unchanged":
            tqdm.write(f"{report.outcome:9} {report.path}" + (f": {report.reason}" if report.reason else ""))

    def run() -> None:
        with errors():
            reports = crawl_once(
                client, root, collection, include, exclude=exclude, follow_symlinks=follow_symlinks, echo=echo
            )
        if verbose:
            for report in reports:
                if report.outcome == "unchanged":
                    echo(report)
        click.echo(", ".join(f"{n} {outcome}" for outcome, n in summary(reports).items()))

    with errors():
        if create and not client.collection_exists(collection):
            client.create_collection(collection)
    if not watch:
        run()
        return
    try:
        watch_loop(run, interval)
    except KeyboardInterrupt:
        click.echo("stopped")


@click.command()
@click.argument("query")
@click.option("--collection", "-c", required=True)
@click.option(
    "--mode", type=click.Choice(["lexical", "vector", "hybrid"]), default="hybrid", show_default=True
)
@click.option("--fusion", type=click.Choice(["rrf", "linear"]), default=None)
@click.option("--size", default=10, show_default=True)
@click.option("--profile", default=None)
@click.option("--cutoff/--no-cutoff", default=True, help="Stop where relevance ends (the profile's rule).")
@click.option("--json", "as_json", is_flag=True, help="Print the raw API response.")
def search(
    *,
    query: str,
    collection: str,
    mode: str,
    fusion: str | None,
    size: int,
    profile: str | None,
    cutoff: bool,
    as_json: bool,
) -> None:
    """Search a collection."""
    params: dict = {"mode": mode, "size": size, "explain": True, "highlight": True, "cutoff": cutoff}
    if fusion:
        params["fusion"] = {"method": fusion}
    if profile:
        params["profile"] = profile
    with errors():
        result = api().search(collection, query, **params)
    if as_json:
        echo_json(result)
        return
    title = f"{query!r} ({mode}): {result['total']} results"
    table = Table("#", "id", "score", "title / text", "components", title=title)
    for hit in result["hits"]:
        src = hit["source"]
        text = (src.get("title") or src.get("content") or "")[:80]
        parts = ", ".join(
            f"{k} #{int(v['rank'])}" for k, v in hit.get("explanation", {}).get("components", {}).items()
        )
        table.add_row(str(hit["rank"]), hit["id"], f"{hit['score']:.4f}", text, parts)
    console.print(table)
