"""Readers of BEIR-format datasets (corpus.jsonl[.gz], queries.jsonl[.gz], qrels tsv)."""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO


def _open(path: Path) -> TextIO:
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else path.open(encoding="utf-8")


def find(directory: Path, stem: str) -> Path:
    for name in (f"{stem}.jsonl", f"{stem}.jsonl.gz"):
        if (directory / name).exists():
            return directory / name
    raise FileNotFoundError(f"no {stem}.jsonl[.gz] in {directory}")


def iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with _open(path) as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def iter_corpus(path: Path) -> Iterator[dict[str, Any]]:
    """BEIR corpus rows (`_id`, `title`, `text`) -> API documents (`id`, `title`, `text`)."""
    for row in iter_jsonl(path):
        doc = {
            "id": str(row.get("_id", row.get("id"))),
            "title": row.get("title") or None,
            "text": row["text"],
        }
        doc["metadata"] = row.get("metadata") or {}
        yield doc


def load_queries(path: Path) -> dict[str, str]:
    return {str(row["_id"]): row["text"] for row in iter_jsonl(path)}


def load_qrels(path: Path) -> dict[str, dict[str, int]]:
    """query-id -> {doc-id: relevance}; the header row of BEIR tsv files is skipped."""
    qrels: dict[str, dict[str, int]] = {}
    with _open(path) as handle:
        for row in csv.reader(handle, delimiter="\t"):
            if len(row) < 3 or row[0] == "query-id":
                continue
            qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    return qrels
