"""Real media and tiny real-architecture models for the media encoder tests.

Images come from `skimage.data` (offline), speech from espeak-ng + sox, tones and noise from numpy. CLIP and
CLAP weights cannot be had here, so tiny random-weight models of the real architectures are saved in the
layouts the hub uses and loaded through the encoders' own loading code.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a stray hub call fails at once instead of retrying

import numpy as np
import soundfile as sf
from PIL import Image, ImageDraw, ImageFont

from media.decode import Audio

SPEECH_RATE = 16_000


def missing_speech_tools() -> list[str]:
    return [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]


def speech(text: str, folder: Path, *, speed: int = 150, pitch: int = 50, voice: str = "en-us+f2") -> Audio:
    """`text` spoken by espeak-ng, converted by sox to 16 kHz mono."""
    key = hashlib.sha1(f"{voice}|{speed}|{pitch}|{text}".encode()).hexdigest()[:12]
    raw, wav = folder / f"{key}-raw.wav", folder / f"{key}.wav"
    subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(raw), text], check=True
    )
    subprocess.run(["sox", str(raw), "-r", str(SPEECH_RATE), "-c", "1", str(wav)], check=True)
    return read_wav(wav)


def read_wav(path: Path) -> Audio:
    samples, rate = sf.read(path, dtype="float32", always_2d=True)
    return Audio(samples=samples.mean(axis=1), sample_rate=rate)


def tone(freq: float, seconds: float, *, noise: float = 0.0, rate: int = SPEECH_RATE, seed: int = 0) -> Audio:
    t = np.arange(int(seconds * rate)) / rate
    samples = 0.5 * np.sin(2 * np.pi * freq * t) + noise * np.random.default_rng(seed).standard_normal(len(t))
    return Audio(samples=np.clip(samples, -1, 1).astype(np.float32), sample_rate=rate)


def noise(seconds: float, rate: int = SPEECH_RATE, seed: int = 1) -> Audio:
    samples = 0.3 * np.random.default_rng(seed).standard_normal(int(seconds * rate))
    return Audio(samples=np.clip(samples, -1, 1).astype(np.float32), sample_rate=rate)


def skimage_image(name: str) -> Image.Image:
    from skimage import data

    return Image.fromarray(getattr(data, name)()).convert("RGB")


def jpeg_bytes(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def resized_jpeg(image: Image.Image, scale: float, quality: int) -> Image.Image:
    """A near-duplicate: scaled and recompressed."""
    small = image.resize((int(image.width * scale), int(image.height * scale)), Image.Resampling.BILINEAR)
    return Image.open(io.BytesIO(jpeg_bytes(small, quality))).convert("RGB")


def text_image(lines: list[str], size: int = 56) -> Image.Image:
    """Black text on white, in the FreeType font Pillow bundles (no system fonts needed)."""
    font = ImageFont.load_default(size=size)
    image = Image.new(
        "RGB", (60 + 30 * max(len(line) for line in lines), 60 + 2 * size * len(lines)), "white"
    )
    draw = ImageDraw.Draw(image)
    for row, line in enumerate(lines):
        draw.text((30, 30 + 2 * size * row), line, fill="black", font=font)
    return image


# 2 layers, 2 heads, width 32: the smallest sizes the real CLIP/CLAP text and vision towers accept here
TINY_TRANSFORMER = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)


def _byte_level_alphabet() -> list[str]:
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    return list(bytes_to_unicode().values())


def tiny_clip_dir(folder: Path, sentence_transformers_layout: bool = False) -> Path:
    """A random-weight `transformers.CLIPModel` (16-d projection) with a byte-level CLIP tokenizer.

    Plain layout: what `CLIPModel.save_pretrained` writes (as `openai/clip-vit-base-patch32`). The
    sentence-transformers layout puts it under `0_CLIPModel/` beside a `modules.json` naming the legacy
    `sentence_transformers.models.CLIPModel` module, as `sentence-transformers/clip-ViT-B-32` does.
    """
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    alphabet = _byte_level_alphabet()
    vocab = {token: i for i, token in enumerate(alphabet + [c + "</w>" for c in alphabet])}
    vocab.update({"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1})
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[])  # no model_max_length: the encoder caps it itself
    text = dict(
        **TINY_TRANSFORMER,
        vocab_size=len(vocab),
        max_position_embeddings=77,
        bos_token_id=vocab["<|startoftext|>"],
        eos_token_id=vocab["<|endoftext|>"],
        pad_token_id=vocab["<|endoftext|>"],
    )
    vision = dict(
        **TINY_TRANSFORMER,
        image_size=32,
        patch_size=8,
    )
    torch.manual_seed(0)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16))
    images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    target = folder / "0_CLIPModel" if sentence_transformers_layout else folder
    model.save_pretrained(target)
    CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(target)
    if sentence_transformers_layout:
        modules = [
            {"idx": 0, "name": "0", "path": "0_CLIPModel", "type": "sentence_transformers.models.CLIPModel"}
        ]
        (folder / "modules.json").write_text(json.dumps(modules))
    return folder


def tiny_clap_dir(folder: Path) -> Path:
    """A random-weight unfused `transformers.ClapModel` (16-d projection) with the real audio front end
    (48 kHz, 64 mel bins, 10 s windows, HTSAT spec size 256) and a byte-level RoBERTa tokenizer."""
    import torch
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor, RobertaTokenizer

    vocab = {token: i for i, token in enumerate(["<s>", "<pad>", "</s>", "<unk>", *_byte_level_alphabet()])}
    vocab["<mask>"] = len(vocab)
    tokenizer = RobertaTokenizer(vocab=vocab, merges=[], model_max_length=64)
    text = dict(
        **TINY_TRANSFORMER,
        vocab_size=len(vocab),
        max_position_embeddings=66,
        projection_dim=16,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    )
    audio = dict(
        hidden_size=16,
        patch_embeds_hidden_size=8,
        depths=[1, 1],
        num_attention_heads=[1, 2],
        num_hidden_layers=2,
        projection_dim=16,
    )
    torch.manual_seed(0)
    model = ClapModel(ClapConfig(text_config=text, audio_config=audio, projection_dim=16))
    model.save_pretrained(folder)
    features = ClapFeatureExtractor(truncation="rand_trunc", frequency_min=50)
    ClapProcessor(feature_extractor=features, tokenizer=tokenizer).save_pretrained(folder)
    return folder


# documents --------------------------------------------------------------------------------------------


def scanned_pdf(pages: list[list[str]]) -> bytes:
    """A PDF whose pages are images of text, with no text layer: what a scanner produces."""
    images = [text_image(lines) for lines in pages]
    buffer = io.BytesIO()
    images[0].save(buffer, "PDF", resolution=150, save_all=True, append_images=images[1:])
    return buffer.getvalue()


def merged_pdf(*parts: bytes) -> bytes:
    """The pages of several PDFs in one, in order (e.g. text pages and scanned ones: a mixed PDF)."""
    import pypdf

    writer = pypdf.PdfWriter()
    for part in parts:
        writer.append(pypdf.PdfReader(io.BytesIO(part)))
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def make_pptx(slides: list[tuple[str, str, str]], title: str | None = None) -> bytes:
    """Slides of (title, body, speaker notes), in python-pptx's default template."""
    from pptx import Presentation

    deck = Presentation()
    for heading, body, notes in slides:
        slide = deck.slides.add_slide(deck.slide_layouts[1])  # title and content
        slide.shapes.title.text = heading
        slide.placeholders[1].text = body
        slide.notes_slide.notes_text_frame.text = notes
    if title:
        deck.core_properties.title = title
    buffer = io.BytesIO()
    deck.save(buffer)
    return buffer.getvalue()


def make_xlsx(sheets: dict[str, list[list[object]]]) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def make_eml(subject: str, body: str, attachments: list[tuple[str, str, bytes]]) -> bytes:
    """A multipart mail with (filename, mime, bytes) attachments, as a mail client writes it."""
    from email.message import EmailMessage

    message = EmailMessage()
    message["From"] = "Ann Smith <ann@example.com>"
    message["To"] = "board@example.com"
    message["Subject"] = subject
    message["Date"] = "Tue, 02 Jan 2024 10:30:00 +0100"
    message["Message-ID"] = "<42@example.com>"
    message.set_content(body)
    for filename, mime, data in attachments:
        maintype, subtype = mime.split("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return message.as_bytes()
