"""Client side of `mmsearch ingest`: JSONL/JSON documents and BEIR corpora, or media files and folders."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tqdm import tqdm

from client.api import ApiClient, ApiClientError
from client.progress import progress
from ingest.beir import iter_corpus, iter_jsonl
from ingest.crawl import iter_files


def iter_documents(path: Path) -> Iterator[dict[str, Any]]:
    name = path.name.removesuffix(".gz")
    if name.endswith(".jsonl"):
        rows = iter_jsonl(path)
        first = next(rows, None)
        if first is None:
            return
        if "_id" in first:  # BEIR corpus
            yield from iter_corpus(path)
        else:
            yield first
            yield from rows
    elif name.endswith(".json"):
        data = json.loads(path.read_text(encoding="utf-8"))
        yield from data if isinstance(data, list) else [data]
    else:
        raise ValueError(f"{path}: expected .jsonl, .jsonl.gz or .json documents")


FILE_BATCH = 16
FILE_BATCH_BYTES = 16 * 1024 * 1024
DOCUMENT_SUFFIXES = (".jsonl", ".jsonl.gz", ".json")


def _file_batches(paths: list[Path]) -> Iterator[list[Path]]:
    batch: list[Path] = []
    size = 0
    for path in paths:
        length = path.stat().st_size
        if batch and (len(batch) >= FILE_BATCH or size + length > FILE_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(path)
        size += length
    if batch:
        yield batch


def upload_files(
    client: ApiClient, paths: list[Path], collection: str, refresh: bool = False
) -> dict[str, Any]:
    """Media and office files through `POST .../files`, a few per request, with a progress bar."""
    totals: dict[str, Any] = {"indexed": 0, "duplicates": 0, "errors": []}
    with progress(total=len(paths), desc="upload", unit="file") as bar:
        for batch in _file_batches(paths):
            try:
                outcomes = client.add_files(collection, batch, refresh=refresh)["files"]
            except ApiClientError as exc:  # every file of the batch refused
                outcomes = [{"filename": p.name, "status": "rejected", "error": str(exc)} for p in batch]
            for outcome in outcomes:
                if outcome["status"] == "pending":
                    totals["indexed"] += 1
                elif outcome["status"] == "duplicate":
                    totals["duplicates"] += 1
                else:
                    totals["errors"].append({"id": outcome.get("filename"), "error": outcome.get("error")})
            bar.update(len(batch))
    return totals


def ingest_path(
    client: ApiClient, path: Path, collection: str, chunk_size: int = 500, *, refresh: bool = False
) -> dict[str, Any]:
    """`refresh`: return only once what was sent is searchable (so a following wait sees it all)."""
    if path.is_dir():
        totals = upload_files(client, list(iter_files(path)), collection, refresh)
    elif path.name.endswith(DOCUMENT_SUFFIXES):
        totals = ingest_documents(client, path, collection, chunk_size, refresh=refresh)
    else:
        totals = upload_files(client, [path], collection, refresh)
    for error in totals["errors"][:10]:
        tqdm.write(f"rejected {error['id']}: {error['error']}")
    return totals


def ingest_documents(
    client: ApiClient, path: Path, collection: str, chunk_size: int = 500, *, refresh: bool = False
) -> dict[str, Any]:
    with progress(desc=f"ingest {path.name}", unit="doc") as bar:
        return client.add_documents(
            collection, iter_documents(path), chunk_size=chunk_size, refresh=refresh, progress=bar.update
        )
