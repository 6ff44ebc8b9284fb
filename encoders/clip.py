"""CLIP through sentence-transformers: images and text in one space, so a text query finds images."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from encoders.base import Encoder
from encoders.device import pick_device, use_fp16
from encoders.extractor import check_images
from encoders.registry import register
from encoders.text import resolve_model_path


@register
class ClipEncoder(Encoder):
    """Image tower at index time; text tower (or image tower, for query-by-image) at query time.

    The model is a sentence-transformers CLIP (e.g. `sentence-transformers/clip-ViT-B-32`) or a plain
    transformers CLIP directory, by hub name, local path or a directory under MODELS_DIR.
    """

    name = "clip"
    input_kind = "image"
    query_kinds = frozenset({"text", "image"})

    def default_model(self) -> str:
        return self.settings.models.clip_model

    @property
    def dims(self) -> int:
        return int(self.model.get_embedding_dimension())

    def _load(self) -> Any:
        from sentence_transformers import SentenceTransformer

        device = pick_device(self.settings.models.device)
        model = SentenceTransformer(
            resolve_model_path(self.model_ref, self.settings.models.models_dir), device=device
        )
        # A tokenizer saved without `model_max_length` lets long text overrun CLIP's position table.
        hf_config = getattr(getattr(model[0], "model", None), "config", None)
        positions = getattr(getattr(hf_config, "text_config", None), "max_position_embeddings", None)
        if positions and (model.max_seq_length is None or model.max_seq_length > positions):
            model.max_seq_length = positions
        if use_fp16(device):
            model.half()
        return model

    def _encode(self, items: Sequence[Any], kind: str) -> np.ndarray:
        inputs = check_images(items, self.name) if kind == "image" else [str(text) for text in items]
        vectors = self.model.encode(
            inputs,
            batch_size=self.settings.models.encode_batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)
