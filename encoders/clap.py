"""CLAP (transformers `ClapModel`): audio and text in one space, so a text query finds sounds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from encoders.base import Encoder
from encoders.device import pick_device, use_fp16
from encoders.extractor import check_audio, local_or_hub
from encoders.registry import register


class _Loaded(NamedTuple):
    model: Any  # transformers.ClapModel
    processor: Any  # transformers.ClapProcessor
    device: str
    dtype: Any  # torch.dtype of the model weights


@register
class ClapEncoder(Encoder):
    """Audio tower at index time; text or audio tower at query time.

    CLAP sees at most `max_length_s` (10 s) at a time and its own truncation of longer clips picks a random
    crop, which would make re-encoding a document give a different vector. Longer clips are therefore cut
    into consecutive windows, each embedded, and the duration-weighted mean is re-normalised.
    """

    name = "clap"
    input_kind = "audio"
    query_kinds = frozenset({"text", "audio"})

    def default_model(self) -> str:
        return self.settings.models.clap_model

    @property
    def dims(self) -> int:
        return int(self.model.model.config.projection_dim)

    def _load(self) -> _Loaded:
        import torch
        from transformers import ClapModel, ClapProcessor

        device = pick_device(self.settings.models.device)
        path = local_or_hub(self.model_ref, self.settings.models.models_dir)
        model = ClapModel.from_pretrained(path).to(device).eval()
        if use_fp16(device):
            model.half()
        processor = ClapProcessor.from_pretrained(path)
        dtype = torch.float16 if use_fp16(device) else torch.float32
        return _Loaded(model, processor, device, dtype)

    def _encode(self, items: Sequence[Any], kind: str) -> np.ndarray:
        if kind == "text":
            return self._encode_text([str(text) for text in items])
        return self._encode_audio(items)

    def _encode_text(self, texts: list[str]) -> np.ndarray:
        import torch

        model, processor, device, _ = self.model
        out = []
        batch = self.settings.models.encode_batch_size
        for start in range(0, len(texts), batch):
            tokens = processor.tokenizer(
                texts[start : start + batch], padding=True, truncation=True, return_tensors="pt"
            ).to(device)
            with torch.inference_mode():
                features = model.get_text_features(**tokens).pooler_output
            out.append(features.float().cpu().numpy())
        return _unit(np.concatenate(out))

    def _encode_audio(self, items: Sequence[Any]) -> np.ndarray:
        import torch

        model, processor, device, dtype = self.model
        extractor = processor.feature_extractor
        clips = check_audio(items, self.name, extractor.sampling_rate)
        window = int(extractor.nb_max_samples)
        windows, owners, weights = [], [], []
        for i, clip in enumerate(clips):
            for start in range(0, len(clip), window):
                piece = clip[start : start + window]
                windows.append(piece)
                owners.append(i)
                weights.append(len(piece))
        # Fused checkpoints take the 4-channel "fusion" input, unfused ones a single mel; windows never
        # exceed the maximum length, so neither path crops at random.
        truncation = "fusion" if model.config.audio_config.enable_fusion else "rand_trunc"
        embedded = []
        batch = self.settings.models.encode_batch_size
        for start in range(0, len(windows), batch):
            features = extractor(
                windows[start : start + batch],
                sampling_rate=extractor.sampling_rate,
                truncation=truncation,
                padding="repeatpad",
                return_tensors="pt",
            )
            with torch.inference_mode():
                out = model.get_audio_features(
                    input_features=features["input_features"].to(device, dtype),
                    is_longer=features["is_longer"].to(device),
                ).pooler_output
            embedded.append(out.float().cpu().numpy())
        vectors = np.concatenate(embedded)
        pooled = np.zeros((len(clips), vectors.shape[1]), dtype=np.float32)
        np.add.at(pooled, owners, vectors * np.asarray(weights, dtype=np.float32)[:, None])
        return _unit(pooled)


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
