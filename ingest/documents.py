"""JSON documents in: validation and the index document they become."""

from __future__ import annotations

import json
import math
import sys
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.access import EVERYONE, READERS_FIELD, check_readers
from core.errors import MmsearchError
from ingest.lifecycle import now_iso, pending
from mappings.analysis import stem_text


class PayloadError(MmsearchError):
    """The request body cannot be read as documents (a 400); the message names the problem."""

    status = 400


class DocumentIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: str | None = Field(None, min_length=1, max_length=512, pattern=r"^[^\x00-\x1f/]+$")
    title: str | None = Field(None, max_length=10_000)
    text: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)
    lang: str | None = Field(None, max_length=16)
    # Who may read it (`*`, `user:<name>`, `group:<name>`); the collection's default when absent.
    readers: list[str] | None = Field(None, max_length=1000)

    @field_validator("readers")
    @classmethod
    def _reader_terms(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else check_readers(value)

    @field_validator("metadata")
    @classmethod
    def _json_metadata(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_metadata(value)

    @model_validator(mode="after")
    def _has_words(self) -> DocumentIn:
        """A title alone is a document (BEIR corpora hold records with no body); nothing at all is not."""
        if not self.text and not self.title:
            raise ValueError("a document needs a title or a text; both are empty")
        return self


MAX_METADATA_CHARS = 64_000
# Metadata keys the product sets itself (an attachment's link to its mail, a long text's cut): a client
# that sent them could make a document pose as another's attachment.
RESERVED_METADATA = frozenset({"parent_id", "attachment_number", "passages_truncated", "content_truncated"})


def check_metadata(value: dict[str, Any]) -> dict[str, Any]:
    """Client metadata of any route (JSON documents, uploads): bounded in size, none of the reserved keys."""
    if len(json.dumps(value, default=str)) > MAX_METADATA_CHARS:
        raise ValueError(f"metadata is larger than {MAX_METADATA_CHARS // 1000} kB")
    reserved = sorted(RESERVED_METADATA & value.keys())
    if reserved:
        raise ValueError(f"metadata keys {reserved} are set by mmsearch itself")
    return value


@dataclass
class Parsed:
    """The valid documents of a request with their positions, and each invalid one's position and reason."""

    docs: list[tuple[int, DocumentIn]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


MAX_JSON_DEPTH = 64  # Elasticsearch refuses objects deeper than 20 levels in a document anyway


def parse_json(text: str | bytes) -> Any:
    """`json.loads` that refuses NaN and Infinity (Python accepts them, JSON and Elasticsearch do not),
    numbers no float or `int()` can hold (Python's `ValueError`, not a `JSONDecodeError`), and nesting
    deeper than `MAX_JSON_DEPTH` (which would end in a RecursionError somewhere: a 500). Those numbers
    raise `JSONDecodeError`, so every caller reports them as it reports malformed JSON."""
    try:
        value = json.loads(
            text, parse_constant=_refuse_constant, parse_int=_bounded_int, parse_float=_finite_float
        )
    except _NumberOutOfRange as exc:
        raise _number_error(text, exc) from None
    except RecursionError:
        value = None
        too_deep = True
    else:
        too_deep = _deeper_than(value, MAX_JSON_DEPTH)
    if too_deep:
        raise PayloadError(f"JSON nested too deeply: at most {MAX_JSON_DEPTH} levels of arrays and objects")
    return value


def _deeper_than(value: Any, limit: int) -> bool:
    """Without recursion, so the check itself cannot overflow."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False


def _refuse_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not a JSON value", name, 0)


class _NumberOutOfRange(ValueError):
    """A number literal Python cannot hold; `parse_json` turns it into a located `JSONDecodeError`."""

    def __init__(self, literal: str, reason: str) -> None:
        super().__init__(reason)
        self.literal = literal
        self.reason = reason


def _bounded_int(literal: str) -> int:
    digits = len(literal.lstrip("-"))
    limit = sys.get_int_max_str_digits()
    if limit and digits > limit:
        raise _NumberOutOfRange(literal, f"integer of {digits} digits; at most {limit} digits")
    return int(literal)


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise _NumberOutOfRange(literal, f"number {literal[:20]!r} is too large to be finite")
    return value


def _number_error(text: str | bytes, exc: _NumberOutOfRange) -> json.JSONDecodeError:
    """The error at the number's place in the document (only computed on this failure path)."""
    doc = text if isinstance(text, str) else text.decode(json.detect_encoding(text), errors="replace")
    return json.JSONDecodeError(exc.reason, doc, max(doc.find(exc.literal), 0))


def parse_documents(body: bytes, content_type: str | None, max_docs: int, max_chars: int) -> Parsed:
    """One JSON object, a JSON array, or NDJSON (one object per line).

    A body that cannot be read as documents at all (not UTF-8, malformed array, over `max_docs`) is a
    `PayloadError`; so is a body none of whose documents is valid. Otherwise each invalid document is
    reported by position and the valid ones go on (partial success)."""
    text = _decode(body)
    if "ndjson" in (content_type or "") or ("\n" in text.strip() and not text.lstrip().startswith("[")):
        items: Iterable[tuple[Any, str | None]] = _ndjson_items(text, max_docs)
    else:
        try:
            raw = parse_json(text)
        except json.JSONDecodeError as exc:
            raise PayloadError(f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
        raw = raw if isinstance(raw, list) else [raw]
        if len(raw) > max_docs:
            raise PayloadError(f"{len(raw)} documents in one request; the limit is {max_docs}")
        items = ((item, None) for item in raw)
    parsed = Parsed()
    for position, (item, unreadable) in enumerate(items):
        checked = unreadable or _check(item, max_chars)
        if isinstance(checked, str):
            parsed.errors.append({"position": position, "id": _id_of(item), "error": checked})
        else:
            parsed.docs.append((position, checked))
    total = len(parsed.docs) + len(parsed.errors)
    if not total:
        raise PayloadError("no documents in the request body")
    if not parsed.docs:
        first = parsed.errors[0]
        more = f" (and {total - 1} more invalid)" if total > 1 else ""
        raise PayloadError(f"document {first['position']}: {first['error']}{more}")
    return parsed


def _check(item: Any, max_chars: int) -> DocumentIn | str:
    """The valid document, or why `item` is not one."""
    if not isinstance(item, dict):
        return f"expected a JSON object, got {type(item).__name__}"
    try:
        json.dumps(item, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate (\\ud800-\\udfff), which is not valid Unicode"
    try:
        doc = DocumentIn.model_validate(item)
    except ValidationError as exc:
        return _first_error(exc)
    if len(doc.text) > max_chars:
        return f"text has {len(doc.text)} characters; limit {max_chars}"
    return doc


def _id_of(item: Any) -> str | None:
    value = item.get("id") if isinstance(item, dict) else None
    return value[:512] if isinstance(value, str) else None


def _decode(body: bytes) -> str:
    if not body:
        raise PayloadError("empty request body; send a JSON document, a JSON array or NDJSON")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError("request body is not UTF-8") from None


def _ndjson_items(text: str, max_docs: int) -> Iterator[tuple[Any, str | None]]:
    """(object, None) or (None, reason) per non-blank line; the count limit applies while reading, so a
    huge body is refused before the rest of it is parsed."""
    count = 0
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        count += 1
        if count > max_docs:
            raise PayloadError(f"more than {max_docs} documents in one request (line {lineno}); split it")
        try:
            yield parse_json(line), None
        except json.JSONDecodeError as exc:
            yield None, f"malformed JSON on NDJSON line {lineno}: {exc.msg}"


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "body"
    return f"{where}: {err['msg']}"


def idempotent_id(idempotency_key: str, position: int) -> str:
    """The id of a document sent without one under an `Idempotency-Key`: the same on every retry of the
    request, so a retried request overwrites instead of duplicating."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"mmsearch:{idempotency_key}:{position}").hex


def new_document(
    collection: str,
    doc_id: str | None,
    *,
    title: str | None,
    content: str,
    modality: str = "text",
    metadata: dict[str, Any] | None = None,
    source: dict[str, Any] | None = None,
    lang: str | None = None,
    pages: list[dict[str, Any]] | None = None,
    readers: Sequence[str] = (EVERYONE,),
) -> dict[str, Any]:
    """A new index document, built (the write path indexes it): text fields at once (BM25 now), vectors
    later (`pending`). `pages`: where each page's text lies in `content`, so passages can say their page;
    `readers`: who may read it (checked terms, core.access)."""
    stamp = now_iso()
    doc: dict[str, Any] = {
        "doc_id": doc_id or uuid.uuid4().hex,
        "collection": collection,
        "@timestamp": stamp,
        "updated_at": stamp,
        "modality": modality,
        "title": title or "",
        "content": content,
        "search_stemmed": {"title": stem_text(title or ""), "content": stem_text(content)},
        "metadata": metadata or {},
        "ingest": pending(stamp),
        READERS_FIELD: list(readers),
    }
    if lang:
        doc["lang"] = lang
    if source:
        doc["source"] = source
    if pages:
        doc["pages"] = pages  # ingest.pages: where each page, slide or sheet lies in `content`
    return doc


def from_json(
    collection: str,
    doc: DocumentIn,
    doc_id: str | None = None,
    default_readers: Sequence[str] = (EVERYONE,),
) -> dict[str, Any]:
    """The index document of a JSON document; `doc_id` applies when the document names none, and
    `default_readers` (the collection's) when it names no readers."""
    return new_document(
        collection,
        doc.id or doc_id,
        title=doc.title,
        content=doc.text,
        metadata=doc.metadata,
        lang=doc.lang,
        readers=doc.readers if doc.readers is not None else default_readers,
    )
