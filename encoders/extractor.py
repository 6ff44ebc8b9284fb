"""Extractors turn media into text (OCR, speech recognition); plus what every media model shares: input
checks and where its weights are found.

An extractor follows the `Encoder` contract (name, input kind, version, lazy thread-safe model) but returns
text for the lexical fields instead of vectors. The input checks live here because uploads are untrusted:
encoders and extractors alike must turn a broken image or an empty clip into `EncoderError` (the document
ends `failed` with that reason) instead of a crash deep inside a model.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from encoders.base import EncoderError, LazyModel
from encoders.registry import Registry
from media.decode import Audio


@dataclass
class Extraction:
    """Text found in one input. Segments locate pieces of it: `start`/`end` seconds for audio, `bbox` pixels
    (x0, y0, x1, y1) for images."""

    text: str
    segments: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


class Extractor(LazyModel):
    """One model that reads text out of `input_kind` items ("image" | "audio")."""

    @abstractmethod
    def _extract(self, items: Sequence[Any]) -> list[Extraction]: ...

    def extract(self, items: Sequence[Any]) -> list[Extraction]:
        """One `Extraction` per item, in order."""
        if not items:
            return []
        return self._extract(items)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model_ref, "version": self.version, "input": self.input_kind}


EXTRACTORS: Registry[Extractor] = Registry("extractor")
register_extractor = EXTRACTORS.register
available_extractors = EXTRACTORS.available
get_extractor = EXTRACTORS.get


def check_images(items: Sequence[Any], who: str) -> list[Image.Image]:
    """Fully decoded RGB images, or `EncoderError` naming the first bad item (PIL decodes lazily, so a
    truncated file only fails here, not where it was opened)."""
    images = []
    for i, item in enumerate(items):
        if not isinstance(item, Image.Image):
            raise EncoderError(f"{who}: item {i} is {type(item).__name__}, not a PIL image")
        if item.width < 1 or item.height < 1:
            raise EncoderError(f"{who}: item {i} is an empty image ({item.width}x{item.height})")
        try:
            item.load()
        except (OSError, ValueError, SyntaxError) as exc:
            raise EncoderError(f"{who}: item {i} cannot be decoded: {exc}") from exc
        images.append(item if item.mode == "RGB" else item.convert("RGB"))
    return images


def check_audio(items: Sequence[Any], who: str, sample_rate: int) -> list[np.ndarray]:
    """Mono float32 samples at `sample_rate`, or `EncoderError` naming the first bad item."""
    import librosa

    clips = []
    for i, item in enumerate(items):
        if not isinstance(item, Audio):
            raise EncoderError(f"{who}: item {i} is {type(item).__name__}, not media.decode.Audio")
        samples = np.asarray(item.samples, dtype=np.float32)
        if samples.ndim != 1:
            raise EncoderError(f"{who}: item {i} has samples of shape {samples.shape}; expected mono (n,)")
        if samples.size == 0:
            raise EncoderError(f"{who}: item {i} is empty audio")
        if item.sample_rate <= 0:
            raise EncoderError(f"{who}: item {i} has sample rate {item.sample_rate}")
        if not np.isfinite(samples).all():
            raise EncoderError(f"{who}: item {i} contains NaN or infinite samples")
        if item.sample_rate != sample_rate:
            samples = librosa.resample(samples, orig_sr=item.sample_rate, target_sr=sample_rate)
            if samples.size == 0:
                raise EncoderError(f"{who}: item {i} is too short to resample to {sample_rate} Hz")
        clips.append(np.ascontiguousarray(samples, dtype=np.float32))
    return clips


def local_or_hub(ref: str, models_dir: Path | None) -> str:
    """A local directory, a directory under MODELS_DIR, or else the hub name as given."""
    if Path(ref).is_dir():
        return ref
    if models_dir and (models_dir / ref).is_dir():
        return str(models_dir / ref)
    return ref
