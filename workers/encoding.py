"""Encode a batch of stored documents with their index's encoders and write the vectors back.

Plain functions (no Celery here) so the logic is testable and reusable by re-encode jobs. Writes are
partial updates guarded by `if_seq_no`/`if_primary_term`: a document changed since it was read is left
to the task its change queued, so retries and duplicates are harmless.
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
    cap_error,
    content_and_pages,
    encoded_update,
    encoder_text,
    failed_update,
    next_attempt,
)
from ingest.pages import pages_to_ocr
from ingest.passages import passages_for
from mappings.collections import index_meta
from media.decode import load_audio, load_image
from media.filetypes import IngestError
from media.pdf import render_pages
from workers.metrics import record_encode

log = logging.getLogger(__name__)


@dataclass
class BatchResult:
    encoded: int = 0
    failed: int = 0
    skipped: int = 0
    errors: dict[str, str] = field(default_factory=dict)


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


def load_media(docs: list[dict[str, Any]], errors: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Decode each image/audio blob once for every model that needs it; a bad file fails its document."""
    settings = get_settings()
    store = BlobStore.from_settings(settings)
    media: dict[str, dict[str, Any]] = {}
    for doc in docs:
        src = doc["_source"]
        sha, modality = src.get("source", {}).get("sha256"), src.get("modality")
        if not sha or modality not in ("image", "audio"):
            continue
        try:
            data = store.path(sha).read_bytes()
            if modality == "image":
                media[doc["_id"]] = {"image": load_image(data, max_pixels=settings.max_image_pixels)}
            else:
                media[doc["_id"]] = {"audio": load_audio(data, max_seconds=settings.max_audio_seconds)}
        except (IngestError, OSError) as exc:
            errors[doc["_id"]] = cap_error(f"decode: {exc}")
    return media


def run_extractors(
    names: list[str], media: dict[str, dict[str, Any]], errors: dict[str, str]
) -> dict[str, dict[str, Extraction]]:
    """OCR / speech-to-text: text for the lexical fields and the text encoders, per document."""
    found: dict[str, dict[str, Extraction]] = {}
    for name in names:
        extractor = get_extractor(name)
        todo = [
            (doc_id, kinds[extractor.input_kind])
            for doc_id, kinds in media.items()
            if doc_id not in errors and extractor.input_kind in kinds
        ]
        for doc_id, item in todo:
            try:
                found.setdefault(doc_id, {})[name] = extractor.extract([item])[0]
            except Exception as exc:  # noqa: BLE001 - a poison input fails its document, not the batch
                errors[doc_id] = cap_error(f"{name}: {type(exc).__name__}: {exc}")
    return found


def ocr_scanned_pages(
    docs: list[dict[str, Any]], names: list[str], errors: dict[str, str]
) -> dict[str, dict[str, Extraction]]:
    """PDF pages without a text layer, rendered one at a time and read by the `ocr` extractor (when the
    collection has it): an extraction whose segments carry page numbers, appended to the content."""
    if "ocr" not in names:
        return {}
    settings = get_settings()
    store = BlobStore.from_settings(settings)
    found: dict[str, dict[str, Extraction]] = {}
    for doc in docs:
        src, doc_id = doc["_source"], doc["_id"]
        numbers = pages_to_ocr(src.get("pages") or [])[: settings.max_ocr_pages]
        if not numbers or doc_id in errors or src.get("source", {}).get("mime") != "application/pdf":
            continue
        extractor = get_extractor("ocr")
        try:
            data = store.path(src["source"]["sha256"]).read_bytes()
            segments = [
                {"page": number, "text": extractor.extract([image])[0].text}
                for number, image in render_pages(data, numbers, settings.ocr_dpi, settings.max_image_pixels)
            ]
        except Exception as exc:  # noqa: BLE001 - a poison page fails its document, not the batch
            errors[doc_id] = cap_error(f"ocr: {type(exc).__name__}: {exc}")
            continue
        text = "\n\n".join(seg["text"] for seg in segments if seg["text"])
        found[doc_id] = {"ocr": Extraction(text, segments, {"pages": len(segments)})}
    return found


def encode_documents(es: Elasticsearch, index: str, ids: list[str]) -> BatchResult:
    meta = _meta(es, index)
    encoders = encoders_for(es, index)
    resp = es.mget(index=index, ids=ids, source_excludes=["search_stemmed", "vectors", "passages"])
    docs = [d for d in resp["docs"] if d.get("found")]
    result = BatchResult(skipped=len(ids) - len(docs))
    media = load_media(docs, result.errors)
    extractions = run_extractors(meta.get("extractors", []), media, result.errors)
    for doc_id, found in ocr_scanned_pages(docs, meta.get("extractors", []), result.errors).items():
        extractions.setdefault(doc_id, {}).update(found)
    vectors: dict[str, dict[str, Any]] = {d["_id"]: {} for d in docs}
    inputs = {
        d["_id"]: {"text": encoder_text(d["_source"], extractions.get(d["_id"])), **media.get(d["_id"], {})}
        for d in docs
    }

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

    versions = {enc.name: enc.version for enc in encoders}
    actions = [
        _update_action(
            index,
            d,
            vectors[d["_id"]],
            versions,
            result.errors.get(d["_id"]),
            extractions.get(d["_id"]),
            passages,
        )
        for d in docs
    ]
    for ok, item in streaming_bulk(es, actions, raise_on_error=False, raise_on_exception=True, max_retries=3):
        doc_id = item["update"]["_id"]
        if ok:
            if doc_id in result.errors:
                result.failed += 1
            else:
                result.encoded += 1
        elif item["update"].get("status") == 409:
            result.skipped += 1  # changed since read: the task its change queued will encode it
        else:
            raise RuntimeError(
                f"writing vectors for {doc_id} failed: {error_reason(item['update'].get('error'))}"
            )
    return result


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
    passages: Passages,
) -> dict[str, Any]:
    """A write guarded by the read's sequence number: a document changed since is left to its own task."""
    source = doc["_source"]
    if error:
        partial = failed_update(error, next_attempt(source))
    else:
        partial = encoded_update(
            source,
            vectors,
            versions,
            extractions,
            passages=passages.by_doc.get(doc["_id"]),
            passages_truncated=doc["_id"] in passages.truncated,
        )
    return {
        "_op_type": "update",
        "_index": index,
        "_id": doc["_id"],
        "doc": partial,
        "if_seq_no": doc["_seq_no"],
        "if_primary_term": doc["_primary_term"],
    }


def mark_failed(es: Elasticsearch, index: str, ids: list[str], reason: str) -> None:
    """Last resort when a whole batch exhausted its retries: say why on every document."""
    actions = [
        {
            "_op_type": "update",
            "_index": index,
            "_id": doc_id,
            "doc": failed_update(reason),
        }
        for doc_id in ids
    ]
    bulk(es, actions, raise_on_error=False)
