"""Ingest throughput: the bare encoder vs the whole path (API -> Client -> Celery -> vectors back)
with the configured task batch size vs a task per document."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from bench.common import Report, corpus_docs, spawned_api
from client.api import ApiClient
from core.config import get_settings
from encoders import get_encoder
from evaluation.runs import wait_indexed
from ingest.lifecycle import encoder_text


def bare_encoder(docs: list[dict[str, Any]]) -> float:
    """Seconds to encode the texts the worker would encode, in this process, model already loaded."""
    encoder = get_encoder("text")
    texts = [encoder_text({"title": d["title"], "content": d["text"]}) for d in docs]
    encoder.encode(texts[:8])
    started = time.perf_counter()
    encoder.encode(texts)
    return time.perf_counter() - started


def end_to_end(client: ApiClient, docs: list[dict[str, Any]]) -> tuple[float, int]:
    """Seconds from the first POST until no document is pending, in a fresh collection; and the tasks."""
    name = f"bench-ingest-{uuid.uuid4().hex[:8]}"
    client.create_collection(name)
    try:
        started = time.perf_counter()
        out = client.add_documents(name, docs)
        wait_indexed(client, name, len(docs))
        counts = client.wait_encoded(name, poll=0.2)
        elapsed = time.perf_counter() - started
        if counts.get("encoded", 0) != len(docs):
            raise RuntimeError(f"{name}: expected {len(docs)} encoded documents, got {counts}")
        return elapsed, out["tasks"]
    finally:
        client.delete_collection(name)


def run(dataset: Path, n: int = 500) -> Report:
    docs = corpus_docs(dataset, n)
    batch = get_settings().workers.task_batch_size
    bare = bare_encoder(docs)
    with spawned_api({}) as client:
        batched, batched_tasks = end_to_end(client, docs)
    with spawned_api({"MMSEARCH_TASK_BATCH_SIZE": "1"}) as client:
        single, single_tasks = end_to_end(client, docs)
    rows = [
        {"path": "bare encoder (in process)", "tasks": "-", "seconds": bare},
        {"path": f"API + worker, {batch} docs/task", "tasks": batched_tasks, "seconds": batched},
        {"path": "API + worker, 1 doc/task", "tasks": single_tasks, "seconds": single},
    ]
    for row in rows:
        row["docs/s"] = round(len(docs) / row["seconds"], 1)
        row["vs bare"] = round(bare / row["seconds"], 3)
        row["seconds"] = round(row["seconds"], 2)
    return Report(
        "ingest",
        f"ingest of {len(docs)} SciFact abstracts (text encoder)",
        rows,
        [
            "end to end = POST (NDJSON, 500/request) until no document is pending, fresh collection each;",
            "the worker(s) already running on this broker do the encoding (their count and pool matter);",
            "each path runs through a temporary API process; 1 doc/task sets MMSEARCH_TASK_BATCH_SIZE=1.",
        ],
    )
