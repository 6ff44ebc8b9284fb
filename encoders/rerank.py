"""Cross-encoder reranking: the query and one passage read together by one transformer, which orders the
top of a fused list more exactly than the bi-encoder's cosine, at a cost per (query, passage) pair.

`train_reranker` fits one on judgments (a listwise loss over each judged passage and hard negatives of its
query) with sentence-transformers' `CrossEncoderTrainer`. It can start from a bi-encoder's weights (the
all-MiniLM-L6-v2 shipped here): the transformer body is reused, the one-logit scoring head starts fresh.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from core.config import Settings, get_settings
from encoders import runtime
from encoders.base import EncoderError
from encoders.device import pick_device, use_fp16
from encoders.text import resolve_model_path

MAX_LENGTH = 192  # tokens of query + passage together: a title and an abstract's opening
HEAD = r"\.(classifier|pooler)\."  # the scoring head: new, or never trained by a mean-pooling bi-encoder


class RerankerError(EncoderError):
    """The reranking model cannot be loaded or run."""


class Reranker:
    """One cross-encoder, loaded on first use behind a lock (concurrent requests load it once)."""

    def __init__(self, ref: str, settings: Settings) -> None:
        self.ref = ref
        self.settings = settings
        self._model: Any = None
        self._runner: runtime.Runner | None = None  # a CPU backend other than torch, set by `_load`
        self._lock = threading.Lock()

    @property
    def path(self) -> str:
        return resolve_model_path(self.ref, self.settings.models.models_dir)

    def load(self) -> Any:
        with self._lock:
            if self._model is None:
                self._model = self._load()
            return self._model

    def _load(self) -> Any:
        from sentence_transformers import CrossEncoder

        device = pick_device(self.settings.models.device)
        try:
            model = CrossEncoder(
                self.path,
                device=device,
                num_labels=1,
                max_length=MAX_LENGTH,
            )
        except (OSError, ValueError) as exc:
            raise RerankerError(f"reranking model {self.ref!r} cannot be loaded: {exc}") from None
        if use_fp16(device):
            model.model.half()
        else:
            self._runner = runtime.runner(
                model,
                self.path,
                key="scores",
                backend=self.settings.models.rerank_backend,
                settings=self.settings,
            )
        return model

    @property
    def backend(self) -> str:
        """What runs the model here (loading it): torch on a GPU (fp16), else the `rerank_backend` setting."""
        self.load()
        return self.settings.models.rerank_backend if self._runner is not None else "torch"

    def score(self, query: str, passages: list[str]) -> list[float]:
        """One relevance score per passage (higher is better)."""
        if not passages:
            return []
        model = self.load()
        pairs = [(query, p) for p in passages]
        if self._runner is None:
            scores = model.predict(pairs, batch_size=32, convert_to_numpy=True, show_progress_bar=False)
            return [float(s) for s in scores]
        import torch

        logits = runtime.run_batched(model, self._runner, pairs, 32)
        return [float(s) for s in model.activation_fn(torch.from_numpy(logits)).reshape(-1)]


@lru_cache(maxsize=4)
def get_reranker(ref: str) -> Reranker:
    """One model per reference and process; at most four kept (a profile names one)."""
    return Reranker(ref, get_settings())


@dataclass
class RerankGroup:
    """One judged passage of a query and passages of the same query that are not relevant."""

    query: str
    positive: str
    negatives: list[str]


def train_reranker(
    base_path: str,
    groups: list[RerankGroup],
    out_dir: Path,
    settings: Settings,
    *,
    epochs: int = 2,
    groups_per_batch: int = 4,
    learning_rate: float = 5e-5,
    head_learning_rate: float = 1e-3,
    seed: int = 13,
) -> dict[str, Any]:
    """Fit a cross-encoder on judged groups and save it to `out_dir`; returns what the run did.

    Listwise (cross-entropy of a softmax over the group's raw scores, the judged passage the target) rather
    than one label per pair: each step compares the passages of a query with each other, which is what a
    reranker is for, and a model that says the same thing for everything gains nothing. (ListNet would
    softmax the 1/0 labels too: a soft target that stops rewarding separation at a logit gap of one.) The
    scoring head starts from nothing, so it learns 20x faster than the reused body (on SciFact, pairwise
    cross-entropy with one rate for both was still at chance after an epoch; this recipe learns in one).
    """
    from sentence_transformers import CrossEncoder
    from sentence_transformers.cross_encoder import CrossEncoderTrainer

    groups = [g for g in groups if g.negatives]
    if not groups:
        raise ValueError("no reranker examples: do the judgments name documents of the corpus?")
    width = min(len(g.negatives) for g in groups)  # the loss takes a fixed number of negative columns
    device = pick_device(settings.models.device)
    model = CrossEncoder(base_path, device=device, num_labels=1, max_length=MAX_LENGTH)
    dataset = _group_dataset(groups, width)
    loss = _mined_negatives_loss(model)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mmsearch-rerank-") as scratch:
        args = _training_arguments(
            scratch,
            device=device,
            epochs=epochs,
            groups_per_batch=groups_per_batch,
            learning_rate=learning_rate,
            head_learning_rate=head_learning_rate,
            logging_steps=max(1, len(groups) // groups_per_batch // 10),
            seed=seed,
        )
        trainer = CrossEncoderTrainer(model=model, args=args, train_dataset=dataset, loss=loss)
        output = trainer.train()
    model.save(str(out_dir))
    return {
        "device": device,
        "groups": len(groups),
        "pairs": len(groups) * (1 + width),
        "loss": "softmax cross-entropy over a judged passage and its negatives",
        "epochs": epochs,
        "steps": output.global_step,
        "final_loss": round(float(output.training_loss), 4),
        "train_seconds": round(time.monotonic() - started, 1),
    }


def _group_dataset(groups: list[RerankGroup], width: int) -> Any:
    """Columns query, positive, negative_1..negative_`width`: one row per group."""
    from datasets import Dataset

    return Dataset.from_dict(
        {
            "query": [g.query for g in groups],
            "positive": [g.positive for g in groups],
            **{f"negative_{i + 1}": [g.negatives[i] for g in groups] for i in range(width)},
        }
    )


def _mined_negatives_loss(model: Any) -> Any:
    """Softmax cross-entropy of the raw scores over a group's judged passage and its mined negatives."""
    from sentence_transformers.cross_encoder.losses import MultipleNegativesRankingLoss
    from torch import nn

    class MinedNegativesLoss(MultipleNegativesRankingLoss):
        """Only the mined negatives: another query's passage is too easy to teach anything."""

        def get_in_batch_negatives(self, anchors: list[str], candidates: list[list[str]]) -> Iterator:
            return iter(())

    return MinedNegativesLoss(model, scale=1.0, activation_fn=nn.Identity())  # softmax of raw scores


def _training_arguments(
    scratch: str,
    *,
    device: str,
    epochs: int,
    groups_per_batch: int,
    learning_rate: float,
    head_learning_rate: float,
    logging_steps: int,
    seed: int,
) -> Any:
    """The trainer's settings: the scoring head at its own learning rate, nothing saved mid-run."""
    from sentence_transformers.cross_encoder import CrossEncoderTrainingArguments

    return CrossEncoderTrainingArguments(
        output_dir=scratch,
        num_train_epochs=epochs,
        per_device_train_batch_size=groups_per_batch,
        learning_rate=learning_rate,
        learning_rate_mapping={HEAD: head_learning_rate},
        weight_decay=0.01,
        warmup_steps=0.1,
        fp16=use_fp16(device),
        use_cpu=device == "cpu",
        save_strategy="no",
        report_to="none",
        logging_steps=logging_steps,
        disable_tqdm=not sys.stderr.isatty(),  # a log file gets the loss lines, not a bar per step
        seed=seed,
    )
