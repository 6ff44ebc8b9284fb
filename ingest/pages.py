"""Page numbers over a document's `content`: `pages: [{"page": n, "start": offset, "end": offset, ...}]`.

PDF pages, slides and sheets are joined into one `content` string for BM25; the page map keeps where each
began and ended, so passages and hits can name their page. Pages without a text layer (scanned) have
`start == end` and `text_layer: false` until the worker's OCR appends their text and marks them `ocr`.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

PAGE_SEPARATOR = "\n\n"
MIN_TEXT_LAYER_CHARS = 10  # fewer (e.g. only a printed page number) and a PDF page is treated as scanned


def join_pages(pages: Iterable[Mapping[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """`{"page": n, "text": ..., **extra}` items -> (content, page map with the extras kept)."""
    parts: list[str] = []
    length = 0
    out: list[dict[str, Any]] = []
    for page in pages:
        text = page["text"].strip()
        if text:
            if parts:
                parts.append(PAGE_SEPARATOR)
                length += len(PAGE_SEPARATOR)
            parts.append(text)
        start = length
        length += len(text)
        out.append({"page": page["page"], "start": start, "end": length, **_extras(page)})
    return "".join(parts), out


def append_pages(
    content: str, pages: Sequence[Mapping[str, Any]], texts: Iterable[tuple[int, str]]
) -> tuple[str, list[dict[str, Any]]]:
    """OCR text of pages appended to `content`, each page's entry pointing at it (`ocr: true`).
    Idempotent: a page whose text the content already holds (a re-encode) is located, not appended."""
    by_page = {int(p["page"]): dict(p) for p in pages}
    for number, raw in texts:
        text = raw.strip()
        if not text:  # read, nothing found: not to be OCR'd again
            by_page[number] = {**by_page.get(number, {"page": number, "start": 0, "end": 0}), "ocr": True}
            continue
        start = content.find(text)
        if start < 0:
            content = f"{content}{PAGE_SEPARATOR}{text}" if content else text
            start = len(content) - len(text)
        by_page[number] = {**by_page.get(number, {"page": number}), "start": start, "end": start + len(text)}
        by_page[number].update(text_layer=False, ocr=True)
    return content, [by_page[n] for n in sorted(by_page)]


def clip_pages(pages: list[dict[str, Any]], length: int) -> list[dict[str, Any]]:
    """The page map of content cut to `length` characters: pages past the cut are dropped."""
    return [{**p, "end": min(p["end"], length)} for p in pages if p["start"] <= length]


def pages_to_ocr(pages: Sequence[Mapping[str, Any]]) -> list[int]:
    """Page numbers whose text must come from OCR: no text layer and not yet read."""
    return [int(p["page"]) for p in pages if p.get("text_layer") is False and not p.get("ocr")]


def in_content_order(pages: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The pages that hold text, by where they lie in `content` (OCR'd pages are appended after the text
    layer's, so page order is not content order)."""
    return sorted((p for p in pages if int(p["end"]) > int(p["start"])), key=lambda p: int(p["start"]))


def page_of(offset: int, pages: Sequence[Mapping[str, Any]]) -> int | None:
    """The page holding a character offset of `content` (one between pages: the page before it); None
    without pages or before the first."""
    ordered = in_content_order(pages)  # linear on pages already in content order
    at = bisect.bisect_right([int(p["start"]) for p in ordered], offset) - 1
    return int(ordered[at]["page"]) if at >= 0 else None


def _extras(page: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in page.items() if key not in ("page", "text")}
