"""Cross-encoder reranking: the query and one passage read together by one transformer, which orders the
top of a fused list more exactly than the bi-encoder's cosine, at a cost per (query, passage) pair.

`train_reranker` fits one on judgments (binary cross-entropy on a judged passage and hard negatives per
query) with sentence-transformers' `CrossEncoderTrainer`. It can start from a bi-encoder's weights (the
all-MiniLM-L6-v2 shipped here): the transformer body is reused, the one-logit scoring head starts fresh.
"""

from __future__ import annotations

import tempfile
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from core.config import Settings, get_settings
from encoders.base import EncoderError
from encoders.device import pick_device, use_fp16
from encoders.text import resolve_model_path

MAX_LENGTH = 256  # tokens of query + passage together; SciFact abstracts' openings fit


class RerankerError(EncoderError):
    """The reranking model cannot be loaded or run."""


class Reranker:
    """One cross-encoder, loaded on first use behind a lock (concurrent requests load it once)."""

    def __init__(self, ref: str, settings: Settings) -> None:
        self.ref = ref
        self.settings = settings
        self._model: Any = None
        self._lock = threading.Lock()

    def load(self) -> Any:
        with self._lock:
            if self._model is None:
                self._model = self._load()
            return self._model

    def _load(self) -> Any:
        from sentence_transformers import CrossEncoder

        device = pick_device(self.settings.device)
        try:
            model = CrossEncoder(
                resolve_model_path(self.ref, self.settings.models_dir),
                device=device,
                num_labels=1,
                max_length=MAX_LENGTH,
            )
        except (OSError, ValueError) as exc:
            raise RerankerError(f"reranking model {self.ref!r} cannot be loaded: {exc}") from None
        if use_fp16(device):
            model.model.half()
        return model

    def score(self, query: str, passages: list[str]) -> list[float]:
        """One relevance score per passage (higher is better)."""
        if not passages:
            return []
        scores = self.load().predict(
            [(query, p) for p in passages], batch_size=32, convert_to_numpy=True, show_progress_bar=False
        )
        return [float(s) for s in scores]


@lru_cache(maxsize=4)
def get_reranker(ref: str) -> Reranker:
    """One model per reference and process; at most four kept (a profile names one)."""
    return Reranker(ref, get_settings())


@dataclass
class RerankExample:
    query: str
    passage: str
    label: float  # 1 judged relevant, 0 a hard negative


def train_reranker(
    base_path: str,
    examples: list[RerankExample],
    out_dir: Path,
    settings: Settings,
    epochs: int = 1,
    batch_size: int = 16,
    learning_rate: float = 5e-5,
    seed: int = 13,
) -> dict[str, Any]:
    """Fit a cross-encoder on labelled pairs and save it to `out_dir`; returns what the run did."""
    from datasets import Dataset
    from sentence_transformers import CrossEncoder
    from sentence_transformers.cross_encoder import (
        CrossEncoderTrainer,
        CrossEncoderTrainingArguments,
    )
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

    if not examples:
        raise ValueError("no reranker examples: do the judgments name documents of the corpus?")
    device = pick_device(settings.device)
    model = CrossEncoder(base_path, device=device, num_labels=1, max_length=MAX_LENGTH)
    dataset = Dataset.from_dict(
        {
            "query": [e.query for e in examples],
            "passage": [e.passage for e in examples],
            "label": [e.label for e in examples],
        }
    )
    positives = sum(e.label > 0 for e in examples)
    # Weigh the rarer positives up so a model that says "no" to everything is not the easy optimum.
    loss = BinaryCrossEntropyLoss(model, pos_weight=_pos_weight(len(examples), positives))
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mmsearch-rerank-") as scratch:
        args = CrossEncoderTrainingArguments(
            output_dir=scratch,
            num_train_epochs=epochs,
            per_device_train_batch_size=batch_size,
            learning_rate=learning_rate,
            warmup_steps=0.1,
            fp16=use_fp16(device),
            use_cpu=device == "cpu",
            save_strategy="no",
            report_to="none",
            seed=seed,
        )
        output = CrossEncoderTrainer(model=model, args=args, train_dataset=dataset, loss=loss).train()
    model.save(str(out_dir))
    return {
        "device": device,
        "pairs": len(examples),
        "positives": positives,
        "steps": output.global_step,
        "final_loss": round(float(output.training_loss), 4),
        "train_seconds": round(time.monotonic() - started, 1),
    }


def _pos_weight(total: int, positives: int) -> Any:
    import torch

    return torch.tensor(max(1.0, (total - positives) / max(positives, 1)))
