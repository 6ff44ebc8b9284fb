"""PDF pages as images, for OCR of scanned pages: PDFium (pypdfium2) renders, bounded in pixels."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

from PIL import Image

from media.decode import MediaError


def render_pages(
    data: bytes, numbers: Sequence[int], dpi: int, max_pixels: int
) -> Iterator[tuple[int, Image.Image]]:
    """(page number, RGB image) for each 1-based page number, at `dpi` or less: a page whose image would
    exceed `max_pixels` is rendered smaller. One page is in memory at a time (a generator)."""
    import pypdfium2 as pdfium

    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        raise MediaError(f"unreadable PDF: {exc}") from exc
    try:
        for number in numbers:
            if not 1 <= number <= len(document):
                raise MediaError(f"PDF has {len(document)} pages; page {number} does not exist")
            page = document[number - 1]
            try:
                width, height = page.get_size()  # points: 1/72 inch
                scale = min(dpi / 72, math.sqrt(max_pixels / max(width * height, 1.0)))
                bitmap = page.render(scale=scale)
                yield number, bitmap.to_pil().convert("RGB")
            finally:
                page.close()
    finally:
        document.close()
