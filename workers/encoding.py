"""Encode a batch of stored documents with their index's encoders and write the vectors back.

Plain functions (no Celery here) so the logic is testable and reusable by re-encode jobs. Writes are
partial updates guarded by `if_seq_no`/`if_primary_term`: a document changed since it was read is left
to the task its change queued, and one deleted meanwhile is skipped, so retries and duplicates are
harmless. Only `pending` documents are encoded: a batch delivered again after its work was done does
nothing.

A batch is worked through in chunks of its modality's size (`encode_chunk_sizes`): each chunk is claimed
(the attempt counted on the documents), decoded item by item, encoded and written before the next one is
decoded, so memory is bounded whatever the batch holds. A document whose last run died without a result
is worked alone, so a poison input that kills the worker ends `failed` by itself after
`task_max_attempts` runs instead of taking its neighbours along or looping forever.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from elasticsearch import Elasticsearch

from core.config import get_settings
from core.es import bulk, error_reason, streaming_bulk
from encoders import Encoder, get_encoder
from encoders.extractor import Extraction, get_extractor
from ingest.blobstore import BlobStore
from ingest.lifecycle import (
    PENDING,
    cap_error,
    claim_update,
    content_and_pages,
    encoded_update,
    encoder_text,
    failed_update,
)
from ingest.pages import pages_to_ocr
from ingest.passages import passages_for
from mappings.collections import index_meta
from media.decode import load_audio, load_image
from media.filetypes import IngestError
from media.pdf import render_pages
from workers.metrics import record_encode

log = logging.getLogger(__name__)


class Unavailable(RuntimeError):
    """A shard could not serve a read or write (e.g. recovering after a restart): retry, skip nothing."""


@dataclass
class BatchResult:
    encoded: int = 0
    failed: int = 0
    skipped: int = 0
    errors: dict[str, str] = field(default_factory=dict)


@dataclass
class Progress:
    """What one delivery of a batch has done so far; kept across its in-process retries, so a retry
    after an Elasticsearch outage neither counts an attempt twice nor redoes written documents."""

    claimed: dict[str, int] = field(default_factory=dict)  # id -> the attempt number it was claimed with
    done: set[str] = field(default_factory=set)
    current: list[str] = field(default_factory=list)  # the chunk being worked on


@dataclass
class Passages:
    """A batch's long documents cut into passages: doc id -> passage objects (vectors filled in by
    `encode_passages`), and the ids cut off at `max_passages`."""

    by_doc: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    truncated: set[str] = field(default_factory=set)


_META_CACHE: dict[str, tuple[float, dict[str, Any]]] = {}


def _meta(es: Elasticsearch, index: str) -> dict[str, Any]:
    """The physical index's `_meta` (cached a minute per process)."""
    hit = _META_CACHE.get(index)
    if not hit or time.monotonic() - hit[0] > 60:
        hit = (time.monotonic(), index_meta(es, index))
        _META_CACHE[index] = hit
    return hit[1]


def encoders_for(es: Elasticsearch, index: str) -> list[Encoder]:
    return [
        get_encoder(name, desc.get("model")) for name, desc in _meta(es, index).get("encoders", {}).items()
    ]


def load_media(doc: dict[str, Any], store: BlobStore) -> dict[str, Any]:
    """Decode one image/audio blob, once for every model that needs it; raises for a bad file."""
    settings = get_settings()
    src = doc["_source"]
    sha, modality = src.get("source", {}).get("sha256"), src.get("modality")
    if not sha or modality not in ("image", "audio"):
        return {}
    data = store.path(sha).read_bytes()
    if modality == "image":
        return {"image": load_image(data, max_pixels=settings.max_image_pixels)}
    return {"audio": load_audio(data, max_seconds=settings.max_audio_seconds)}


def run_extractors(names: list[str], media: dict[str, Any]) -> dict[str, Extraction]:
    """OCR / speech-to-text of one document: text for the lexical fields and the text encoders."""
    found: dict[str, Extraction] = {}
    for name in names:
        extractor = get_extractor(name)
        if extractor.input_kind in media:
            found[name] = extractor.extract([media[extractor.input_kind]])[0]
    return found


def ocr_scanned_pages(source: dict[str, Any], store: BlobStore) -> dict[str, Extraction]:
    """A PDF's pages without a text layer, rendered one at a time and read by the `ocr` extractor: an
    extraction whose segments carry page numbers, appended to the content. Only for collections with it."""
    settings = get_settings()
    numbers = pages_to_ocr(source.get("pages") or [])[: settings.max_ocr_pages]
    if not numbers or source.get("source", {}).get("mime") != "application/pdf":
        return {}
    extractor = get_extractor("ocr")
    data = store.path(source["source"]["sha256"]).read_bytes()
    segments = [
        {"page": number, "text": extractor.extract([image])[0].text}
        for number, image in render_pages(data, numbers, settings.ocr_dpi, settings.max_image_pixels)
    ]
    text = "\n\n".join(seg["text"] for seg in segments if seg["text"])
    return {"ocr": Extraction(text, segments, {"pages": len(segments)})}


def encode_documents(
    es: Elasticsearch, index: str, ids: list[str], progress: Progress | None = None
) -> BatchResult:
    """Encode the `pending` documents among `ids`, chunk by chunk; see the module's docstring."""
    progress = progress or Progress()
    settings = get_settings()
    todo = [doc_id for doc_id in ids if doc_id not in progress.done]
    resp = (
        es.mget(index=index, ids=todo, source_excludes=["search_stemmed", "vectors", "passages"])
        if todo
        else {}
    )
    _raise_unavailable(resp)
    docs = [d for d in resp.get("docs", []) if d.get("found")]
    docs = [d for d in docs if (d["_source"].get("ingest") or {}).get("status") == PENDING]
    result = BatchResult(skipped=len(ids) - len(docs))
    for chunk in _chunks(docs, settings.encode_chunk_sizes):
        progress.current = [d["_id"] for d in chunk]
        chunk = _claim(es, index, chunk, progress, result, settings.task_max_attempts)
        if chunk:
            _encode_chunk(es, index, chunk, progress, result)
        progress.done.update(progress.current)
        progress.current = []
    return result


def _chunks(docs: list[dict[str, Any]], sizes: dict[str, int]) -> list[list[dict[str, Any]]]:
    """Chunks of one modality each, of that modality's size; a document whose last run died goes alone."""
    chunks: list[list[dict[str, Any]]] = []
    by_modality: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        if (doc["_source"].get("ingest") or {}).get("attempts"):
            chunks.append([doc])
        else:
            by_modality.setdefault(doc["_source"].get("modality") or "text", []).append(doc)
    for modality, group in by_modality.items():
        size = max(1, sizes.get(modality, sizes.get("text", 64)))
        chunks.extend(group[start : start + size] for start in range(0, len(group), size))
    return chunks


def _claim(
    es: Elasticsearch,
    index: str,
    chunk: list[dict[str, Any]],
    progress: Progress,
    result: BatchResult,
    max_attempts: int,
) -> list[dict[str, Any]]:
    """Count the attempt on each document before any work (guarded writes); returns the documents this
    run now owns, with their new sequence numbers. A document over the limit is failed here instead."""
    partials = {
        doc["_id"]: claim_update(doc["_source"], max_attempts)
        for doc in chunk
        if doc["_id"] not in progress.claimed  # else claimed before an outage of this same delivery
    }
    by_id = {d["_id"]: d for d in chunk}
    actions = [{**_guard(index, by_id[doc_id]), "doc": partial} for doc_id, partial in partials.items()]
    for ok, item in streaming_bulk(es, actions, raise_on_error=False, raise_on_exception=True):
        out = item["update"]
        doc = by_id[out["_id"]]
        if not ok:
            _write_refused(out, result)
            del by_id[out["_id"]]
            continue
        doc["_seq_no"], doc["_primary_term"] = out["_seq_no"], out["_primary_term"]
        partial = partials[out["_id"]]
        if partial["ingest"].get("status") == "failed":
            log.warning("document %s in %s: %s", out["_id"], index, partial["ingest"]["error"])
            result.failed += 1
            del by_id[out["_id"]]
        else:
            progress.claimed[out["_id"]] = partial["ingest"]["attempts"]
    return list(by_id.values())


def _encode_chunk(
    es: Elasticsearch, index: str, docs: list[dict[str, Any]], progress: Progress, result: BatchResult
) -> None:
    """Decode and extract item by item, encode the chunk per encoder, write the chunk's results."""
    meta = _meta(es, index)
    encoders = encoders_for(es, index)
    store = BlobStore.from_settings(get_settings())
    inputs: dict[str, dict[str, Any]] = {}
    extractions: dict[str, dict[str, Extraction]] = {}
    for doc in docs:
        doc_id = doc["_id"]
        try:
            media = load_media(doc, store)
        except (IngestError, OSError) as exc:
            result.errors[doc_id] = cap_error(f"decode: {exc}")
            continue
        try:
            extractions[doc_id] = run_extractors(meta.get("extractors", []), media)
            if "ocr" in meta.get("extractors", []):
                extractions[doc_id].update(ocr_scanned_pages(doc["_source"], store))
        except Exception as exc:  # noqa: BLE001 - a poison input fails its document, not the batch
            result.errors[doc_id] = cap_error(f"extract: {type(exc).__name__}: {exc}")
            continue
        inputs[doc_id] = {"text": encoder_text(doc["_source"], extractions[doc_id]), **media}

    vectors: dict[str, dict[str, Any]] = {d["_id"]: {} for d in docs}
    for encoder in encoders:
        todo = [
            (doc_id, kinds[encoder.input_kind])
            for doc_id, kinds in inputs.items()
            if doc_id not in result.errors and kinds.get(encoder.input_kind)
        ]
        for doc_id, vector in _encode_isolating_failures(encoder, todo, result.errors):
            vectors[doc_id][encoder.name] = encoder.field_value(vector)
    passages = encode_passages(
        [enc for enc in encoders if enc.name in meta.get("passages", [])], docs, extractions, result.errors
    )
    del inputs  # the decoded media of this chunk

    versions = {enc.name: enc.version for enc in encoders}
    actions = [
        _update_action(
            index,
            d,
            vectors[d["_id"]],
            versions,
            result.errors.get(d["_id"]),
            extractions.get(d["_id"]),
            progress.claimed.get(d["_id"]),
            passages,
        )
        for d in docs
    ]
    for ok, item in streaming_bulk(es, actions, raise_on_error=False, raise_on_exception=True, max_retries=3):
        out = item["update"]
        if not ok:
            _write_refused(out, result)
        elif out["_id"] in result.errors:
            result.failed += 1
        else:
            result.encoded += 1


def _raise_unavailable(resp: dict[str, Any]) -> None:
    """An mget answers per document; one whose shard is unavailable carries an error, not `found`. A deleted
    index (the collection is gone) is not an outage: its documents are skipped like deleted ones."""
    for doc in resp.get("docs", []):
        error = doc.get("error")
        if error and not (isinstance(error, dict) and error.get("type") == "index_not_found_exception"):
            raise Unavailable(f"reading {doc.get('_id')} failed: {error_reason(doc['error'])}")


def _write_refused(out: dict[str, Any], result: BatchResult) -> None:
    """A guarded write refused: changed since read (409: its own task encodes it) or deleted (404) is a
    skip; an overloaded or unavailable shard is retried; anything else is an error of the batch."""
    status = out.get("status") or 0
    if status in (404, 409):
        result.skipped += 1
        return
    if status == 429 or status >= 500:
        raise Unavailable(f"writing to {out['_id']} failed: {error_reason(out.get('error'))}")
    raise RuntimeError(f"writing to {out['_id']} failed: {error_reason(out.get('error'))}")


def _guard(index: str, doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "_op_type": "update",
        "_index": index,
        "_id": doc["_id"],
        "if_seq_no": doc["_seq_no"],
        "if_primary_term": doc["_primary_term"],
    }


def encode_passages(
    encoders: list[Encoder],
    docs: list[dict[str, Any]],
    extractions: dict[str, dict[str, Extraction]],
    errors: dict[str, str],
) -> Passages:
    """Cut each long content (after OCR / speech-to-text) with the first passage encoder's tokenizer and
    encode every passage of the batch in one go per encoder; a failing passage fails its document."""
    out = Passages()
    if not encoders:
        return out
    settings = get_settings()
    cutter = encoders[0]
    for doc in docs:
        doc_id, src = doc["_id"], doc["_source"]
        if doc_id in errors:
            continue
        found = extractions.get(doc_id) or {}
        content, pages = src.get("content") or "", src.get("pages") or []
        if found:  # as this update stores them (OCR'd pages, a transcript added), so the offsets hold
            content, pages = content_and_pages(src, found)
        segments = src.get("segments") or [s for e in found.values() for s in e.segments]
        try:
            cut, truncated = passages_for(
                content,
                cutter.token_spans,  # type: ignore[attr-defined] - encoders with splits_passages have it
                cutter.window,  # type: ignore[attr-defined]
                settings.passage_overlap,
                settings.max_passages,
                pages=pages,
                segments=segments,
            )
        except Exception as exc:  # noqa: BLE001 - a tokenizer error fails this document only
            errors[doc_id] = cap_error(f"passages: {type(exc).__name__}: {exc}")
            continue
        if cut:
            out.by_doc[doc_id] = cut
        if truncated:
            out.truncated.add(doc_id)
    for encoder in encoders:
        todo = [
            (doc_id, p["text"]) for doc_id, cut in out.by_doc.items() for p in cut if doc_id not in errors
        ]
        encoded: dict[str, list[Any]] = {}
        for doc_id, vector in _encode_isolating_failures(encoder, todo, errors):
            encoded.setdefault(doc_id, []).append(encoder.field_value(vector))
        for doc_id, vectors in encoded.items():
            for passage, vector in zip(out.by_doc[doc_id], vectors, strict=False):
                passage.setdefault("vectors", {})[encoder.name] = vector
    return out


def _encode_isolating_failures(
    encoder: Encoder, todo: list[tuple[str, Any]], errors: dict[str, str]
) -> list[tuple[str, np.ndarray]]:
    """Encode the batch at once; if it fails, one by one, so one poison input fails alone."""
    if not todo:
        return []
    started = time.perf_counter()
    try:
        matrix = encoder.encode([item for _, item in todo])
        record_encode(encoder.name, len(todo), 0, time.perf_counter() - started)
        return list(zip([doc_id for doc_id, _ in todo], matrix, strict=True))
    except Exception:  # noqa: BLE001 - any model error: retry item by item to find the poison
        log.warning("batch of %d failed in %s; retrying one by one", len(todo), encoder.name, exc_info=True)
    out = []
    for doc_id, item in todo:
        try:
            out.append((doc_id, encoder.encode([item])[0]))
        except Exception as exc:  # noqa: BLE001
            errors[doc_id] = cap_error(f"{encoder.name}: {type(exc).__name__}: {exc}")
    record_encode(encoder.name, len(out), len(todo) - len(out), time.perf_counter() - started)
    return out


def _update_action(
    index: str,
    doc: dict[str, Any],
    vectors: dict[str, Any],
    versions: dict[str, str],
    error: str | None,
    extractions: dict[str, Extraction] | None,
    attempts: int | None,
    passages: Passages,
) -> dict[str, Any]:
    """A write guarded by the claim's sequence number: a document changed since is left to its own task."""
    source = doc["_source"]
    if error:
        partial = failed_update(error, attempts)
    else:
        partial = encoded_update(
            source,
            vectors,
            versions,
            extractions,
            attempts=attempts,
            passages=passages.by_doc.get(doc["_id"]),
            passages_truncated=doc["_id"] in passages.truncated,
        )
    return {**_guard(index, doc), "doc": partial}


def mark_failed(es: Elasticsearch, index: str, ids: list[str], reason: str) -> int:
    """Last resort when a batch cannot go on: say why on each of its documents still `pending` (never on
    one already encoded). Returns how many were marked."""
    if not ids:
        return 0
    resp = es.mget(index=index, ids=ids, source_includes=["ingest.status"])
    _raise_unavailable(resp)
    docs = resp["docs"]
    actions = [
        {**_guard(index, d), "doc": failed_update(reason)}
        for d in docs
        if d.get("found") and (d["_source"].get("ingest") or {}).get("status") == PENDING
    ]
    ok, _ = bulk(es, actions, raise_on_error=False)
    return ok
