"""Small BEIR folders cut from SciFact for the end-to-end tests of eval, tune and train."""

from __future__ import annotations

import gzip
import json
import os
from itertools import islice
from pathlib import Path

import pytest

from ingest.beir import find, iter_jsonl, load_qrels

ROOT = Path(__file__).resolve().parent.parent
CANDIDATES = [
    Path(p)
    for p in (
        os.environ.get("MMSEARCH_SCIFACT_DIR"),
        ROOT / "data" / "scifact",
        ROOT.parent / "shared" / "data" / "scifact",
    )
    if p
]
QRELS = "qrels-train.tsv"


def scifact_dir() -> Path:
    """The data is part of the project's checkout (../shared); its absence is a broken setup, not a skip."""
    for path in CANDIDATES:
        if (path / QRELS).exists():
            return path
    pytest.fail(f"SciFact not found (set MMSEARCH_SCIFACT_DIR); looked in {[str(p) for p in CANDIDATES]}")


def write_slice(out: Path, queries: int, docs: int) -> Path:
    """The first `queries` training queries, their judged abstracts, and other abstracts up to `docs`."""
    source = scifact_dir()
    qrels = load_qrels(source / QRELS)
    qids = sorted(qrels, key=int)[:queries]
    wanted = {doc for qid in qids for doc in qrels[qid]}
    rows = [row for row in iter_jsonl(find(source, "corpus")) if row["_id"] in wanted]
    others = (row for row in iter_jsonl(find(source, "corpus")) if row["_id"] not in wanted)
    rows += islice(others, max(docs - len(rows), 0))
    with gzip.open(out / "corpus.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows)
    judged = [row for row in iter_jsonl(find(source, "queries")) if row["_id"] in qids]
    (out / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in judged))
    lines = [f"{qid}\t{doc}\t{rel}" for qid in qids for doc, rel in qrels[qid].items()]
    (out / QRELS).write_text("query-id\tcorpus-id\tscore\n" + "\n".join(lines) + "\n")
    return out
