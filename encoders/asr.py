"""Speech to text: pocketsphinx offline by default (model inside the wheel), Whisper through transformers."""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.config import Settings, get_settings
from encoders.device import pick_device, use_fp16
from encoders.extractor import Extraction, Extractor, check_audio, local_or_hub, register_extractor

SAMPLE_RATE = 16_000
BACKENDS = ("pocketsphinx", "whisper")
DEFAULT_SPHINX_MODEL = "en-us"
WHISPER_CHUNK_S = 30
TRAILING_SILENCE_S = 1.0  # > the endpointer's 0.3 s decision window
_ALTERNATE = re.compile(r"\(\d+\)$")  # "predicts(2)": the dictionary's second pronunciation


@register_extractor
class AsrExtractor(Extractor):
    """Audio -> transcript with timed segments (seconds from the start of the clip).

    The backend comes from the `asr_backend` setting: `pocketsphinx` gives one segment per recognised word,
    `whisper` one per phrase. Decoders keep per-utterance state, so one clip is decoded at a time.
    """

    name = "asr"
    input_kind = "audio"

    def __init__(
        self, model: str | None = None, settings: Settings | None = None, backend: str | None = None
    ) -> None:
        settings = settings or get_settings()
        self.backend = backend or settings.asr_backend
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown ASR backend {self.backend!r}; choose one of {', '.join(BACKENDS)}")
        super().__init__(model=model, settings=settings)
        self._run_lock = threading.Lock()

    def default_model(self) -> str:
        if self.backend == "whisper":
            return self.settings.whisper_model
        return DEFAULT_SPHINX_MODEL

    @property
    def version(self) -> str:
        return f"{self.name}@{self.backend}:{self.model_ref}"

    def _load(self) -> Any:
        if self.backend == "whisper":
            return WhisperBackend(self.model_ref, self.settings)
        return SphinxBackend(self.model_ref, self.settings.models_dir)

    def _extract(self, items: Sequence[Any]) -> list[Extraction]:
        backend = self.model
        out = []
        for clip in check_audio(items, self.name, SAMPLE_RATE):
            with self._run_lock:
                out.append(backend.transcribe(clip))
        return out


class SphinxBackend:
    """pocketsphinx 5: voice activity detection cuts the clip into utterances, each decoded on its own (one
    decode of a long recording would keep its whole search lattice in memory)."""

    def __init__(self, ref: str, models_dir: Path | None) -> None:
        from pocketsphinx import Decoder, get_model_path

        candidates = [Path(ref), *([models_dir / ref] if models_dir else []), Path(get_model_path()) / ref]
        folder = next((path for path in candidates if path.is_dir()), None)
        if folder is None:
            raise FileNotFoundError(f"pocketsphinx model {ref!r} not found in {[str(p) for p in candidates]}")
        # The layout pocketsphinx ships: <lang>/<lang>/ (acoustic model), <lang>.lm.bin, cmudict-<lang>.dict
        lang = folder.name
        self.decoder = Decoder(
            hmm=str(folder / lang),
            lm=str(folder / f"{lang}.lm.bin"),
            dict=str(folder / f"cmudict-{lang}.dict"),
        )
        self.frame_rate = int(self.decoder.config["frate"])

    def transcribe(self, samples: np.ndarray) -> Extraction:
        duration = len(samples) / SAMPLE_RATE
        utterances, segments = [], []
        for start, pcm in _speech_regions(samples):
            self.decoder.start_utt()
            self.decoder.process_raw(pcm, full_utt=True)
            self.decoder.end_utt()
            words = []
            for seg in self.decoder.seg():
                if seg.word.startswith(("<", "[")):  # <s>, </s>, <sil>, [NOISE], ...: not words
                    continue
                word = _ALTERNATE.sub("", seg.word)
                words.append(word)
                segments.append(
                    {
                        "text": word,
                        "start": round(start + seg.start_frame / self.frame_rate, 2),
                        "end": round(min(start + (seg.end_frame + 1) / self.frame_rate, duration), 2),
                    }
                )
            if words:
                utterances.append(" ".join(words))
        return Extraction(
            text="\n".join(utterances),
            segments=segments,
            metadata={
                "backend": "pocketsphinx",
                "duration": round(duration, 3),
                "utterances": len(utterances),
            },
        )


def _speech_regions(samples: np.ndarray) -> list[tuple[float, bytes]]:
    """(start seconds, 16-bit PCM) of each speech region pocketsphinx's endpointer finds.

    Trailing silence lets the endpointer close a region still open when the clip ends: its `Segmenter`
    drops such a region when the clip ends on a frame boundary, and `end_stream` refuses an empty frame.
    """
    from pocketsphinx import Endpointer

    padded = np.concatenate([samples, np.zeros(int(TRAILING_SILENCE_S * SAMPLE_RATE), np.float32)])
    pcm = (np.clip(padded, -1.0, 1.0) * 32767).astype("<i2").tobytes()
    endpointer = Endpointer(sample_rate=SAMPLE_RATE)
    size = endpointer.frame_bytes
    regions, current = [], []
    for offset in range(0, len(pcm) - size + 1, size):
        speech = endpointer.process(pcm[offset : offset + size])
        if speech is not None:
            current.append(speech)
            if not endpointer.in_speech:
                regions.append((endpointer.speech_start, b"".join(current)))
                current = []
    if current:  # the endpointer never saw enough silence to close it
        regions.append((endpointer.speech_start, b"".join(current)))
    return regions


class WhisperBackend:
    """Whisper through the transformers ASR pipeline, in 30 s chunks with phrase timestamps. Weights come
    from a local directory, `MODELS_DIR/<name>`, or the hub."""

    def __init__(self, ref: str, settings: Settings) -> None:
        import torch
        from transformers import pipeline

        device = pick_device(settings.device)
        self.pipe = pipeline(
            "automatic-speech-recognition",
            model=local_or_hub(ref, settings.models_dir),
            device=device,
            dtype=torch.float16 if use_fp16(device) else torch.float32,
        )

    def transcribe(self, samples: np.ndarray) -> Extraction:
        duration = len(samples) / SAMPLE_RATE
        result = self.pipe(
            {"raw": samples, "sampling_rate": SAMPLE_RATE},
            return_timestamps=True,
            chunk_length_s=WHISPER_CHUNK_S,
        )
        segments = []
        for chunk in result.get("chunks", []):
            start, end = chunk["timestamp"]
            segments.append(
                {
                    "text": chunk["text"].strip(),
                    "start": round(float(start or 0.0), 2),
                    "end": round(float(end if end is not None else duration), 2),
                }
            )
        return Extraction(
            text=result["text"].strip(),
            segments=segments,
            metadata={"backend": "whisper", "duration": round(duration, 3), "utterances": len(segments)},
        )
