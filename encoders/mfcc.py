"""MFCC statistics: a weight-free audio fingerprint for query-by-example (another take of the same sound)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from encoders.base import Encoder, EncoderError
from encoders.extractor import check_audio
from encoders.registry import register

SAMPLE_RATE = 16_000
N_FFT = 512  # 32 ms frames
HOP = 160  # 10 ms hop
N_MELS = 40
N_MFCC = 20  # c0 (loudness) is dropped, so a louder or quieter copy still matches
LIFTER = 22  # sinusoidal liftering brings the high coefficients to the scale of the low ones
DELTA_WIDTH = 9
MIN_SECONDS = 0.05
SILENCE_PEAK = 1e-4
COEFFS = N_MFCC - 1
STATS = 4  # mean of the coefficients; log spread of the coefficients, their deltas and delta-deltas


@register
class MfccEncoder(Encoder):
    """76 dims: mean and log(1+std) over time of liftered MFCC 1..19, and log(1+std) of their deltas and
    delta-deltas, L2-normalised for cosine.

    No corpus-wide standardisation (there is no corpus to fit it on at index time, and a scaler fitted later
    would change every stored vector); liftering equalises the coefficient scales and the log tames the
    spreads instead. Pooled statistics ignore word order: the same sentence by the same voice at another
    speed or pitch matches, a different voice speaking it often does not. Silent clips are refused: their
    vector would be all zeros, which a cosine field cannot store.
    """

    name = "mfcc"
    input_kind = "audio"
    query_kinds = frozenset({"audio"})

    def default_model(self) -> str:
        return f"librosa-{SAMPLE_RATE // 1000}k-c{COEFFS}-lift{LIFTER}-stats{STATS}"

    @property
    def dims(self) -> int:
        return COEFFS * STATS

    def _load(self) -> Any:
        """librosa's feature module: importing it (scipy.signal, numba caches) is the slow first step."""
        from librosa import feature

        return feature

    def _encode(self, items: Sequence[Any], kind: str) -> np.ndarray:
        clips = check_audio(items, self.name, SAMPLE_RATE)
        return np.stack([self._features(i, clip) for i, clip in enumerate(clips)])

    def _features(self, index: int, samples: np.ndarray) -> np.ndarray:
        feature = self.model
        if len(samples) < MIN_SECONDS * SAMPLE_RATE:
            raise EncoderError(f"{self.name}: item {index} is shorter than {MIN_SECONDS} s")
        if np.abs(samples).max() < SILENCE_PEAK:
            raise EncoderError(f"{self.name}: item {index} is silent")
        mfcc = feature.mfcc(
            y=samples,
            sr=SAMPLE_RATE,
            n_mfcc=N_MFCC,
            n_fft=N_FFT,
            hop_length=HOP,
            n_mels=N_MELS,
            lifter=LIFTER,
        )[1:]
        delta = feature.delta(mfcc, width=DELTA_WIDTH, mode="nearest")
        delta2 = feature.delta(mfcc, width=DELTA_WIDTH, order=2, mode="nearest")
        vector = np.concatenate(
            [
                mfcc.mean(axis=1),
                np.log1p(mfcc.std(axis=1)),
                np.log1p(delta.std(axis=1)),
                np.log1p(delta2.std(axis=1)),
            ]
        )
        return (vector / np.linalg.norm(vector)).astype(np.float32)
