"""Office formats, e-mail and PDF page maps: detection from the bytes and extraction (no services)."""

from __future__ import annotations

import io
import zipfile

import pytest

from bench import media_fixtures as mf
from core.config import LimitSettings, Settings
from encoders.extractor import Extraction
from ingest import office
from ingest.extract import extract
from ingest.lifecycle import encoder_text, extracted_fields
from ingest.pages import append_pages, join_pages, pages_to_ocr
from media.decode import MediaError
from media.filetypes import UnsupportedType, detect
from media.pdf import render_pages
from tests.test_ingest_files import make_pdf

PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def page_text(content: str, pages: list[dict], number: int) -> str:
    page = next(p for p in pages if p["page"] == number)
    return content[page["start"] : page["end"]]


def test_pptx_slides_and_notes_are_pages() -> None:
    data = mf.make_pptx(
        [("Roadmap", "Launch in spring", "mention the hamburg office"), ("Budget", "Costs fall", "")],
        title="Strategy",
    )
    found = extract(data, "deck.bin", "application/octet-stream")
    assert (found.mime, found.modality, found.title) == (PPTX, "document", "Strategy")
    assert page_text(found.content, found.pages, 1) == "Roadmap\nLaunch in spring\nmention the hamburg office"
    assert page_text(found.content, found.pages, 2) == "Budget\nCosts fall"
    assert found.metadata["slide_count"] == 2


def test_xlsx_sheets_are_pages_and_cells_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    data = mf.make_xlsx(
        {"Sales": [["region", "revenue"], ["north", 1200.0], [None, None], ["south", 3.5]], "Notes": [["ok"]]}
    )
    found = extract(data, "book.xlsx")
    assert found.mime == XLSX and found.metadata["sheet_names"] == "Sales, Notes"
    assert page_text(found.content, found.pages, 1) == "Sales\nregion\trevenue\nnorth\t1200\nsouth\t3.5"
    assert [p.get("sheet") for p in found.pages] == ["Sales", "Notes"]
    monkeypatch.setattr(office, "MAX_SHEET_CELLS", 4)
    cut = extract(data, "book.xlsx")
    assert cut.metadata["content_truncated"] is True and "south" not in cut.content


def test_office_zip_bombs_and_other_zips_are_refused() -> None:
    data = mf.make_xlsx({"S": [["x" * 1000] * 50]})
    with pytest.raises(MediaError, match="unpacks to"):
        extract(data, "book.xlsx", settings=Settings(limits=LimitSettings(max_unpacked_bytes=1000)))
    other = io.BytesIO()
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("ppt/presentation.xml", "<p/>")  # no [Content_Types].xml: not a package
    with pytest.raises(UnsupportedType, match="unsupported file type"):
        detect(other.getvalue(), "deck.pptx")


def test_eml_headers_body_and_attachments() -> None:
    pdf = make_pdf(["Merger terms attached"], "Terms", "Legal")
    data = mf.make_eml(
        "Merger approved", "The board approved the merger.", [("terms.pdf", "application/pdf", pdf)]
    )
    found = extract(data, "mail.eml")
    assert (found.mime, found.modality, found.title) == ("message/rfc822", "document", "Merger approved")
    assert found.content == "The board approved the merger."
    meta = found.metadata
    assert meta["email_from"] == "Ann Smith <ann@example.com>" and meta["email_to"] == "board@example.com"
    assert meta["email_date"] == "2024-01-02T10:30:00+01:00" and meta["attachment_count"] == 1
    [attachment] = found.attachments
    assert (attachment.filename, attachment.data) == ("terms.pdf", pdf)
    assert "Merger terms" in extract(attachment.data, attachment.filename, attachment.mime).content


def test_text_with_one_colon_line_is_not_mail() -> None:
    assert detect(b"Note: buy milk\nand bread\n", "note.txt").mime == "text/plain"
    assert detect(b"From: a@b.c\nSubject: hi\n\nbody\n").mime == "message/rfc822"


def test_mixed_pdf_keeps_its_text_layer_and_marks_scanned_pages() -> None:
    data = mf.merged_pdf(make_pdf(["Photosynthesis converts light"], "Bio", "A"), mf.scanned_pdf([["HELLO"]]))
    found = extract(data, "mixed.pdf")
    assert page_text(found.content, found.pages, 1) == "Photosynthesis converts light"
    assert pages_to_ocr(found.pages) == [2] and found.metadata["pages_without_text"] == 1
    [(number, image)] = list(render_pages(data, [2], dpi=100, max_pixels=200_000))
    assert number == 2 and 0 < image.width * image.height <= 200_000
    with pytest.raises(MediaError, match="page 3 does not exist"):
        list(render_pages(data, [3], dpi=100, max_pixels=200_000))


def test_ocr_pages_append_with_page_numbers_idempotently() -> None:
    content, pages = join_pages(
        [
            {"page": 1, "text": "first page"},
            {"page": 2, "text": "", "text_layer": False},
            {"page": 3, "text": ""},
        ]
    )
    assert pages_to_ocr(pages) == [2]
    source = {"title": "T", "content": content, "pages": pages}
    ocr = {"ocr": Extraction("scanned words", segments=[{"page": 2, "text": "scanned words"}])}
    fields = extracted_fields(source, ocr)
    assert page_text(fields["content"], fields["pages"], 2) == "scanned words"
    assert (
        page_text(fields["content"], fields["pages"], 1) == "first page"
        and pages_to_ocr(fields["pages"]) == []
    )
    again = extracted_fields({**source, **fields}, ocr)  # a re-encode appends nothing twice
    assert again["content"] == fields["content"] and again["pages"] == fields["pages"]
    assert encoder_text(source, ocr) == f"T. {fields['content']}"
    _, blank = append_pages(content, pages, [(2, "  ")])
    assert pages_to_ocr(blank) == []  # read once, nothing found: not OCR'd on every re-encode
