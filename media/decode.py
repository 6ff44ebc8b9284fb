"""Decoded media handed to encoders: images as RGB PIL images, audio as mono float32 samples.

The decoders are the one place untrusted image and audio bytes are parsed, so they refuse what would
exhaust memory (decompression bombs, hours of audio) before decoding it, and turn every decoder
failure into a `MediaError` whose message says what is wrong with the file.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import audioread
import numpy as np
import soundfile as sf
import soxr
from PIL import Image, ImageOps, UnidentifiedImageError

from core.config import LimitSettings
from media.filetypes import IngestError

# Callers pass the configured limits; these defaults are the settings' own, so each number lives once.
DEFAULT_MAX_PIXELS: int = LimitSettings.model_fields["max_image_pixels"].default
DEFAULT_MAX_AUDIO_SECONDS: float = LimitSettings.model_fields["max_audio_seconds"].default
IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")  # PIL may parse nothing else
# Containers libsndfile reads natively: a failure on these means a broken file, not a missing codec.
_SNDFILE_MAGIC = (b"RIFF", b"RF64", b"fLaC", b"OggS", b"FORM")


class MediaError(IngestError):
    """Image or audio bytes of a supported type that can't be decoded safely (corrupt, over a limit)."""

    status = 422


@dataclass(frozen=True)
class Audio:
    samples: np.ndarray  # mono float32 in [-1, 1]
    sample_rate: int

    @property
    def duration(self) -> float:
        return len(self.samples) / float(self.sample_rate)


@dataclass(frozen=True)
class AudioInfo:
    """What a container says about its stream, read without decoding the samples."""

    duration: float
    sample_rate: int
    channels: int
    format: str  # WAV, FLAC, OGG, MP3, ... (libsndfile's names) or the audioread backend's
    subtype: str = ""  # PCM_16, VORBIS, ... where libsndfile knows it
    tags: dict[str, str] | None = None  # title, artist, album, ... embedded in the file


def load_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode an image to upright RGB; refuse bombs by the header's size before any pixel is read.

    Pillow's own guard (`Image.MAX_IMAGE_PIXELS`, raising above twice its value) stays as a second
    line; the effective limit is therefore the smaller of `max_pixels` and that.
    """
    if not data:
        raise MediaError("empty image (0 bytes)")
    img = _open_image(data)
    width, height = img.size
    if width * height > max_pixels:
        raise MediaError(f"image is {width}x{height} pixels, over the limit of {max_pixels} pixels")
    try:
        img.load()
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise MediaError(f"corrupt or truncated {img.format} image: {exc}") from exc
    return _to_rgb(ImageOps.exif_transpose(img))


def _open_image(data: bytes) -> Image.Image:
    """Parse only the header (Pillow is lazy), limited to the supported formats."""
    try:
        return Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
    except Image.DecompressionBombError as exc:
        raise MediaError(f"image refused as a decompression bomb: {exc}") from exc
    except UnidentifiedImageError as exc:  # its message holds a BytesIO repr, useless to a client
        raise MediaError(f"not a readable image ({', '.join(IMAGE_FORMATS)}): unrecognised data") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise MediaError(f"not a readable image ({', '.join(IMAGE_FORMATS)}): {exc}") from exc


def _to_rgb(img: Image.Image) -> Image.Image:
    """RGB for the encoders; transparent pixels become white rather than Pillow's default black."""
    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img.convert("RGB")


def probe_audio(data: bytes) -> AudioInfo:
    """Duration, rate, channels and tags from the container header, for metadata and limit checks."""
    if not data:
        raise MediaError("empty audio (0 bytes)")
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            return AudioInfo(
                duration=f.frames / f.samplerate,
                sample_rate=f.samplerate,
                channels=f.channels,
                format=f.format,
                subtype=f.subtype,
                tags={k: v for k, v in f.copy_metadata().items() if v},
            )
    except (RuntimeError, ValueError) as exc:
        _raise_if_native(data, exc)
    with _audioread_file(data) as f:
        return AudioInfo(f.duration, f.samplerate, f.channels, format="audioread")


def load_audio(
    data: bytes, target_sr: int | None = None, max_seconds: float = DEFAULT_MAX_AUDIO_SECONDS
) -> Audio:
    """Decode to mono float32 (resampled to `target_sr` when given), refusing more than `max_seconds`.

    libsndfile (wav, flac, ogg/vorbis/opus, mp3) first; audioread (ffmpeg, gstreamer, ...) for the
    rest, e.g. m4a.
    """
    if not data:
        raise MediaError("empty audio (0 bytes)")
    try:
        samples, sr = _read_soundfile(data, max_seconds)
    except (RuntimeError, ValueError) as exc:
        _raise_if_native(data, exc)
        samples, sr = _read_audioread(data, max_seconds)
    if samples.size == 0:
        raise MediaError("audio has no samples")
    if target_sr and target_sr != sr:
        samples = soxr.resample(samples, sr, target_sr).astype(np.float32, copy=False)
        sr = target_sr
    np.clip(np.nan_to_num(samples, copy=False), -1.0, 1.0, out=samples)  # in place: may be ~1 GB
    return Audio(samples, sr)


def _read_soundfile(data: bytes, max_seconds: float) -> tuple[np.ndarray, int]:
    """Mix to mono block by block, stopping one frame past the limit so a lying header can't blow memory."""
    with sf.SoundFile(io.BytesIO(data)) as f:
        sr = f.samplerate
        _check_length(f.frames / sr, max_seconds)
        limit = int(max_seconds * sr) + 1
        blocks = f.blocks(blocksize=60 * sr, frames=limit, dtype="float32", always_2d=True)
        mono = [block.mean(axis=1, dtype=np.float32) for block in blocks]
    samples = np.concatenate(mono) if mono else np.zeros(0, dtype=np.float32)
    _check_length(len(samples) / sr, max_seconds)
    return samples, sr


def _read_audioread(data: bytes, max_seconds: float) -> tuple[np.ndarray, int]:
    """Decode through audioread's backends, which yield 16-bit interleaved buffers."""
    with _audioread_file(data) as f:
        channels, sr = f.channels, f.samplerate
        _check_length(f.duration, max_seconds)
        limit = (int(max_seconds * sr) + 1) * channels
        chunks: list[np.ndarray] = []
        decoded = 0
        try:
            for buf in f:
                chunks.append(np.frombuffer(buf, dtype="<i2"))
                decoded += len(chunks[-1])
                if decoded > limit:
                    break
        except audioread.DecodeError as exc:
            raise MediaError(f"corrupt audio: {exc}") from exc
    interleaved = np.concatenate(chunks) if chunks else np.zeros(0, dtype="<i2")
    frames = interleaved[: len(interleaved) - len(interleaved) % channels].reshape(-1, channels)
    _check_length(len(frames) / sr, max_seconds)
    return (frames.astype(np.float32) / 32768.0).mean(axis=1, dtype=np.float32), sr


@contextmanager
def _audioread_file(data: bytes) -> Iterator[audioread.AudioFile]:
    """audioread's backends read from a path: spill the bytes to a temp file that outlives the reader."""
    with tempfile.NamedTemporaryFile(suffix=".audio") as tmp:
        tmp.write(data)
        tmp.flush()
        try:
            reader = audioread.audio_open(tmp.name)
        except audioread.NoBackendError as exc:
            raise MediaError(
                "can't decode this audio: it is corrupt, or no installed decoder (e.g. ffmpeg) reads it"
            ) from exc
        except (audioread.DecodeError, OSError, EOFError) as exc:
            raise MediaError(f"corrupt audio: {exc}") from exc
        with reader:
            if reader.channels < 1 or reader.samplerate < 1:
                raise MediaError("corrupt audio: the decoder found no channels or no sample rate")
            yield reader


def _raise_if_native(data: bytes, exc: Exception) -> None:
    """libsndfile failing on a container it owns means the file is broken; say so, don't fall back."""
    if data.startswith(_SNDFILE_MAGIC):
        raise MediaError(f"corrupt audio: {exc}") from exc


def _check_length(seconds: float, max_seconds: float) -> None:
    if seconds > max_seconds:
        raise MediaError(f"audio is {seconds:.1f} s long, over the limit of {max_seconds:.0f} s")
