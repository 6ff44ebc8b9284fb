"""Client-side reading of document files for `mmsearch ingest`: JSONL, JSON arrays, BEIR corpora."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ingest.beir import iter_corpus, iter_jsonl
from mmsearch.client import ApiClient


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


def ingest_path(client: ApiClient, path: Path, collection: str, chunk_size: int = 500) -> dict[str, Any]:
    with tqdm(desc=f"ingest {path.name}", unit="doc") as bar:
        totals = client.add_documents(
            collection, iter_documents(path), chunk_size=chunk_size, progress=bar.update
        )
    if totals["errors"]:
        tqdm.write(f"{len(totals['errors'])} documents rejected, first: {totals['errors'][0]}")
    return totals
