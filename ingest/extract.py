"""Bytes -> the parts of an index document that need no model: title, text, modality, metadata.

OCR and speech-to-text come later, in the workers. Everything here is cheap enough to run inside the
upload request, so a document's text is searchable at once. Third-party parsers (pypdf,
python-docx, Pillow, libsndfile) see untrusted bytes; their failures become `MediaError`, which the
API reports as a 4xx naming the problem.
"""

from __future__ import annotations

import io
import math
import re
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from html.parser import HTMLParser
from pathlib import PurePosixPath
from typing import Any
from xml.etree import ElementTree

import docx
import pypdf
from docx.table import Table
from PIL import ExifTags, Image

from core.config import Settings, get_settings
from ingest.mail import Attachment, parse_mail
from ingest.office import pptx_parts, xlsx_parts
from ingest.pages import MIN_TEXT_LAYER_CHARS, clip_pages, join_pages
from media.decode import IMAGE_FORMATS, MediaError, load_image, probe_audio
from media.filetypes import FileType, decode_text, detect

Scalar = str | int | float | bool
MAX_METADATA_CHARS = 1024  # the mapping's `ignore_above`: longer values would not be searchable
_DOCX_MIME = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
_PPTX_MIME = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
_XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_AUDIO_TAGS = ("artist", "album", "date", "genre", "comment", "copyright", "software")


@dataclass
class Extracted:
    title: str | None
    content: str  # body text; empty for images and audio until OCR / ASR fill it in
    modality: str  # image | audio | document | text
    mime: str
    mislabelled: bool = False  # the declared name or Content-Type disagreed with the bytes
    metadata: dict[str, Scalar] = field(default_factory=dict)  # JSON scalars for the `flattened` field
    pages: list[dict[str, Any]] = field(default_factory=list)  # see ingest.pages: offsets into `content`
    attachments: list[Attachment] = field(default_factory=list)  # e-mail attachments: child documents


@dataclass
class Parts:
    """What one format's extractor finds."""

    title: str | None
    content: str
    metadata: dict[str, Any]
    pages: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)


@dataclass
class _Limits:
    max_pixels: int
    max_audio_seconds: float
    max_text_chars: int
    max_unpacked_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings) -> _Limits:
        return cls(
            max_pixels=settings.limits.max_image_pixels,
            max_audio_seconds=settings.limits.max_audio_seconds,
            max_text_chars=settings.limits.max_text_chars,
            max_unpacked_bytes=settings.limits.max_unpacked_bytes,
        )


def extract(
    data: bytes,
    filename: str | None = None,
    declared_mime: str | None = None,
    settings: Settings | None = None,
) -> Extracted:
    """Detect the type from the bytes and extract title, text and metadata.

    Raises `EmptyFile` / `UnsupportedType` (from detection) and `MediaError` for files of a supported
    type that can't be read (corrupt, encrypted, over a size limit).
    """
    kind = detect(data, filename, declared_mime)
    limits = _Limits.from_settings(settings or get_settings())
    parts = _EXTRACTORS[kind.mime](data, kind, limits)
    content, truncated = _cap(parts.content, limits.max_text_chars)
    if truncated:
        parts.metadata["content_truncated"] = True
    return Extracted(
        title=_clean(parts.title) or _filename_title(filename),
        content=content,
        modality=kind.modality,
        mime=kind.mime,
        mislabelled=kind.mislabelled,
        metadata={k: v for k, v in ((k, _scalar(v)) for k, v in parts.metadata.items()) if v is not None},
        pages=clip_pages(parts.pages, len(content)) if truncated else parts.pages,
        attachments=parts.attachments,
    )


def _image(data: bytes, kind: FileType, limits: _Limits) -> Parts:
    """Decoding the whole image proves it isn't truncated or a bomb before it is accepted."""
    img = load_image(data, max_pixels=limits.max_pixels)
    # EXIF is read from the original: the upright RGB copy no longer carries it.
    with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as original:
        metadata = {"format": original.format, "width": img.width, "height": img.height}
        frames = getattr(original, "n_frames", 1)
        metadata.update(_exif(original.getexif()))
    if frames > 1:
        metadata["frames"] = frames
    return Parts(None, "", metadata)


def _exif(exif: Image.Exif) -> dict[str, Any]:
    """Camera, capture time and position, as plain strings and decimal degrees."""
    sub = exif.get_ifd(ExifTags.IFD.Exif)
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    metadata: dict[str, Any] = {
        "camera_make": exif.get(ExifTags.Base.Make),
        "camera_model": exif.get(ExifTags.Base.Model),
        "lens_model": sub.get(ExifTags.Base.LensModel),
        "software": exif.get(ExifTags.Base.Software),
        "description": exif.get(ExifTags.Base.ImageDescription),
        "orientation": exif.get(ExifTags.Base.Orientation),
        "taken_at": _exif_datetime(
            sub.get(ExifTags.Base.DateTimeOriginal) or exif.get(ExifTags.Base.DateTime),
            sub.get(ExifTags.Base.OffsetTimeOriginal),
        ),
    }
    lat = _gps_degrees(gps.get(ExifTags.GPS.GPSLatitude), gps.get(ExifTags.GPS.GPSLatitudeRef), 90)
    lon = _gps_degrees(gps.get(ExifTags.GPS.GPSLongitude), gps.get(ExifTags.GPS.GPSLongitudeRef), 180)
    if lat is not None and lon is not None:
        metadata.update(gps_lat=lat, gps_lon=lon)
    return metadata


def _exif_datetime(value: Any, offset: Any) -> str | None:
    """EXIF's 'YYYY:MM:DD HH:MM:SS' (+ optional '+02:00' offset) as ISO 8601; None for zeros/garbage."""
    if not isinstance(value, str):
        return None
    try:
        taken = datetime.strptime(value.strip("\x00 ")[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    if isinstance(offset, str) and re.fullmatch(r"[+-]\d\d:\d\d", offset.strip("\x00 ")):
        return taken.isoformat() + offset.strip("\x00 ")
    return taken.isoformat()


def _gps_degrees(dms: Any, ref: Any, bound: float) -> float | None:
    """Degrees/minutes/seconds rationals + N/S/E/W -> signed decimal degrees (None if malformed)."""
    try:
        degrees, minutes, seconds = (float(part) for part in dms)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    value = degrees + minutes / 60 + seconds / 3600
    if isinstance(ref, bytes):
        ref = ref.decode("ascii", "replace")
    if isinstance(ref, str) and ref.strip("\x00 ").upper() in ("S", "W"):
        value = -value
    return round(value, 7) if math.isfinite(value) and abs(value) <= bound else None


def _audio(data: bytes, kind: FileType, limits: _Limits) -> Parts:
    """Header facts only; the full decode (and any corruption inside the stream) is the worker's."""
    info = probe_audio(data)
    if info.duration > limits.max_audio_seconds:
        raise MediaError(
            f"audio is {info.duration:.1f} s long, over the limit of {limits.max_audio_seconds:.0f} s"
        )
    if info.duration <= 0:
        raise MediaError("audio has no samples")
    tags = info.tags or {}
    metadata = {
        "duration": round(info.duration, 3),
        "sample_rate": info.sample_rate,
        "channels": info.channels,
        "format": info.format,
        "subtype": info.subtype or None,
    }
    metadata.update({name: tags.get(name) for name in _AUDIO_TAGS})
    return Parts(tags.get("title"), "", metadata)


def _pdf(data: bytes, kind: FileType, limits: _Limits) -> Parts:
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise MediaError("encrypted PDF: a password is needed to read it")
        info = reader.metadata or pypdf.DocumentInformation()
        page_texts, failed = _pdf_text(reader, limits.max_text_chars)
        content, pages = join_pages(page_texts)
        scanned = sum(not page["text_layer"] for page in pages)
        metadata = {
            "page_count": len(reader.pages),
            "author": info.author,
            "subject": info.subject,
            "creator": info.creator,
            "producer": info.producer,
            "created_at": _pdf_date(info, "creation_date"),
            "modified_at": _pdf_date(info, "modification_date"),
            "unreadable_pages": failed or None,
            "pages_without_text": scanned or None,
        }
        return Parts(info.title, content, metadata, pages)
    except MediaError:
        raise
    except Exception as exc:  # pypdf raises many types on malformed input; all mean a broken PDF
        raise MediaError(f"unreadable PDF: {exc}") from exc


def _pdf_text(reader: pypdf.PdfReader, max_chars: int) -> tuple[list[dict[str, Any]], int]:
    """Per page its text and whether it has a text layer (scanned pages have none: the worker OCRs them),
    until `max_chars` is reached; a page that can't be parsed is skipped and counted."""
    pages: list[dict[str, Any]] = []
    failed = total = 0
    for number, page in enumerate(reader.pages, start=1):
        if total >= max_chars:
            break
        try:
            text = (page.extract_text() or "").strip()
        except Exception:  # one bad content stream shouldn't lose the rest of the document
            failed += 1
            continue
        layer = len("".join(text.split())) >= MIN_TEXT_LAYER_CHARS
        pages.append({"page": number, "text": text, "text_layer": layer})
        total += len(text)
    return pages, failed


def _pdf_date(info: Any, attribute: str) -> str | None:
    try:
        value = getattr(info, attribute, None)
    except Exception:  # malformed date strings raise from pypdf's parser
        return None
    return value.isoformat() if isinstance(value, datetime) else None


def _docx(data: bytes, kind: FileType, limits: _Limits) -> Parts:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            _check_unpacked_size(archive, limits.max_unpacked_bytes)
            page_count = _docx_page_count(archive)
        document = docx.Document(io.BytesIO(data))
        props = document.core_properties
        metadata = {
            "page_count": page_count,
            "author": props.author,
            "subject": props.subject,
            "keywords": props.keywords,
            "created_at": props.created.isoformat() if props.created else None,
            "modified_at": props.modified.isoformat() if props.modified else None,
        }
        return Parts(props.title, _docx_text(document), metadata)
    except MediaError:
        raise
    except Exception as exc:  # python-docx/lxml/zipfile raise many types on malformed input
        raise MediaError(f"unreadable DOCX: {exc}") from exc


def _check_unpacked_size(archive: zipfile.ZipFile, limit: int) -> None:
    """Refuse zip bombs by the declared sizes (zipfile never inflates a member past its declared size)."""
    unpacked = sum(info.file_size for info in archive.infolist())
    if unpacked > limit:
        raise MediaError(f"document unpacks to {unpacked} bytes, over the limit of {limit}")


def _docx_page_count(archive: zipfile.ZipFile) -> int | None:
    """Word stores the page count it last rendered in docProps/app.xml; python-docx doesn't expose it."""
    try:
        root = ElementTree.fromstring(archive.read("docProps/app.xml"))
    except (KeyError, ElementTree.ParseError):
        return None
    pages = root.find("{http://schemas.openxmlformats.org/officeDocument/2006/extended-properties}Pages")
    return int(pages.text) if pages is not None and (pages.text or "").isdigit() else None


def _docx_text(document: Any) -> str:
    """Paragraphs and tables in reading order (a table becomes tab-separated rows)."""
    blocks: list[str] = []
    for item in document.iter_inner_content():
        if isinstance(item, Table):
            blocks.extend("\t".join(cell.text for cell in row.cells) for row in item.rows)
        else:
            blocks.append(item.text)
    return "\n".join(b for b in blocks if b.strip())


def _office(data: bytes, kind: FileType, limits: _Limits) -> Parts:
    """PowerPoint and Excel, after the same zip-bomb guard as Word."""
    name = kind.extension.upper()
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            _check_unpacked_size(archive, limits.max_unpacked_bytes)
        read = pptx_parts if kind.extension == "pptx" else xlsx_parts
        return Parts(*read(data, limits.max_text_chars))
    except MediaError:
        raise
    except Exception as exc:  # python-pptx/openpyxl/lxml/zipfile raise many types on malformed input
        raise MediaError(f"unreadable {name}: {exc}") from exc


def _eml(data: bytes, kind: FileType, limits: _Limits) -> Parts:
    """Headers as metadata, the body as text; attachments travel on for the caller to ingest."""
    try:
        mail = parse_mail(data)
    except Exception as exc:  # the email package is lenient, but hostile input still finds corners
        raise MediaError(f"unreadable e-mail: {exc}") from exc
    body = mail.body
    if mail.html_body is not None:
        body = _html(mail.html_body.encode("utf-8"), kind, limits).content
    return Parts(mail.subject, body.strip(), mail.metadata, attachments=mail.attachments)


class _HTMLText(HTMLParser):
    """Visible text of an HTML page, with <title>, author, description and language on the side."""

    _SKIP = {"script", "style", "noscript", "template", "svg"}
    _BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title: list[str] = []
        self.meta: dict[str, str] = {}
        self._skip_depth = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        if tag == "title":
            self._in_title = True
        elif tag == "meta" and attributes.get("name", "").lower() in ("author", "description", "keywords"):
            self.meta[attributes["name"].lower()] = attributes.get("content", "")
        elif tag == "html" and attributes.get("lang"):
            self.meta["lang"] = attributes["lang"]
        if tag in self._SKIP:
            self._skip_depth += 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in self._SKIP and self._skip_depth:
            self._skip_depth -= 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title.append(data)
        elif not self._skip_depth:
            self.parts.append(data)


def _html(data: bytes, kind: FileType, limits: _Limits) -> Parts:
    parser = _HTMLText()
    parser.feed(_text(data))
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return Parts("".join(parser.title), "\n".join(line for line in lines if line), dict(parser.meta))


def _plain(data: bytes, kind: FileType, limits: _Limits) -> Parts:
    text = _text(data)
    title = _markdown_title(text) if kind.mime == "text/markdown" else None
    return Parts(title, text, {})


def _markdown_title(text: str) -> str | None:
    """The first level-1 ATX heading (`# Title #`), found line by line (no backtracking regex)."""
    for line in text.splitlines():
        if line.startswith(("# ", "#\t")):
            title = line[1:].strip()
            unclosed = title.rstrip("#")  # a closing run of '#' counts only after a space: keep 'C#'
            return (unclosed.strip() if not unclosed or unclosed[-1] in " \t" else title) or None
    return None


def _text(data: bytes) -> str:
    text = decode_text(data)
    if text is None:  # detection said text; only a race with a changed buffer could get here
        raise MediaError("text is not valid UTF-8")
    return text


_EXTRACTORS = {
    "image/jpeg": _image,
    "image/png": _image,
    "image/webp": _image,
    "image/gif": _image,
    "image/bmp": _image,
    "image/tiff": _image,
    "audio/wav": _audio,
    "audio/flac": _audio,
    "audio/ogg": _audio,
    "audio/mpeg": _audio,
    "audio/mp4": _audio,
    "application/pdf": _pdf,
    _DOCX_MIME: _docx,
    _PPTX_MIME: _office,
    _XLSX_MIME: _office,
    "message/rfc822": _eml,
    "text/html": _html,
    "text/plain": _plain,
    "text/markdown": _plain,
    "application/json": _plain,
    "application/xml": _plain,
}


def _filename_title(filename: str | None) -> str | None:
    """'reports/Q3 results.pdf' -> 'Q3 results' (Windows separators too)."""
    if not filename:
        return None
    return _clean(PurePosixPath(filename.replace("\\", "/")).stem)


def _clean(value: Any) -> str | None:
    """Strip NULs and surrounding space that PDF/EXIF strings often carry; empty -> None."""
    if value is None:
        return None
    text = " ".join(str(value).replace("\x00", " ").split())
    return text or None


def _scalar(value: Any) -> Scalar | None:
    """Metadata values the `flattened` field can index: bool/int/finite float/short string."""
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = _clean(value)
    return text[:MAX_METADATA_CHARS] if text else None


def _cap(text: str, max_chars: int) -> tuple[str, bool]:
    return (text, False) if len(text) <= max_chars else (text[:max_chars], True)
