"""Speech recognition quality: word error rate over a spoken test set, and the real-time factor.

The test set is synthetic (espeak-ng voices at several speeds, made by the tests and `bench.asr`): it
measures whether a backend hears clearly spoken English at all, not how it does on real recordings.
Sentences avoid numbers, which Whisper writes as digits.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from encoders.extractor import Extractor
from media.decode import Audio

SENTENCES = (
    "the board approved a merger with the logistics company in hamburg",
    "the weather forecast predicts heavy rain tomorrow",
    "please review the annual budget report before friday",
    "open the door and turn on the lights in the kitchen",
    "our new supplier delivers fresh vegetables every morning",
    "the museum closes early on public holidays",
    "she forgot her umbrella on the train to london",
    "customer support answers questions by email and phone",
)
VOICES = ("en-us", "en-us+f2")
SPEEDS = (140, 180)  # words per minute; espeak-ng's default is 175

_WORD = re.compile(r"[a-z0-9']+")


def words(text: str) -> list[str]:
    """Lower-cased words without punctuation: the form both sides of a WER are compared in."""
    return _WORD.findall(text.lower().replace("-", " "))


def edit_distance(reference: Sequence[str], hypothesis: Sequence[str]) -> int:
    """Word-level Levenshtein distance (substitutions + deletions + insertions), one row at a time."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, start=1):
        current = [i]
        for j, hyp in enumerate(hypothesis, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref != hyp)))
        previous = current
    return previous[-1]


def wer(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus word error rate: all edits over all reference words (not a mean of per-clip rates)."""
    pairs = [(words(r), words(h)) for r, h in zip(references, hypotheses, strict=True)]
    total = sum(len(ref) for ref, _ in pairs)
    return sum(edit_distance(ref, hyp) for ref, hyp in pairs) / max(total, 1)


@dataclass
class AsrScore:
    backend: str
    clips: int
    wer: float
    exact: int  # clips transcribed with no word wrong
    audio_s: float
    transcribe_s: float
    hypotheses: list[str]

    @property
    def real_time_factor(self) -> float:
        """Seconds of compute per second of audio (below 1: faster than real time)."""
        return self.transcribe_s / self.audio_s if self.audio_s else float("nan")


def score(extractor: Extractor, clips: Sequence[Audio], references: Sequence[str]) -> AsrScore:
    """Transcribe every clip (after one warm-up call that loads the model) and score the transcripts."""
    extractor.extract([clips[0]])
    start = time.perf_counter()
    hypotheses = [found.text for found in extractor.extract(list(clips))]
    elapsed = time.perf_counter() - start
    return AsrScore(
        backend=getattr(extractor, "backend", extractor.name),
        clips=len(clips),
        wer=wer(references, hypotheses),
        exact=sum(words(r) == words(h) for r, h in zip(references, hypotheses, strict=True)),
        audio_s=float(sum(len(c.samples) / c.sample_rate for c in clips)),
        transcribe_s=elapsed,
        hypotheses=hypotheses,
    )


def concatenated(clips: Sequence[Audio], pause_s: float = 1.0) -> Audio:
    """Clips (one sample rate) joined with silence between them: a longer recording from short ones."""
    rate = clips[0].sample_rate
    gap = np.zeros(int(pause_s * rate), np.float32)
    parts = [part for clip in clips for part in (np.asarray(clip.samples, np.float32), gap)]
    return Audio(samples=np.concatenate(parts), sample_rate=rate)
