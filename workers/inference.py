"""The model work of one encode chunk: decode (media, OCR, speech-to-text), then encode (document and
passage vectors). No engine calls here: `workers.encoding` claims the chunk before and writes after.

Each step returns what it produced and the failures it met (doc id -> reason) in a frozen value; no step
writes into a container it was given. A poison input fails its own document only: a failed decode skips
the document, a failed batch encode is retried item by item to find the culprit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.config import get_settings
from encoders import Encoder
from encoders.extractor import Extraction, get_extractor
from ingest.blobstore import BlobStore
from ingest.lifecycle import cap_error, content_and_pages, encoder_text, mime_of, sha256_of
from ingest.pages import pages_to_ocr
from ingest.passages import passages_for
from media.decode import load_audio, load_image
from media.filetypes import IngestError
from media.pdf import render_pages
from workers.metrics import record_encode

log = logging.getLogger(__name__)

Failures = Mapping[str, str]  # doc id -> why it failed (capped)


@dataclass(frozen=True)
class Decoded:
    """A chunk's inputs: doc id -> input kind (`text`, `image`, `audio`) -> value, and what OCR /
    speech-to-text found per document (with the stored sources the passages are cut from)."""

    sources: Mapping[str, Mapping[str, Any]]
    inputs: Mapping[str, Mapping[str, Any]]
    extractions: Mapping[str, Mapping[str, Extraction]]
    failures: Failures = field(default_factory=dict)


@dataclass(frozen=True)
class EncoderBatch:
    """One encoder's output for a list of items: (doc id, vector) in input order, less the failures."""

    vectors: tuple[tuple[str, np.ndarray], ...]
    failures: Failures = field(default_factory=dict)


@dataclass(frozen=True)
class Passages:
    """Long documents cut into passages with their vectors: doc id -> passage objects, the ids cut off at
    `max_passages`, and the documents whose cutting or encoding failed."""

    by_doc: Mapping[str, list[dict[str, Any]]] = field(default_factory=dict)
    truncated: frozenset[str] = frozenset()
    failures: Failures = field(default_factory=dict)


@dataclass(frozen=True)
class Encoded:
    """A chunk's vectors: doc id -> encoder name -> field value, the encoders' versions, passages."""

    vectors: Mapping[str, Mapping[str, Any]]
    versions: Mapping[str, str]
    passages: Passages
    failures: Failures = field(default_factory=dict)


# --- decode ---------------------------------------------------------------------------------------


def load_media(source: Mapping[str, Any], store: BlobStore) -> dict[str, Any]:
    """Decode one image/audio blob, once for every model that needs it; raises for a bad file."""
    settings = get_settings()
    sha, modality = sha256_of(source), source.get("modality")
    if not sha or modality not in ("image", "audio"):
        return {}
    data = store.path(sha).read_bytes()
    if modality == "image":
        return {"image": load_image(data, max_pixels=settings.limits.max_image_pixels)}
    return {"audio": load_audio(data, max_seconds=settings.limits.max_audio_seconds)}


def run_extractors(names: Sequence[str], media: Mapping[str, Any]) -> dict[str, Extraction]:
    """OCR / speech-to-text of one document: text for the lexical fields and the text encoders."""
    found: dict[str, Extraction] = {}
    for name in names:
        extractor = get_extractor(name)
        if extractor.input_kind in media:
            found[name] = extractor.extract([media[extractor.input_kind]])[0]
    return found


def ocr_scanned_pages(source: Mapping[str, Any], store: BlobStore) -> dict[str, Extraction]:
    """A PDF's pages without a text layer, rendered one at a time and read by the `ocr` extractor: an
    extraction whose segments carry page numbers, appended to the content. Only for collections with it."""
    settings = get_settings()
    numbers = pages_to_ocr(source.get("pages") or [])[: settings.limits.max_ocr_pages]
    sha = sha256_of(source)
    if not numbers or not sha or mime_of(source) != "application/pdf":
        return {}
    extractor = get_extractor("ocr")
    data = store.path(sha).read_bytes()
    segments = [
        {"page": number, "text": extractor.extract([image])[0].text}
        for number, image in render_pages(
            data, numbers, settings.models.ocr_dpi, settings.limits.max_image_pixels
        )
    ]
    text = "\n\n".join(seg["text"] for seg in segments if seg["text"])
    return {"ocr": Extraction(text, segments, {"pages": len(segments)})}


def _decode_one(
    source: Mapping[str, Any], extractors: Sequence[str], store: BlobStore
) -> tuple[dict[str, Any], dict[str, Extraction]]:
    """One document's encoder inputs and extractions; raises `_DecodeFailed` with the reason."""
    try:
        media = load_media(source, store)
    except (IngestError, OSError) as exc:
        raise _DecodeFailed(f"decode: {exc}") from exc
    try:
        found = run_extractors(extractors, media)
        if "ocr" in extractors:
            found = {**found, **ocr_scanned_pages(source, store)}
    except Exception as exc:  # noqa: BLE001 - a poison input fails its document, not the batch
        raise _DecodeFailed(f"extract: {type(exc).__name__}: {exc}") from exc
    return {"text": encoder_text(source, found), **media}, found


class _DecodeFailed(Exception):
    """One document could not be decoded or extracted; the message is the stored reason."""


def decode(docs: Sequence[Mapping[str, Any]], extractors: Sequence[str], store: BlobStore) -> Decoded:
    """Decode and extract item by item (the chunk's media is held until its vectors are made)."""
    inputs: dict[str, dict[str, Any]] = {}
    extractions: dict[str, dict[str, Extraction]] = {}
    failures: dict[str, str] = {}
    for doc in docs:
        try:
            inputs[doc["_id"]], extractions[doc["_id"]] = _decode_one(doc["_source"], extractors, store)
        except _DecodeFailed as exc:
            failures[doc["_id"]] = cap_error(str(exc))
    return Decoded({doc["_id"]: doc["_source"] for doc in docs}, inputs, extractions, failures)


# --- encode ---------------------------------------------------------------------------------------


def encode_isolating_failures(encoder: Encoder, todo: Sequence[tuple[str, Any]]) -> EncoderBatch:
    """Encode the items at once; if that fails, one by one, so one poison input fails alone."""
    if not todo:
        return EncoderBatch(())
    started = time.perf_counter()
    try:
        matrix = encoder.encode([item for _, item in todo])
        record_encode(encoder.name, len(todo), 0, time.perf_counter() - started)
        return EncoderBatch(tuple(zip([doc_id for doc_id, _ in todo], matrix, strict=True)))
    except Exception:  # noqa: BLE001 - any model error: retry item by item to find the poison
        log.warning("batch of %d failed in %s; retrying one by one", len(todo), encoder.name, exc_info=True)
    vectors: list[tuple[str, np.ndarray]] = []
    failures: dict[str, str] = {}
    for doc_id, item in todo:
        try:
            vectors.append((doc_id, encoder.encode([item])[0]))
        except Exception as exc:  # noqa: BLE001
            failures[doc_id] = cap_error(f"{encoder.name}: {type(exc).__name__}: {exc}")
    record_encode(encoder.name, len(vectors), len(failures), time.perf_counter() - started)
    return EncoderBatch(tuple(vectors), failures)


def encode(encoders: Sequence[Encoder], passage_encoders: Sequence[Encoder], decoded: Decoded) -> Encoded:
    """Every encoder over the chunk's decoded inputs (a document failed by one is not sent to the
    next), then the passages of the documents still standing."""
    vectors: dict[str, dict[str, Any]] = {doc_id: {} for doc_id in decoded.inputs}
    failures: dict[str, str] = {}
    for encoder in encoders:
        todo = [
            (doc_id, kinds[encoder.input_kind])
            for doc_id, kinds in decoded.inputs.items()
            if doc_id not in failures and kinds.get(encoder.input_kind)
        ]
        batch = encode_isolating_failures(encoder, todo)
        failures.update(batch.failures)
        for doc_id, vector in batch.vectors:
            vectors[doc_id][encoder.name] = encoder.field_value(vector)
    standing = {doc_id: found for doc_id, found in decoded.extractions.items() if doc_id not in failures}
    passages = encode_passages(passage_encoders, decoded, standing)
    versions = {enc.name: enc.version for enc in encoders}
    return Encoded(vectors, versions, passages, {**failures, **passages.failures})


# --- passages -------------------------------------------------------------------------------------


def _cut(
    cutter: Encoder, source: Mapping[str, Any], found: Mapping[str, Extraction]
) -> tuple[list[dict[str, Any]], bool]:
    """One content (after OCR / speech-to-text, as this update stores it, so the offsets hold) cut with
    the passage encoder's tokenizer: (passages, whether cut off at `max_passages`)."""
    settings = get_settings()
    content, pages = source.get("content") or "", source.get("pages") or []
    if found:
        content, pages = content_and_pages(source, found)
    return passages_for(
        content,
        cutter.token_spans,  # type: ignore[attr-defined] - encoders with splits_passages have it
        cutter.window,  # type: ignore[attr-defined]
        settings.models.passage_overlap,
        max_passages=settings.limits.max_passages,
        pages=pages,
        segments=source.get("segments") or [s for e in found.values() for s in e.segments],
    )


def cut_passages(
    cutter: Encoder,
    sources: Mapping[str, Mapping[str, Any]],
    extractions: Mapping[str, Mapping[str, Extraction]],
) -> Passages:
    """The passages (without vectors yet) of each document in `extractions` whose content is long."""
    by_doc: dict[str, list[dict[str, Any]]] = {}
    truncated: set[str] = set()
    failures: dict[str, str] = {}
    for doc_id, found in extractions.items():
        try:
            cut, was_truncated = _cut(cutter, sources[doc_id], found)
        except Exception as exc:  # noqa: BLE001 - a tokenizer error fails this document only
            failures[doc_id] = cap_error(f"passages: {type(exc).__name__}: {exc}")
            continue
        if cut:
            by_doc[doc_id] = cut
        if was_truncated:
            truncated.add(doc_id)
    return Passages(by_doc, frozenset(truncated), failures)


def encode_passages(
    encoders: Sequence[Encoder], decoded: Decoded, extractions: Mapping[str, Mapping[str, Extraction]]
) -> Passages:
    """Cut each long content with the first passage encoder's tokenizer and encode every passage of the
    chunk in one go per encoder; a failing passage fails its document."""
    if not encoders:
        return Passages()
    cut = cut_passages(encoders[0], decoded.sources, extractions)
    failures = dict(cut.failures)
    found: dict[str, dict[str, list[Any]]] = {}  # encoder name -> doc id -> one vector per passage
    for encoder in encoders:
        todo = [
            (doc_id, p["text"]) for doc_id, ps in cut.by_doc.items() if doc_id not in failures for p in ps
        ]
        batch = encode_isolating_failures(encoder, todo)
        failures.update(batch.failures)
        found[encoder.name] = {}
        for doc_id, vector in batch.vectors:
            found[encoder.name].setdefault(doc_id, []).append(encoder.field_value(vector))
    by_doc = {
        doc_id: [
            {**passage, "vectors": {name: per_doc[doc_id][i] for name, per_doc in found.items()}}
            for i, passage in enumerate(passages)
        ]
        for doc_id, passages in cut.by_doc.items()
        if doc_id not in failures
    }
    return Passages(by_doc, cut.truncated, failures)
