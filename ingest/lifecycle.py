"""One document's lifecycle: its states and their transitions, the `ingest` status block every writer
sets, the accessors every reader uses, and the text its encoders see.

    pending --encode--> encoded | failed        (any state --(re)ingest, requeue or re-encode copy--> pending)

`pending`: indexed (BM25 works at once), vectors to come. `encoded`: vectors written, with the versions of
the encoders that made them. `failed`: the reason, capped. `attempts` counts encode runs since the last
(re)queue; a run claims its document (attempts + 1, `updated_at`, `claimed_by`: the worker process) before
it decodes or encodes anything, so a run that dies (killed, out of memory, over its time limit) still
counts, its worker's silence can be noticed (`workers.heartbeat`), and the claim that would
exceed the limit marks the document failed instead of trying again. The API, the encode worker, a
task's last resort and the re-encode copy all build their bodies
here, so the states cannot drift apart; and the encoder text is computed here once, purely, so training
and benchmarks encode exactly the string the worker encodes at index time.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from core.errors import MmsearchError
from encoders.extractor import Extraction
from ingest.pages import append_pages
from mappings.analysis import stem_text

MAX_ERROR_CHARS = 2000
STATUS_FIELD = "ingest.status"  # the indexed field queries filter on
CLAIMED_BY_FIELD = "ingest.claimed_by"  # the worker process that claimed a pending document last


class DocumentStatus(StrEnum):
    """A document's `ingest.status`; str-valued, so stored values and queries are plain strings."""

    PENDING = "pending"
    ENCODED = "encoded"
    FAILED = "failed"


PENDING, ENCODED, FAILED = DocumentStatus.PENDING, DocumentStatus.ENCODED, DocumentStatus.FAILED

# old status (None: a document not stored yet) -> the statuses a writer may give it. `pending -> pending`
# is a claim (the attempt counted) or a re-ingest; encoded and failed documents go back only to pending.
TRANSITIONS: dict[DocumentStatus | None, frozenset[DocumentStatus]] = {
    None: frozenset({PENDING}),
    PENDING: frozenset({PENDING, ENCODED, FAILED}),
    ENCODED: frozenset({PENDING}),
    FAILED: frozenset({PENDING}),
}


class IllegalTransition(MmsearchError):
    """A write that would move a document (or a job) between states its lifecycle does not link."""

    status = 409


def can_transition(old: DocumentStatus | str | None, new: DocumentStatus | str) -> bool:
    """Whether a document in status `old` may be given status `new` (unknown statuses may not)."""
    try:
        return DocumentStatus(new) in TRANSITIONS[DocumentStatus(old) if old is not None else None]
    except ValueError:
        return False


def check_transition(old: DocumentStatus | str | None, new: DocumentStatus | str) -> DocumentStatus:
    """`new` as a status, or IllegalTransition when a document in `old` may not move there."""
    if not can_transition(old, new):
        raise IllegalTransition(f"a document cannot go from {old!r} to {new!r}")
    return DocumentStatus(new)


# --- accessors ------------------------------------------------------------------------------------


def _ingest(source: Mapping[str, Any]) -> Mapping[str, Any]:
    return source.get("ingest") or {}


def status_of(source: Mapping[str, Any]) -> DocumentStatus | None:
    """A stored document's status (None for a source without one, e.g. fetched without `ingest`)."""
    status = _ingest(source).get("status")
    try:
        return DocumentStatus(status) if status is not None else None
    except ValueError:
        return None


def attempts_of(source: Mapping[str, Any]) -> int:
    """Encode runs counted since the document was last (re)queued."""
    return int(_ingest(source).get("attempts") or 0)


def error_of(source: Mapping[str, Any]) -> str | None:
    return _ingest(source).get("error")


def claimed_by_of(source: Mapping[str, Any]) -> str | None:
    """The worker (`host:pid`) whose encode run claimed the document last; it means something only while
    the document is `pending` (a final state makes it history)."""
    return _ingest(source).get("claimed_by")


def encoders_of(source: Mapping[str, Any]) -> dict[str, str]:
    """Vector field -> "name@version" of the encoders that wrote the document's vectors."""
    return dict(_ingest(source).get("encoders") or {})


def sha256_of(source: Mapping[str, Any]) -> str | None:
    """The stored file's digest (its blob key), None for a document without a file."""
    return (source.get("source") or {}).get("sha256")


def mime_of(source: Mapping[str, Any]) -> str | None:
    return (source.get("source") or {}).get("mime")


def now_iso() -> str:
    """The one timestamp format of documents and jobs (UTC, milliseconds)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def cap_error(reason: str) -> str:
    """Error text short enough to store on a document (a model's traceback message can be huge)."""
    return reason[:MAX_ERROR_CHARS]


# --- status blocks --------------------------------------------------------------------------------


def pending(stamp: str | None = None) -> dict[str, Any]:
    """Queued for encoding: no attempt yet, no encoder versions, no error (a failed one sent again)."""
    return {"status": PENDING, "error": None, "attempts": 0, "queued_at": stamp or now_iso(), "encoders": {}}


def encoded(attempts: int, encoders: Mapping[str, str], stamp: str | None = None) -> dict[str, Any]:
    """Vectors written; `error: None` clears a previous failure (partial updates merge objects)."""
    return {
        "status": ENCODED,
        "error": None,
        "attempts": attempts,
        "encoded_at": stamp or now_iso(),
        "encoders": dict(encoders),
    }


def failed(reason: str, attempts: int | None = None) -> dict[str, Any]:
    """Failed for `reason`; `attempts` is left as stored when unknown (a batch given up for good)."""
    block: dict[str, Any] = {"status": FAILED, "error": cap_error(reason)}
    if attempts is not None:
        block["attempts"] = attempts
    return block


def next_attempt(source: Mapping[str, Any]) -> int:
    """The number of the encode run now under way for a stored document."""
    return attempts_of(source) + 1


def claim_update(
    source: Mapping[str, Any], max_attempts: int, stamp: str | None = None, *, worker: str | None = None
) -> dict[str, Any]:
    """The partial update that starts an encode run: the attempt counted (and the claiming `worker`
    recorded, when given, so the reconciler can hand the document on once that worker's heartbeat is
    gone), or, past `max_attempts` runs that never wrote a result, the document failed with that reason."""
    stamp = stamp or now_iso()
    attempt = next_attempt(source)
    if attempt > max_attempts:
        reason = (
            f"gave up after {attempt - 1} encode attempts that ended without a result "
            "(worker killed, out of memory or over the time limit)"
        )
        return failed_update(reason, attempt - 1, stamp)
    block: dict[str, Any] = {"attempts": attempt}
    if worker is not None:
        block["claimed_by"] = worker
    return {"ingest": block, "updated_at": stamp}


# --- bodies ---------------------------------------------------------------------------------------


def encoded_update(
    source: Mapping[str, Any],
    vectors: dict[str, Any],
    versions: Mapping[str, str],
    extractions: Mapping[str, Extraction] | None = None,
    *,
    stamp: str | None = None,
    attempts: int | None = None,
    passages: list[dict[str, Any]] | None = None,
    passages_truncated: bool = False,
) -> dict[str, Any]:
    """The partial update of an encoded document: extracted text fields, vectors, status block, and a
    long text's passages (with their vectors) when it has some. `attempts`: the run's number when it was
    claimed (else the one after the stored count)."""
    stamp = stamp or now_iso()
    attempts = attempts if attempts is not None else next_attempt(source)
    update = {
        **extracted_fields(source, extractions),
        "vectors": vectors,
        "ingest": encoded(attempts, {name: versions[name] for name in vectors}, stamp),
        "updated_at": stamp,
    }
    if passages:
        update["passages"] = passages
    if passages_truncated:
        update["metadata"] = {"passages_truncated": True}
    return update


def failed_update(reason: str, attempts: int | None = None, stamp: str | None = None) -> dict[str, Any]:
    """The partial update of a document that failed to encode."""
    return {"ingest": failed(reason, attempts), "updated_at": stamp or now_iso()}


def requeue_update(stamp: str | None = None) -> dict[str, Any]:
    """The partial update that sends a failed document back to the workers."""
    stamp = stamp or now_iso()
    return {"ingest": pending(stamp), "updated_at": stamp}


def requeued(source: Mapping[str, Any], stamp: str | None = None) -> dict[str, Any]:
    """A stored document copied into a new generation: vectors (and passages, which hold vectors) dropped,
    pending again. `@timestamp` (the ingest time catch-up keys on) is kept."""
    stamp = stamp or now_iso()
    return {
        **{key: value for key, value in source.items() if key not in ("vectors", "passages")},
        "ingest": pending(stamp),
        "updated_at": stamp,
    }


# --- text -----------------------------------------------------------------------------------------


def extracted_content(content: str | None, extractions: Mapping[str, Extraction]) -> str:
    """Content after OCR / speech-to-text: any text given at upload, then each new extracted text.
    Idempotent: a re-encode does not append what the content already holds."""
    content = content or ""
    texts = [e.text.strip() for e in extractions.values() if e.text.strip() and e.text.strip() not in content]
    return "\n".join([content, *texts]).strip()


def is_paged(extraction: Extraction) -> bool:
    """OCR of a document's scanned pages: segments carry page numbers, not boxes or times."""
    return bool(extraction.segments) and all("page" in seg for seg in extraction.segments)


def content_and_pages(
    source: Mapping[str, Any], extractions: Mapping[str, Extraction]
) -> tuple[str, list[dict[str, Any]]]:
    """Content and page map after extraction: OCR'd pages appended with their page numbers (see
    `ingest.pages`), other extracted text (images, audio) appended as a whole."""
    content = extracted_content(
        source.get("content"), {k: e for k, e in extractions.items() if not is_paged(e)}
    )
    pages = list(source.get("pages") or [])
    for extraction in extractions.values():
        if is_paged(extraction):
            texts = [(int(seg["page"]), str(seg["text"])) for seg in extraction.segments]
            content, pages = append_pages(content, pages, texts)
    return content, pages


def extracted_fields(
    source: Mapping[str, Any], extractions: Mapping[str, Extraction] | None
) -> dict[str, Any]:
    """The fields extracted text changes (content, its stemmed copy, page map, timed segments); none
    without any."""
    if not extractions:
        return {}
    content, pages = content_and_pages(source, extractions)
    fields: dict[str, Any] = {"content": content, "search_stemmed": {"content": stem_text(content)}}
    if pages:
        fields["pages"] = pages
    segments = [
        {k: seg[k] for k in ("text", "start", "end", "words") if k in seg}
        for e in extractions.values()
        for seg in e.segments
        if "start" in seg
    ]
    if segments:
        fields["segments"] = segments
    return fields


def encoder_text(source: Mapping[str, Any], extractions: Mapping[str, Extraction] | None = None) -> str:
    """What text encoders embed: "title. content", content including extracted text. Pure: `source`
    (a stored document, or any mapping with `title`/`content`) is not changed."""
    content = content_and_pages(source, extractions)[0] if extractions else source.get("content")
    return ". ".join(part for part in (source.get("title"), content) if part)
