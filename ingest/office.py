"""PowerPoint and Excel files -> text with a page map (slides and sheets as pages), with python-pptx and
openpyxl. Both are zip packages: the caller checks the declared unpacked size first (zip-bomb guard)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import date, datetime, time
from typing import Any

from ingest.pages import join_pages

MAX_SHEET_CELLS = 200_000  # cells read per workbook, over all sheets: a huge export is cut, flagged


def pptx_parts(data: bytes, max_chars: int) -> tuple[str | None, str, dict[str, Any], list[dict[str, Any]]]:
    """(title, content, metadata, pages): each slide's text frames, tables and speaker notes, in order."""
    from pptx import Presentation

    deck = Presentation(io.BytesIO(data))
    slides, total = [], 0
    for number, slide in enumerate(deck.slides, start=1):
        if total >= max_chars:
            break
        lines = [text for shape in slide.shapes for text in _shape_text(shape)]
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            lines.append(slide.notes_slide.notes_text_frame.text)
        text = "\n".join(line.strip() for line in lines if line and line.strip())
        slides.append({"page": number, "text": text})
        total += len(text)
    content, pages = join_pages(slides)
    props = deck.core_properties
    title = props.title or _first_slide_title(deck)
    metadata = {
        "page_count": len(deck.slides),
        "slide_count": len(deck.slides),
        "author": props.author,
        "subject": props.subject,
        "keywords": props.keywords,
        "created_at": props.created.isoformat() if props.created else None,
        "modified_at": props.modified.isoformat() if props.modified else None,
    }
    return title, content, metadata, pages


def _shape_text(shape: Any) -> Iterator[str]:
    """Text of a shape, a table's rows (tab-separated) or a group's members."""
    from pptx.shapes.group import GroupShape

    if isinstance(shape, GroupShape):
        for member in shape.shapes:
            yield from _shape_text(member)
    elif getattr(shape, "has_table", False) and shape.has_table:
        for row in shape.table.rows:
            yield "\t".join(cell.text for cell in row.cells)
    elif getattr(shape, "has_text_frame", False) and shape.has_text_frame:
        yield shape.text_frame.text


def _first_slide_title(deck: Any) -> str | None:
    for slide in deck.slides:
        title = slide.shapes.title
        if title is not None and title.has_text_frame and title.text_frame.text.strip():
            return title.text_frame.text
    return None


def xlsx_parts(data: bytes, max_chars: int) -> tuple[str | None, str, dict[str, Any], list[dict[str, Any]]]:
    """(title, content, metadata, pages): per sheet its name, then its non-empty rows tab-separated.
    Cached values are read (not formulas); at most `MAX_SHEET_CELLS` cells and `max_chars` characters."""
    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    try:
        sheets, total, cells, cut = [], 0, 0, False
        for number, sheet in enumerate(book.worksheets, start=1):
            lines = [sheet.title]
            for row in sheet.iter_rows(values_only=True):
                cells += len(row)
                if cells > MAX_SHEET_CELLS or total >= max_chars:
                    cut = True
                    break
                values = [_cell(value) for value in row]
                if any(values):
                    line = "\t".join(values).rstrip("\t")
                    lines.append(line)
                    total += len(line) + 1
            sheets.append({"page": number, "text": "\n".join(lines), "sheet": sheet.title})
            if cut:
                break
        content, pages = join_pages(sheets)
        props = book.properties
        metadata = {
            "sheet_count": len(book.worksheets),
            "sheet_names": ", ".join(sheet.title for sheet in book.worksheets),
            "author": props.creator,
            "subject": props.subject,
            "keywords": props.keywords,
            "created_at": props.created.isoformat() if props.created else None,
            "modified_at": props.modified.isoformat() if props.modified else None,
            "content_truncated": cut or None,
        }
        return props.title, content, metadata, pages
    finally:
        book.close()


def _cell(value: Any) -> str:
    """A cell as text: dates in ISO form, whole floats without '.0', empty for None."""
    if value is None:
        return ""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return " ".join(str(value).split())
