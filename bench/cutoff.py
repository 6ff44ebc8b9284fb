"""Where a result set should end, measured on SciFact's training judgments.

The subset: every abstract judged for a training query plus `others` more drawn with a fixed seed (the
whole corpus takes too long to encode on a small CPU)."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

from ingest.beir import find, iter_jsonl, load_qrels

QRELS = "qrels-train.tsv"


def write_subset(source: Path, out: Path, *, others: int = 2000, seed: int = 13) -> Path:
    """A BEIR folder: the training queries, their judgments, their judged abstracts and `others` more."""
    out.mkdir(parents=True, exist_ok=True)
    qrels = load_qrels(source / QRELS)
    judged = {doc for docs in qrels.values() for doc in docs}
    rows = list(iter_jsonl(find(source, "corpus")))
    rest = sorted(row["_id"] for row in rows if row["_id"] not in judged)
    keep = judged | set(random.Random(seed).sample(rest, min(others, len(rest))))
    with gzip.open(out / "corpus.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows if row["_id"] in keep)
    queries = [row for row in iter_jsonl(find(source, "queries")) if row["_id"] in qrels]
    (out / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (out / QRELS).write_text((source / QRELS).read_text())
    return out
