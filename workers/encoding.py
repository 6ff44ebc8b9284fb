"""Encode a batch of stored documents with their index's encoders and write the vectors back.

Plain functions and one runner object (no Celery here) so the logic is testable. Writes are partial
updates guarded by `if_seq_no`/`if_primary_term`: a document changed since it was read is left to the task
its change queued, and one deleted meanwhile is skipped, so retries and duplicates are harmless. Only
`pending` documents are encoded: a batch delivered again after its work was done does nothing.

A batch is worked through in chunks of its modality's size (`encode_chunk_sizes`). A chunk runs as four
steps, each returning what it produced and the failures it met: claim (the attempt counted on the
documents, here), decode and encode (`workers.inference`), write (here). Memory is bounded whatever the
batch holds. A document whose last run died without a result is worked alone, so a poison input that
kills the worker ends `failed` by itself after `task_max_attempts` runs instead of taking its neighbours
along or looping forever.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.config import get_settings
from core.es import Client, bulk, error_reason, streaming_bulk
from encoders import Encoder, get_encoder
from ingest.blobstore import BlobStore
from ingest.lifecycle import (
    ENCODED,
    FAILED,
    PENDING,
    attempts_of,
    can_transition,
    check_transition,
    claim_update,
    encoded_update,
    error_of,
    failed_update,
    status_of,
)
from workers.inference import Decoded, Encoded, decode, encode

log = logging.getLogger(__name__)

Doc = Mapping[str, Any]  # a hit of an mget: `_id`, `_seq_no`, `_primary_term`, `_source`


class ShardUnavailable(RuntimeError):
    """A shard could not serve a read or write (e.g. recovering after a restart): retry, skip nothing.
    (Not `core.errors.Unavailable`, the 503 a client sees: this one never leaves the worker.)"""


@dataclass(frozen=True)
class BatchResult:
    """Counts of a batch (or of one of its chunks); results of chunks add up."""

    encoded: int = 0
    failed: int = 0
    skipped: int = 0

    def __add__(self, other: BatchResult) -> BatchResult:
        return BatchResult(
            self.encoded + other.encoded, self.failed + other.failed, self.skipped + other.skipped
        )


@dataclass(frozen=True)
class Claimed:
    """The documents a claim made this run's (with the claim's sequence numbers), the attempt number
    each new claim stored, and the documents failed (over the limit) or skipped (changed) by it."""

    docs: tuple[Doc, ...]
    attempts: Mapping[str, int] = field(default_factory=dict)
    result: BatchResult = BatchResult()


# --- the runner -----------------------------------------------------------------------------------


class EncodeRun:
    """One delivery of an encode batch. It owns its progress, kept across in-process retries (after an
    Elasticsearch outage), so a retry neither counts an attempt twice nor redoes written documents, and
    the task can tell, at its time limit, which chunk was under way and which documents never started."""

    def __init__(
        self,
        index: str,
        ids: Sequence[str],
        *,
        yield_to: Callable[[], bool] | None = None,
        worker: str | None = None,
    ) -> None:
        self.index = index
        self.ids = list(ids)
        # asked between chunks: True stops the run there, the rest left in `remaining()` (a bulk batch
        # making way for interactive work, see workers.tasks)
        self.yield_to = yield_to
        self.yielded = False
        self.worker = worker  # what its claims record as `ingest.claimed_by` (None: nothing)
        self.claimed: dict[str, int] = {}  # id -> the attempt number it was claimed with
        self.done: set[str] = set()
        self.current: list[str] = []  # the chunk being worked on

    def remaining(self) -> list[str]:
        """The ids not started yet (neither done nor in the chunk under way)."""
        return [doc_id for doc_id in self.ids if doc_id not in self.done and doc_id not in self.current]

    def __call__(self, es: Client) -> BatchResult:
        """Encode the `pending` documents among the batch's ids, chunk by chunk."""
        settings = get_settings()
        docs = pending_docs(es, self.index, [doc_id for doc_id in self.ids if doc_id not in self.done])
        result = BatchResult(skipped=len(self.ids) - len(docs))
        worker = self.worker if self.worker and records_claims(es, self.index) else None
        for number, chunk in enumerate(chunks(docs, settings.workers.encode_chunk_sizes)):
            if number and self.yield_to and self.yield_to():
                self.yielded = True
                break
            self.current = [doc["_id"] for doc in chunk]
            claimed = claim(
                es,
                self.index,
                chunk,
                already=self.claimed.keys(),
                max_attempts=settings.workers.task_max_attempts,
                worker=worker,
            )
            self.claimed.update(claimed.attempts)
            result += claimed.result
            if claimed.docs:
                result += encode_chunk(es, self.index, claimed.docs, self.claimed)
            self.done.update(self.current)
            self.current = []
        return result


def pending_docs(es: Client, index: str, ids: Sequence[str]) -> list[Doc]:
    """The documents among `ids` that are (still) `pending`, as stored now."""
    if not ids:
        return []
    resp = es.mget(index=index, ids=ids, source_excludes=["search_stemmed", "vectors", "passages"])
    _raise_unavailable(resp)
    return [d for d in resp["docs"] if d.get("found") and status_of(d["_source"]) == PENDING]


def chunks(docs: Iterable[Doc], sizes: Mapping[str, int]) -> list[list[Doc]]:
    """Chunks of one modality each, of that modality's size; a document whose last run died goes alone."""
    out: list[list[Doc]] = []
    by_modality: dict[str, list[Doc]] = {}
    for doc in docs:
        if attempts_of(doc["_source"]):
            out.append([doc])
        else:
            by_modality.setdefault(doc["_source"].get("modality") or "text", []).append(doc)
    for modality, group in by_modality.items():
        size = max(1, sizes.get(modality, sizes.get("text", 64)))
        out.extend(group[start : start + size] for start in range(0, len(group), size))
    return out


# --- claim ----------------------------------------------------------------------------------------


def claim(
    es: Client,
    index: str,
    chunk: Sequence[Doc],
    *,
    already: Collection[str],
    max_attempts: int,
    worker: str | None = None,
) -> Claimed:
    """Count the attempt on each document before any work (guarded writes), naming the `worker` that
    holds it; those in `already` were claimed before an outage of this same delivery and are not counted
    again. A document over the limit is failed here instead."""
    partials = {
        doc["_id"]: claim_update(doc["_source"], max_attempts, worker=worker)
        for doc in chunk
        if doc["_id"] not in already
    }
    by_id = {doc["_id"]: doc for doc in chunk}
    actions = [_guarded(index, by_id[doc_id], partial) for doc_id, partial in partials.items()]
    owned = {doc_id: doc for doc_id, doc in by_id.items() if doc_id not in partials}
    attempts: dict[str, int] = {}
    failed = skipped = 0
    for ok, item in streaming_bulk(es, actions, raise_on_error=False, raise_on_exception=True):
        out = item["update"]
        if not ok:
            skipped += _refused(out)
            continue
        partial = partials[out["_id"]]
        if status_of(partial) == FAILED:
            log.warning("document %s in %s: %s", out["_id"], index, error_of(partial))
            failed += 1
            continue
        owned[out["_id"]] = {
            **by_id[out["_id"]],
            "_seq_no": out["_seq_no"],
            "_primary_term": out["_primary_term"],
        }
        attempts[out["_id"]] = attempts_of(partial)
    docs = tuple(owned[doc["_id"]] for doc in chunk if doc["_id"] in owned)
    return Claimed(docs, attempts, BatchResult(failed=failed, skipped=skipped))


# --- the chunk: decode, encode, write ---------------------------------------------------------------


_MAPPING_CACHE: dict[str, tuple[float, dict[str, Any]]] = {}


def _mapping(es: Client, index: str) -> dict[str, Any]:
    """The physical index's mapping (cached a minute per process)."""
    hit = _MAPPING_CACHE.get(index)
    if not hit or time.monotonic() - hit[0] > 60:
        hit = (time.monotonic(), es.indices.get_mapping(index=index)[index]["mappings"])
        _MAPPING_CACHE[index] = hit
    return hit[1]


def _meta(es: Client, index: str) -> dict[str, Any]:
    """The physical index's `_meta`: what its vectors mean."""
    return _mapping(es, index).get("_meta", {})


def records_claims(es: Client, index: str) -> bool:
    """Whether the index maps `ingest.claimed_by` (one made before it, not upgraded yet, would refuse
    the field: its mapping is strict)."""
    ingest = _mapping(es, index).get("properties", {}).get("ingest", {}).get("properties", {})
    return "claimed_by" in ingest


def encoders_for(es: Client, index: str) -> list[Encoder]:
    """The encoders the index's `_meta` names, with the models its vectors come from."""
    return [
        get_encoder(name, desc.get("model")) for name, desc in _meta(es, index).get("encoders", {}).items()
    ]


def encode_chunk(es: Client, index: str, docs: Sequence[Doc], attempts: Mapping[str, int]) -> BatchResult:
    """Decode and extract item by item, encode the chunk per encoder, write the chunk's results."""
    meta = _meta(es, index)
    encoders = encoders_for(es, index)
    decoded = decode(docs, meta.get("extractors", []), BlobStore.from_settings(get_settings()))
    encoded = encode(encoders, [enc for enc in encoders if enc.name in meta.get("passages", [])], decoded)
    actions = [
        _guarded(
            index, doc, update_body(doc, decoded=decoded, encoded=encoded, attempt=attempts.get(doc["_id"]))
        )
        for doc in docs
    ]
    return write(es, actions, failed={**decoded.failures, **encoded.failures})


def update_body(doc: Doc, *, decoded: Decoded, encoded: Encoded, attempt: int | None) -> dict[str, Any]:
    """The document's partial update after its chunk: failed with the first reason met, else encoded.
    The status change is checked against the lifecycle's transitions (from the stored `pending`)."""
    doc_id, source = doc["_id"], doc["_source"]
    error = decoded.failures.get(doc_id) or encoded.failures.get(doc_id)
    if error:
        check_transition(status_of(source), FAILED)
        return failed_update(error, attempt)
    check_transition(status_of(source), ENCODED)
    return encoded_update(
        source,
        dict(encoded.vectors.get(doc_id, {})),
        encoded.versions,
        decoded.extractions.get(doc_id),
        attempts=attempt,
        passages=encoded.passages.by_doc.get(doc_id),
        passages_truncated=doc_id in encoded.passages.truncated,
    )


def write(es: Client, actions: Sequence[dict[str, Any]], failed: Collection[str]) -> BatchResult:
    """Send the chunk's guarded updates; `failed`: the ids whose update marks them failed."""
    counts = {"encoded": 0, "failed": 0, "skipped": 0}
    for ok, item in streaming_bulk(es, actions, raise_on_error=False, raise_on_exception=True, max_retries=3):
        out = item["update"]
        if not ok:
            counts["skipped"] += _refused(out)
        else:
            counts["failed" if out["_id"] in failed else "encoded"] += 1
    return BatchResult(**counts)


# --- guarded writes -------------------------------------------------------------------------------


def _raise_unavailable(resp: Mapping[str, Any]) -> None:
    """An mget answers per document; one whose shard is unavailable carries an error, not `found`. A deleted
    index (the collection is gone) is not an outage: its documents are skipped like deleted ones."""
    for doc in resp.get("docs", []):
        error = doc.get("error")
        if error and not (isinstance(error, dict) and error.get("type") == "index_not_found_exception"):
            raise ShardUnavailable(f"reading {doc.get('_id')} failed: {error_reason(doc['error'])}")


def _refused(out: Mapping[str, Any]) -> int:
    """A guarded write refused: changed since read (409: its own task encodes it) or deleted (404) is a
    skip (returns 1); an overloaded or unavailable shard is retried; anything else is an error of the
    batch."""
    status = out.get("status") or 0
    if status in (404, 409):
        return 1
    if status == 429 or status >= 500:
        raise ShardUnavailable(f"writing to {out['_id']} failed: {error_reason(out.get('error'))}")
    raise RuntimeError(f"writing to {out['_id']} failed: {error_reason(out.get('error'))}")


def _guarded(index: str, doc: Doc, partial: dict[str, Any]) -> dict[str, Any]:
    """A partial update that applies only if the document is as read (`if_seq_no`/`if_primary_term`)."""
    return {
        "_op_type": "update",
        "_index": index,
        "_id": doc["_id"],
        "if_seq_no": doc["_seq_no"],
        "if_primary_term": doc["_primary_term"],
        "doc": partial,
    }


def mark_failed(es: Client, index: str, ids: Sequence[str], reason: str) -> int:
    """Last resort when a batch cannot go on: say why on each of its documents that may still fail (the
    `pending` ones: never one already encoded). Returns how many were marked."""
    if not ids:
        return 0
    resp = es.mget(index=index, ids=ids, source_includes=["ingest.status"])
    _raise_unavailable(resp)
    actions = [
        _guarded(index, d, failed_update(reason))
        for d in resp["docs"]
        if d.get("found") and can_transition(status_of(d["_source"]), FAILED)
    ]
    ok, _ = bulk(es, actions, raise_on_error=False)
    return ok
