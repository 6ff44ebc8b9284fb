"""What a file is, judged from its bytes: a client's filename or Content-Type is only a hint.

Extensions and declared types are compared with the bytes so a mislabelled upload can be flagged,
but the bytes always decide which extractor and decoder run. Anything outside the supported set is
refused with `UnsupportedType`, whose message names what the bytes look like.
"""

from __future__ import annotations

import codecs
import io
import json
import mimetypes
import re
import struct
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath

import filetype as _filetype

from core.errors import MmsearchError


class IngestError(MmsearchError, ValueError):
    """Bad client input (a file or payload that can't be ingested); still a `ValueError` for callers
    that treat it as one."""


class EmptyFile(IngestError):
    """Zero bytes: nothing to detect, store or index."""


class UnsupportedType(IngestError):
    """The bytes are not one of the supported formats."""

    status = 415


@dataclass(frozen=True)
class FileType:
    mime: str
    modality: str  # image | audio | document | text
    extension: str  # canonical, without the dot
    mislabelled: bool = False  # the declared filename extension or Content-Type disagreed with the bytes


# mime -> (modality, canonical extension, other extensions a client may use for it)
SUPPORTED: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "image/jpeg": ("image", "jpg", ("jpeg", "jpe", "jfif")),
    "image/png": ("image", "png", ("apng",)),
    "image/webp": ("image", "webp", ()),
    "image/gif": ("image", "gif", ()),
    "image/bmp": ("image", "bmp", ("dib",)),
    "image/tiff": ("image", "tiff", ("tif",)),
    "audio/wav": ("audio", "wav", ("wave",)),
    "audio/flac": ("audio", "flac", ()),
    "audio/ogg": ("audio", "ogg", ("oga", "opus")),
    "audio/mpeg": ("audio", "mp3", ()),
    "audio/mp4": ("audio", "m4a", ("m4b", "mp4", "aac")),
    "application/pdf": ("document", "pdf", ()),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ("document", "docx", ()),
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": ("document", "pptx", ()),
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ("document", "xlsx", ()),
    "message/rfc822": ("document", "eml", ()),
    "text/html": ("document", "html", ("htm", "xhtml")),
    "text/plain": ("text", "txt", ("text", "log", "csv", "tsv", "rst")),
    "text/markdown": ("text", "md", ("markdown",)),
    "application/json": ("text", "json", ()),
    "application/xml": ("text", "xml", ()),
}

# Spellings of the same type seen in the wild, mapped to the names used above.
_ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "image/x-png": "image/png",
    "image/x-ms-bmp": "image/bmp",
    "image/x-bmp": "image/bmp",
    "audio/x-wav": "audio/wav",
    "audio/wave": "audio/wav",
    "audio/vnd.wave": "audio/wav",
    "audio/x-flac": "audio/flac",
    "audio/mp3": "audio/mpeg",
    "audio/mpeg3": "audio/mpeg",
    "audio/x-mpeg": "audio/mpeg",
    "audio/x-m4a": "audio/mp4",
    "audio/m4a": "audio/mp4",
    "audio/aac": "audio/mp4",
    "audio/opus": "audio/ogg",
    "application/ogg": "audio/ogg",
    "application/x-pdf": "application/pdf",
    "application/xhtml+xml": "text/html",
    "text/xml": "application/xml",
    "text/x-markdown": "text/markdown",
    "text/json": "application/json",
}

_GENERIC_MIMES = {"", "application/octet-stream", "binary/octet-stream", "application/unknown"}
_TEXTUAL_MIMES = {"text/plain", "text/markdown", "application/json", "application/xml", "text/html"}
_BUILTIN_MIMETYPES = mimetypes.MimeTypes()  # Python's own table only: same answers on every machine
_BMP_DIB_HEADER_SIZES = {12, 40, 52, 56, 64, 108, 124}
_M4A_BRANDS = {b"M4A ", b"M4B ", b"M4P "}
_HTML_START = re.compile(r"<(!doctype\s+html|html|head|body)\b")
_SVG_START = re.compile(r"(<!doctype\s+svg[^>]*>\s*)?<svg\b")


def detect(data: bytes, filename: str | None = None, declared_mime: str | None = None) -> FileType:
    """Detect the type of `data`; raise `EmptyFile` or `UnsupportedType` when it can't be ingested."""
    if not data:
        raise EmptyFile("empty file (0 bytes)")
    mime = _sniff_binary(data) or _sniff_text(data, filename, declared_mime) or _sniff_late_pdf(data)
    if mime is None:
        raise UnsupportedType(f"unsupported file type: {_describe_unknown(data)}")
    modality, extension, _ = SUPPORTED[mime]
    return FileType(mime, modality, extension, _mislabelled(mime, filename, declared_mime))


def decode_text(data: bytes) -> str | None:
    """Decode UTF-8 (with or without BOM) or BOM-marked UTF-16 text; None when the bytes aren't text."""
    encoding = "utf-16" if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) else "utf-8-sig"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        return None
    return text if _looks_textual(text) else None


def normalise_mime(mime: str | None) -> str:
    """Lower-case, parameters dropped, aliases folded: `Audio/X-WAV; rate=8000` -> `audio/wav`."""
    base = (mime or "").split(";", 1)[0].strip().lower()
    return _ALIASES.get(base, base)


def _sniff_binary(data: bytes) -> str | None:
    """Magic numbers of the supported binary formats (checked before text: a PDF can be pure ASCII)."""
    head = data[:64]
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith((b"RIFF", b"RF64")) and head[8:12] == b"WAVE":
        return "audio/wav"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "image/tiff"
    if _is_bmp(head):
        return "image/bmp"
    if head.startswith(b"fLaC"):
        return "audio/flac"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head[4:8] == b"ftyp" and head[8:12] in _M4A_BRANDS:
        return "audio/mp4"
    if head.startswith(b"ID3") or _is_mpeg_layer3_frame(head):
        return "audio/mpeg"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith(b"PK\x03\x04"):
        return _office_type(data)
    if _is_email(data):
        return "message/rfc822"
    return None


def _sniff_late_pdf(data: bytes) -> str | None:
    """Readers accept a PDF header anywhere in the first KiB; only binary data gets that benefit,
    so a text file that merely mentions '%PDF-' stays text."""
    return "application/pdf" if b"%PDF-" in data[:1024] else None


def _is_bmp(head: bytes) -> bool:
    """'BM' alone is too weak (text starts with it); the DIB header size must be a known one too."""
    if not head.startswith(b"BM") or len(head) < 18:
        return False
    return struct.unpack("<I", head[14:18])[0] in _BMP_DIB_HEADER_SIZES


def _is_mpeg_layer3_frame(head: bytes) -> bool:
    """An MPEG audio frame header (11 sync bits) for layer III, as in an mp3 without an ID3 tag."""
    return len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and (head[1] >> 1) & 0x3 == 0x1


# Office Open XML packages: a zip with `[Content_Types].xml` and the main part of its application.
_OFFICE_PARTS = {
    "word/document.xml": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "ppt/presentation.xml": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "xl/workbook.xml": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
_EMAIL_HEADERS = {"from", "to", "cc", "subject", "date", "message-id", "mime-version", "received", "reply-to"}
_HEADER_LINE = re.compile(rb"^([A-Za-z0-9-]{1,76}):[ \t]?")


def _office_type(data: bytes) -> str | None:
    """Word, PowerPoint or Excel by the package's main part (only the zip's central directory is read,
    nothing is inflated); other zips are unsupported."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return None
    if "[Content_Types].xml" not in names:
        return None
    return next((mime for part, mime in _OFFICE_PARTS.items() if part in names), None)


def _is_email(data: bytes) -> bool:
    """An RFC 5322 message: its first lines are all header fields (continuations indented), and at least
    two of them are ones every mail carries (From, Subject, Date, ...). Read as Latin-1, so 8-bit bodies
    in any charset still count."""
    seen: set[str] = set()
    for line in data[:16384].split(b"\n"):
        line = line.rstrip(b"\r")
        if not line:
            break
        if line[:1] in (b" ", b"\t") and seen:
            continue
        match = _HEADER_LINE.match(line)
        if not match:
            return False
        seen.add(match.group(1).decode("latin-1").lower())
    return len(seen & _EMAIL_HEADERS) >= 2 and bool(seen & {"from", "mime-version"})


def _sniff_text(data: bytes, filename: str | None, declared_mime: str | None) -> str | None:
    """Text is told apart by content (html, json, xml); markdown only by its declared name or type."""
    text = decode_text(data)
    if text is None:
        return None
    start = text.lstrip()
    root = _markup_root(start[:4096])
    if _HTML_START.match(root):
        return "text/html"
    if _SVG_START.match(root):
        raise UnsupportedType("unsupported file type: image/svg+xml (a scriptable image format)")
    if start.startswith("<?xml"):
        return "application/xml"
    if start.startswith(("{", "[")) and _is_json(text):
        return "application/json"
    declared = {_extension_mime(filename), normalise_mime(declared_mime)}
    return "text/markdown" if "text/markdown" in declared else "text/plain"


def _markup_root(start: str) -> str:
    """Lower-cased text after any XML declaration, comments and whitespace: where `<html` would be.

    A loop rather than one regex, whose nested repetition backtracks exponentially on hostile input.
    """
    while start.startswith(("<?xml", "<!--")):
        close = "?>" if start.startswith("<?") else "-->"
        end = start.find(close)
        if end < 0:
            return ""
        start = start[end + len(close) :].lstrip()
    return start[:256].lower()


def _looks_textual(text: str) -> bool:
    """No NULs and (almost) no other control characters: binary formats are full of both."""
    if "\x00" in text:
        return False
    sample = text[:65536]
    controls = sum(1 for ch in sample if ch < " " and ch not in "\t\n\r\f\v\x1b")
    return controls <= len(sample) // 100


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except (ValueError, RecursionError):  # deeply nested JSON is stored as plain text, never a 500
        return False
    return True


def _describe_unknown(data: bytes) -> str:
    """Name what an unsupported file is, for the error message."""
    kind = _filetype.guess(data)
    if kind is not None and kind.mime != "application/zip":
        return kind.mime
    if data.startswith(b"PK\x03\x04"):
        return "application/zip (not a .docx, .pptx or .xlsx)"
    return "unrecognised binary data (no known signature and not UTF-8 text)"


def _extension_mime(filename: str | None) -> str:
    """The type a filename's extension claims ('' for none or an unknown one)."""
    if not filename:
        return ""
    ext = PurePosixPath(filename.replace("\\", "/")).suffix.lower().lstrip(".")
    if not ext:
        return ""
    for mime, (_, canonical, others) in SUPPORTED.items():
        if ext == canonical or ext in others:
            return mime
    return normalise_mime(_BUILTIN_MIMETYPES.guess_type(f"x.{ext}")[0])


def _mislabelled(mime: str, filename: str | None, declared_mime: str | None) -> bool:
    """True when a non-generic hint names a different type than the bytes."""
    return any(
        not _compatible(hint, mime)
        for hint in (_extension_mime(filename), normalise_mime(declared_mime))
        if hint not in _GENERIC_MIMES
    )


def _compatible(hint: str, mime: str) -> bool:
    """Text-like types stand in for each other (a .py or .csv file is plain text, html may say text/plain)."""
    if hint == mime:
        return True
    return mime in _TEXTUAL_MIMES and (hint.startswith("text/") or hint in _TEXTUAL_MIMES)
