"""Per-file form fields of an upload beside `metadata`: client-given document ids, where files came from,
and who may read them.

`ids` (a JSON list, one id or null per file) keys a document by something other than its bytes, e.g. its
path: uploading under the same id replaces the previous version (and releases its blob). `sources` (a JSON
list, one `{root, path, mtime_ns}` or null per file) records where a crawled file lives, which is what
`GET .../manifest` lists for the next crawl. `readers` is one list of reader terms for every file, or a
list with one such list (or null: the collection's default) per file; a mail's attachments get its readers.
"""

from __future__ import annotations

import json
from typing import Any

from flask import request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ingest.crawl import mtime_iso
from ingest.documents import parse_json
from search.api import readers_value
from search.errors import InvalidRequest

DOC_ID = r"^[^\x00-\x1f/]+$"  # as for JSON documents: no control characters, no '/' (it is in URLs)


class FileSource(BaseModel):
    model_config = ConfigDict(extra="forbid")

    root: str = Field(..., min_length=1, max_length=4096)
    path: str = Field(..., min_length=1, max_length=4096)
    mtime_ns: int = Field(..., ge=0, le=2**63 - 1)


class _DocId(BaseModel):
    id: str = Field(..., min_length=1, max_length=512, pattern=DOC_ID)


def _per_file(name: str, count: int) -> list[Any]:
    raw = request.form.get(name)
    if not raw:
        return [None] * count
    try:
        value = parse_json(raw)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"{name} is not valid JSON: {exc.msg}") from None
    if not isinstance(value, list) or len(value) != count:
        raise InvalidRequest(f"{name} must be a JSON list of {count} entries, one per file (null for none)")
    return value


def ids_for(count: int) -> list[str | None]:
    """The `ids` field: a document id (or null: the default id) per file."""
    ids = _per_file("ids", count)
    for position, value in enumerate(ids):
        if value is None:
            continue
        try:
            _DocId(id=value)
        except ValidationError as exc:
            message = exc.errors()[0]["msg"]
            raise InvalidRequest(f"ids[{position}]: {message}") from None
    return ids


def readers_for(count: int) -> list[tuple[str, ...] | None]:
    """The `readers` field: checked reader terms (None: the collection's default) per file."""
    raw = request.form.get("readers")
    if not raw:
        return [None] * count
    try:
        value = parse_json(raw)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"readers is not valid JSON: {exc.msg}") from None
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        one = readers_value(value, "readers")
        return [tuple(one or ())] * count
    if not isinstance(value, list) or len(value) != count:
        raise InvalidRequest(
            f"readers must be one JSON list of reader terms, or a list of {count} such lists "
            "(or null), one per file"
        )
    checked = (readers_value(item, f"readers[{position}]") for position, item in enumerate(value))
    return [None if item is None else tuple(item) for item in checked]


def sources_for(count: int) -> list[dict[str, Any] | None]:
    """The `sources` field as `source.{root,path,mtime}` values of the index documents."""
    out: list[dict[str, Any] | None] = []
    for position, value in enumerate(_per_file("sources", count)):
        if value is None:
            out.append(None)
            continue
        try:
            src = FileSource.model_validate(value)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise InvalidRequest(f"sources[{position}]{'.' + where if where else ''}: {err['msg']}") from None
        out.append({"root": src.root, "path": src.path, "mtime": mtime_iso(src.mtime_ns)})
    return out
