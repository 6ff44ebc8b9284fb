"""File ingestion on real media: type detection, safe decoding, extraction, blob store, crawler.

Every file is a real one made here: images from scikit-image saved by Pillow, speech spoken by
espeak-ng and converted by sox (and libsndfile for mp3), a PDF written byte by byte, a DOCX by
python-docx. Audio tests skip, saying why, where espeak-ng or sox is missing.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import shutil
import struct
import subprocess
import zipfile
import zlib
from pathlib import Path

import docx
import numpy as np
import pypdf
import pytest
import soundfile as sf
from PIL import ExifTags, Image
from skimage import data as skdata

from core.config import EngineSettings, LimitSettings, Settings
from ingest.blobstore import BlobStore, InvalidSha
from ingest.crawl import PathNotFound, iter_files
from ingest.extract import extract
from media.decode import MediaError, load_audio, load_image, probe_audio
from media.filetypes import EmptyFile, IngestError, UnsupportedType, detect

IMAGE_FORMATS = {
    "jpeg": ("image/jpeg", "jpg"),
    "png": ("image/png", "png"),
    "webp": ("image/webp", "webp"),
    "gif": ("image/gif", "gif"),
    "bmp": ("image/bmp", "bmp"),
    "tiff": ("image/tiff", "tiff"),
}
SPEECH = "hello world, this is a test of the speech ingestion pipeline"
needs_speech = pytest.mark.skipif(
    shutil.which("espeak-ng") is None or shutil.which("sox") is None,
    reason="needs espeak-ng and sox (apt-get install espeak-ng sox)",
)


@functools.cache
def astronaut() -> Image.Image:
    return Image.fromarray(skdata.astronaut())


def image_bytes(fmt: str, size: int = 128) -> bytes:
    img = astronaut().resize((size, size))
    out = io.BytesIO()
    img.save(out, format=fmt)
    return out.getvalue()


def exif_jpeg() -> bytes:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Canon"
    exif[ExifTags.Base.Model] = "EOS 5D Mark IV"
    sub = exif.get_ifd(ExifTags.IFD.Exif)
    sub[ExifTags.Base.DateTimeOriginal] = "2023:07:14 10:30:05"
    sub[ExifTags.Base.OffsetTimeOriginal] = "+10:00"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "S"
    gps[ExifTags.GPS.GPSLatitude] = (33.0, 51.0, 25.2)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (151.0, 12.0, 54.0)
    out = io.BytesIO()
    Image.fromarray(skdata.coffee()).save(out, format="JPEG", exif=exif)
    return out.getvalue()


def png_bomb(side: int = 30_000) -> bytes:
    """A real, valid 1-bit PNG of side x side black pixels: ~300 KB that would inflate to gigabytes."""
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed bits
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row * 1000) for _ in range(side // 1000)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def make_pdf(pages: list[str], title: str, author: str) -> bytes:
    """A minimal, valid PDF 1.4 written by hand (Helvetica text, one line per page, an Info dict)."""
    n = len(pages)
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(n))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {n} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for i, text in enumerate(pages):
        stream = f"BT /F1 14 Tf 72 720 Td ({text}) Tj ET".encode()
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {5 + 2 * i} 0 R "
            "/Resources << /Font << /F1 3 0 R >> >> >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objects.append(f"<< /Title ({title}) /Author ({author}) /CreationDate (D:20240102030405Z) >>".encode())
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info %d 0 R >>\n" % (len(objects) + 1, len(objects))
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def make_docx() -> bytes:
    document = docx.Document()
    document.core_properties.title = "Quarterly Report"
    document.core_properties.author = "Ada Lovelace"
    document.add_heading("Results", level=1)
    document.add_paragraph("Revenue grew in the third quarter.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "region", "sales"
    table.cell(1, 0).text, table.cell(1, 1).text = "north", "42"
    document.add_paragraph("Closing remarks after the table.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


HTML = """<!DOCTYPE html>
<html lang="en"><head><title>Cats &amp; Dogs</title>
<meta name="author" content="Jane Doe"><style>body { color: red }</style>
<script>var secret = "do not index";</script></head>
<body><h1>Pets</h1><p>Cats are <b>independent</b>.</p><p>Dogs are loyal.</p></body></html>
"""


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same spoken sentence as wav, flac, ogg (sox), a stereo flac and an mp3 (libsndfile)."""
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        pytest.skip("needs espeak-ng and sox (apt-get install espeak-ng sox)")
    folder = tmp_path_factory.mktemp("speech")
    files = {"wav": folder / "speech.wav"}
    subprocess.run(["espeak-ng", "-w", str(files["wav"]), SPEECH], check=True, capture_output=True)
    for ext in ("flac", "ogg"):
        files[ext] = folder / f"speech.{ext}"
        subprocess.run(["sox", str(files["wav"]), str(files[ext])], check=True, capture_output=True)
    files["stereo"] = folder / "stereo.flac"
    subprocess.run(["sox", str(files["wav"]), "-c", "2", str(files["stereo"])], check=True)
    samples, sr = sf.read(files["wav"])
    files["mp3"] = folder / "speech.mp3"
    sf.write(files["mp3"], samples, sr, format="MP3")
    return files


def sox_duration(path: Path) -> float:
    return float(subprocess.run(["soxi", "-D", str(path)], check=True, capture_output=True, text=True).stdout)


# --- type detection -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", sorted(IMAGE_FORMATS))
def test_images_detected_and_decoded(fmt: str) -> None:
    data = image_bytes(fmt)
    kind = detect(data, f"picture.{fmt}")
    assert (kind.mime, kind.extension, kind.modality) == (*IMAGE_FORMATS[fmt], "image")
    assert not kind.mislabelled
    img = load_image(data)
    assert img.mode == "RGB" and img.size == (128, 128)


def test_bytes_win_over_a_lying_name_and_content_type() -> None:
    kind = detect(image_bytes("png"), "song.mp3", "audio/mpeg")
    assert (kind.mime, kind.modality, kind.mislabelled) == ("image/png", "image", True)
    assert detect(image_bytes("png"), "song.mp3").mislabelled
    assert detect(image_bytes("png"), None, "audio/mpeg").mislabelled
    assert not detect(image_bytes("png"), "upload.bin", "application/octet-stream").mislabelled
    assert not detect(image_bytes("jpeg"), "IMG_1.JPEG", "image/jpg").mislabelled


@pytest.mark.parametrize(
    ("data", "filename", "mime", "modality"),
    [
        (b"just some notes\nsecond line\n", "notes.txt", "text/plain", "text"),
        (b"# Title\n\nSome *markdown*.\n", "readme.md", "text/markdown", "text"),
        (b'{"a": [1, 2, 3]}', "data.json", "application/json", "text"),
        (b"BMW makes cars, and this text starts like a bitmap header does.", None, "text/plain", "text"),
        (HTML.encode(), "page.html", "text/html", "document"),
        ("\ufeffUTF-16 text, caf\u00e9".encode("utf-16"), "win.txt", "text/plain", "text"),
        (b"def f():\n    return 1\n", "code.py", "text/plain", "text"),
    ],
)
def test_text_kinds_detected(data: bytes, filename: str | None, mime: str, modality: str) -> None:
    kind = detect(data, filename)
    assert (kind.mime, kind.modality) == (mime, modality)
    assert not kind.mislabelled


def test_text_named_as_image_is_mislabelled() -> None:
    assert detect(b"plain words", "photo.jpg").mislabelled


def test_docx_is_told_apart_from_other_zips() -> None:
    assert detect(make_docx(), "report.docx").extension == "docx"
    other = io.BytesIO()
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(UnsupportedType, match="application/zip"):
        detect(other.getvalue(), "report.docx")


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (b"\x78\xda" + bytes(range(256)) * 2, "unrecognised binary data"),
        (b"\x1f\x8b\x08\x00" + bytes(100), "application/gzip"),
        (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"></svg>', r"image/svg\+xml"),
    ],
)
def test_unsupported_types_are_named(data: bytes, named: str) -> None:
    with pytest.raises(UnsupportedType, match=named) as caught:
        detect(data, "file.bin")
    assert isinstance(caught.value, IngestError) and isinstance(caught.value, ValueError)
    assert caught.value.status == 415


def test_zero_bytes_is_refused_everywhere() -> None:
    with pytest.raises(EmptyFile):
        detect(b"", "empty.png")
    with pytest.raises(EmptyFile):
        extract(b"", "empty.txt")
    with pytest.raises(MediaError, match="empty"):
        load_image(b"")
    with pytest.raises(MediaError, match="empty"):
        load_audio(b"")


# --- safe decoding ---------------------------------------------------------------------------------


def test_truncated_jpeg_is_a_media_error() -> None:
    data = image_bytes("jpeg", size=256)
    with pytest.raises(MediaError, match="truncated"):
        load_image(data[: len(data) // 2])


def test_garbage_with_an_image_signature_is_a_media_error() -> None:
    with pytest.raises(MediaError, match="not a readable image"):
        load_image(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)


def test_decompression_bomb_refused_before_decoding() -> None:
    bomb = png_bomb()
    assert len(bomb) < 1_000_000
    with pytest.raises(MediaError, match="decompression bomb"):
        load_image(bomb)


def test_image_over_configured_pixel_limit_refused_by_header() -> None:
    big = io.BytesIO()
    Image.new("P", (3000, 2000)).save(big, format="PNG")
    with pytest.raises(MediaError, match="3000x2000 pixels, over the limit of 1000000"):
        load_image(big.getvalue(), max_pixels=1_000_000)
    assert load_image(big.getvalue(), max_pixels=6_000_000).size == (3000, 2000)


def test_transparent_pixels_become_white() -> None:
    out = io.BytesIO()
    Image.new("RGBA", (4, 4), (255, 0, 0, 0)).save(out, format="PNG")
    assert load_image(out.getvalue()).getpixel((0, 0)) == (255, 255, 255)


def test_corrupt_wav_is_a_media_error() -> None:
    wav = io.BytesIO()
    sf.write(wav, np.sin(np.arange(8000) / 5.0), 8000, format="WAV")
    assert load_audio(wav.getvalue()).duration == pytest.approx(1.0)
    data = bytearray(wav.getvalue())
    fmt = data.index(b"fmt ")
    data[fmt + 8 : fmt + 24] = b"\xff" * 16  # destroy the format chunk: codec, channels, rate
    with pytest.raises(MediaError, match="corrupt audio"):
        load_audio(bytes(data))
    with pytest.raises(MediaError, match="corrupt audio"):
        extract(bytes(data), "speech.wav")


@needs_speech
@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg", "mp3"])
def test_audio_decoded_and_measured(speech: dict[str, Path], fmt: str) -> None:
    reference = sox_duration(speech["wav"])
    data = speech[fmt].read_bytes()
    kind = detect(data, f"speech.{fmt}")
    assert (kind.modality, kind.extension) == ("audio", fmt)
    audio = load_audio(data, target_sr=16_000)
    assert audio.sample_rate == 16_000 and audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert audio.duration == pytest.approx(reference, rel=0.05)
    assert 0.01 < float(np.abs(audio.samples).max()) <= 1.0
    if fmt != "mp3":  # sox here can't read mp3; the wav it was encoded from is the reference
        assert probe_audio(data).duration == pytest.approx(sox_duration(speech[fmt]), rel=0.05)


@needs_speech
def test_stereo_mixed_to_mono(speech: dict[str, Path]) -> None:
    data = speech["stereo"].read_bytes()
    assert probe_audio(data).channels == 2
    audio = load_audio(data)
    assert audio.samples.ndim == 1 and audio.sample_rate == 22_050


@needs_speech
def test_audio_over_length_limit_refused(speech: dict[str, Path]) -> None:
    with pytest.raises(MediaError, match="over the limit of 1 s"):
        load_audio(speech["wav"].read_bytes(), max_seconds=1.0)

    with pytest.raises(MediaError, match="over the limit"):
        extract(
            speech["flac"].read_bytes(),
            "speech.flac",
            settings=Settings(limits=LimitSettings(max_audio_seconds=1.0)),
        )


@needs_speech
def test_m4a_through_the_fallback_decoder(speech: dict[str, Path], tmp_path: Path) -> None:
    if shutil.which("ffmpeg") is None:
        pytest.skip("no m4a encoder/decoder here: ffmpeg is not installed")
    m4a = tmp_path / "speech.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(speech["wav"]), str(m4a)], check=True)
    data = m4a.read_bytes()
    assert detect(data, "voice memo.m4a").mime == "audio/mp4"
    assert load_audio(data).duration == pytest.approx(sox_duration(speech["wav"]), rel=0.05)
    assert extract(data, "voice memo.m4a").metadata["duration"] == pytest.approx(3.5, rel=0.1)


# --- extraction ------------------------------------------------------------------------------------


def test_exif_extracted() -> None:
    result = extract(exif_jpeg(), "holiday/IMG_0042.jpg", "image/jpeg")
    assert (result.modality, result.title, result.content) == ("image", "IMG_0042", "")
    meta = result.metadata
    assert meta["camera_make"] == "Canon" and meta["camera_model"] == "EOS 5D Mark IV"
    assert meta["taken_at"] == "2023-07-14T10:30:05+10:00"
    assert meta["gps_lat"] == pytest.approx(-33.857, abs=1e-3)
    assert meta["gps_lon"] == pytest.approx(151.215, abs=1e-3)
    assert (meta["width"], meta["height"], meta["format"]) == (600, 400, "JPEG")


def test_image_without_exif_has_only_basic_metadata() -> None:
    meta = extract(image_bytes("png"), "plain.png").metadata
    assert meta == {"format": "PNG", "width": 128, "height": 128}


@needs_speech
def test_audio_metadata_and_tags(speech: dict[str, Path], tmp_path: Path) -> None:
    tagged = tmp_path / "tagged.flac"
    samples, sr = sf.read(speech["wav"])
    with sf.SoundFile(tagged, "w", sr, 1, format="FLAC") as out:
        out.title, out.artist = "Greeting", "espeak"
        out.write(samples)
    result = extract(tagged.read_bytes(), "track01.flac")
    assert (result.modality, result.title, result.content) == ("audio", "Greeting", "")
    meta = result.metadata
    assert meta["duration"] == pytest.approx(sox_duration(speech["wav"]), rel=0.05)
    assert (meta["sample_rate"], meta["channels"], meta["format"], meta["artist"]) == (
        sr,
        1,
        "FLAC",
        "espeak",
    )


def test_pdf_text_title_author_pages() -> None:
    data = make_pdf(["Photosynthesis converts light", "Chlorophyll absorbs red light"], "Plants", "Ann Smith")
    result = extract(data, "biology.pdf", "application/pdf")
    assert (result.modality, result.mime, result.title) == ("document", "application/pdf", "Plants")
    assert "Photosynthesis converts light" in result.content and "Chlorophyll" in result.content
    meta = result.metadata
    assert (meta["page_count"], meta["author"]) == (2, "Ann Smith")
    assert meta["created_at"].startswith("2024-01-02T03:04:05")


def test_encrypted_and_broken_pdfs_are_media_errors() -> None:
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(make_pdf(["secret"], "T", "A"))))
    writer.encrypt("a password")
    locked = io.BytesIO()
    writer.write(locked)
    with pytest.raises(MediaError, match="encrypted"):
        extract(locked.getvalue(), "locked.pdf")
    with pytest.raises(MediaError, match="unreadable PDF"):
        extract(b"%PDF-1.7\n" + b"\x00garbage" * 50, "broken.pdf")


def test_docx_text_in_reading_order_with_tables() -> None:
    result = extract(make_docx(), "q3.docx")
    assert (result.modality, result.title) == ("document", "Quarterly Report")
    assert result.metadata["author"] == "Ada Lovelace"
    content = result.content
    assert content.index("Revenue grew") < content.index("north\t42") < content.index("Closing remarks")


def test_docx_zip_bomb_refused_by_declared_sizes() -> None:
    with pytest.raises(MediaError, match="unpacks to .* over the limit of 10000"):
        extract(make_docx(), "big.docx", settings=Settings(limits=LimitSettings(max_unpacked_bytes=10_000)))


def test_html_visible_text_only() -> None:
    result = extract(HTML.encode(), "pets.html", "text/html")
    assert result.title == "Cats & Dogs"
    assert "Cats are independent." in result.content and "Dogs are loyal." in result.content
    assert "secret" not in result.content and "color" not in result.content
    assert result.metadata == {"author": "Jane Doe", "lang": "en"}


def test_text_and_markdown() -> None:
    markdown = extract(b"intro\n\n# Release Notes #\n\nFixed bugs.\n", "CHANGES.md")
    assert (markdown.mime, markdown.title) == ("text/markdown", "Release Notes")
    plain = extract("caf\u00e9 au lait".encode(), "notes/drinks.txt")
    assert (plain.title, plain.content, plain.modality) == ("drinks", "caf\u00e9 au lait", "text")


def test_content_capped_by_settings() -> None:
    result = extract(
        b"0123456789abcdef", "long.txt", settings=Settings(limits=LimitSettings(max_text_chars=10))
    )
    assert result.content == "0123456789" and result.metadata["content_truncated"] is True


def test_metadata_is_json_scalars() -> None:
    for data, name in [(exif_jpeg(), "a.jpg"), (make_docx(), "b.docx"), (make_pdf(["x"], "t", "a"), "c.pdf")]:
        metadata = extract(data, name).metadata
        assert json.loads(json.dumps(metadata)) == metadata
        assert all(isinstance(v, str | int | float | bool) for v in metadata.values())


# --- blob store ------------------------------------------------------------------------------------


def test_blobstore_dedups_and_round_trips(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    data = image_bytes("png")
    sha = hashlib.sha256(data).hexdigest()
    assert store.put(data) == (sha, len(data), True)
    assert store.put(io.BytesIO(data)) == (sha, len(data), False)
    assert store.path(sha) == tmp_path / "blobs" / sha[:2] / sha[2:4] / sha
    assert store.exists(sha)
    with store.open(sha) as f:
        assert f.read() == data
    assert not list((tmp_path / "blobs" / "tmp").iterdir())  # no temp files left behind
    assert store.delete(sha) and not store.exists(sha) and not store.delete(sha)


@pytest.mark.parametrize(
    "bad", ["../" * 10 + "etc/passwd", "A" * 64, "a" * 63, "g" * 64, "", "a" * 64 + "\n"]
)
def test_blobstore_rejects_bad_ids(tmp_path: Path, bad: str) -> None:
    store = BlobStore(tmp_path)
    with pytest.raises(InvalidSha):
        store.path(bad)
    with pytest.raises(InvalidSha):
        store.open(bad)


def test_thumbnails_are_small_cached_jpegs(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    sha = store.put(image_bytes("png", size=600)).sha256
    thumb = store.thumbnail(sha)
    with Image.open(io.BytesIO(thumb)) as img:
        assert img.format == "JPEG" and max(img.size) <= 256
    cached = store.path(sha).with_name(f"{sha}.thumb.jpg")
    assert cached.read_bytes() == thumb and store.thumbnail(sha) == thumb
    store.delete(sha)
    assert not cached.exists()


def test_thumbnail_errors(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    with pytest.raises(FileNotFoundError):
        store.thumbnail("0" * 64)
    sha = store.put(b"not an image at all").sha256
    with pytest.raises(MediaError):
        store.thumbnail(sha)


def test_blobstore_from_settings_keeps_the_image_limit(tmp_path: Path) -> None:
    store = BlobStore.from_settings(
        Settings(engine=EngineSettings(data_dir=tmp_path), limits=LimitSettings(max_image_pixels=100 * 100))
    )
    sha = store.put(image_bytes("png", size=600)).sha256
    assert store.path(sha).is_relative_to(tmp_path / "blobs")
    with pytest.raises(MediaError, match="over the limit of 10000 pixels"):
        store.thumbnail(sha)


# --- crawler ---------------------------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / ".hidden_dir").mkdir()
    (root / "a.txt").write_text("a")
    (root / "sub" / "b.png").write_bytes(image_bytes("png"))
    (root / "sub" / "deeper" / "c.md").write_text("# c")
    (root / ".hidden.txt").write_text("hidden")
    (root / ".hidden_dir" / "d.txt").write_text("hidden too")
    (tmp_path / "outside.txt").write_text("secret")
    (root / "escape.txt").symlink_to(tmp_path / "outside.txt")
    (root / "escape_dir").symlink_to(tmp_path, target_is_directory=True)
    (root / "alias.txt").symlink_to(root / "a.txt")
    (root / "sub" / "loop").symlink_to(root, target_is_directory=True)
    os.mkfifo(root / "pipe")
    return root


def test_crawler_skips_hidden_links_and_special_files(tree: Path) -> None:
    found = [p.relative_to(tree.resolve()).as_posix() for p in iter_files(tree)]
    assert found == ["a.txt", "sub/b.png", "sub/deeper/c.md"]


def test_crawler_follows_only_links_that_stay_inside(tree: Path) -> None:
    found = [p.relative_to(tree.resolve()).as_posix() for p in iter_files(tree, follow_symlinks=True)]
    assert found == ["a.txt", "sub/b.png", "sub/deeper/c.md"]  # alias deduped, loop ended, escapes skipped


def test_crawler_root_is_a_file_or_missing(tree: Path) -> None:
    assert list(iter_files(tree / "a.txt")) == [(tree / "a.txt").resolve()]
    with pytest.raises(PathNotFound) as caught:
        list(iter_files(tree / "missing"))
    assert caught.value.status == 404
