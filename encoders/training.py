"""Fine-tune a collection's text encoder on training judgments (MultipleNegativesRankingLoss).

Each example is (query, judged-relevant passage, BM25 hard negatives): the negatives are the
collection's own lexical hits that are not judged relevant, so the model learns what words alone
confuse, and the other passages of the batch serve as easy negatives. Sentence-transformers'
Trainer does the rest: no-duplicate batches (a passage twice in a batch would be a false negative),
warmup and linear decay, fp16 on CUDA. The model is saved under the models root with an
`mmsearch.json` saying how it was made; a re-encode job then puts it in service.

With a held-out `EvalSet` (queries the training never sees) the model is scored after every epoch,
training stops once it stops improving (`patience`) and the best epoch's weights are the ones saved.
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from core.config import Settings
from encoders.device import pick_device, use_fp16

LOSS = "MultipleNegativesRankingLoss"
CARD = "mmsearch.json"


@dataclass
class TrainConfig:
    epochs: int = 3  # at most this many: with an EvalSet training stops when held-out nDCG stops rising
    batch_size: int = 32
    hard_negatives: int = 1
    max_pairs: int | None = None
    # Training sees the first 128 tokens of a passage (title + opening): about 1.5x faster than 256 on
    # CPU, and all-MiniLM-L6-v2 itself was trained at 128. The saved model keeps the base's inference
    # length, so documents are still encoded as before.
    max_seq_length: int = 128
    # One epoch over SciFact's 729 training pairs is 23 steps at batch 32: too few for 2e-5 to move the
    # model. Held-out hybrid nDCG@10 gain (`mmsearch bench train`, data/bench/train-configs.json):
    # 2e-5 +0.009, 1e-4 +0.032, 2e-4 +0.049. Check on your own judgments, above all with many more pairs.
    learning_rate: float = 2e-4
    seed: int = 13
    patience: int = 1  # epochs without a held-out gain before stopping (with an EvalSet)
    # Where hard negatives come from: "hybrid" (the product's fused ranking, what users see) or "lexical".
    negatives_from: str = "lexical"
    holdout: float = 0.2  # share of the judged queries kept out of training (split by query, seeded)


@dataclass
class EvalSet:
    """Held-out queries and a candidate pool to rank (their judged passages among others)."""

    queries: dict[str, str]
    corpus: dict[str, str]
    relevant: dict[str, set[str]]

    def evaluator(self, batch_size: int = 64) -> Any:
        try:  # sentence-transformers >= 6
            from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator
        except ImportError:  # 5.x
            from sentence_transformers.evaluation import InformationRetrievalEvaluator
        return InformationRetrievalEvaluator(
            self.queries,
            self.corpus,
            self.relevant,
            ndcg_at_k=[10],
            mrr_at_k=[10],
            accuracy_at_k=[10],
            precision_recall_at_k=[10],
            map_at_k=[100],
            batch_size=batch_size,
            name=EVAL_NAME,
            write_csv=False,
        )


EVAL_NAME = "held"
EVAL_METRIC = f"{EVAL_NAME}_cosine_ndcg@10"


@dataclass
class Example:
    query: str
    positive: str
    negatives: list[str] = field(default_factory=list)


def model_roots(settings: Settings) -> list[Path]:
    """Where models may live: MODELS_DIR when set, and `<data_dir>/models` where training saves otherwise."""
    roots = [settings.models.models_dir] if settings.models.models_dir else []
    return [*roots, settings.engine.data_dir / "models"]


def model_ref(settings: Settings, path: Path) -> str:
    """How a collection names a saved model: its bare name under MODELS_DIR (portable across hosts that
    mount it), else the absolute path."""
    if settings.models.models_dir and path.parent.resolve() == settings.models.models_dir.resolve():
        return path.name
    return str(path.resolve())


def version_name(base_ref: str, collection: str, now: datetime) -> str:
    """`<base>-ft-<collection>-<UTC timestamp>`; fine-tuning a fine-tuned model keeps the original base."""
    base = Path(base_ref.rstrip("/")).name.split("-ft-")[0]
    return f"{base}-ft-{collection}-{now:%Y%m%d-%H%M%S}"


def _columns(examples: list[Example], hard_negatives: int) -> dict[str, list[str]]:
    columns = {"anchor": [e.query for e in examples], "positive": [e.positive for e in examples]}
    for i in range(hard_negatives):
        columns[f"negative_{i + 1}"] = [e.negatives[i] for e in examples]
    return columns


def _loss_class() -> type:
    try:  # sentence-transformers >= 6
        from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    except ImportError:  # 5.x
        from sentence_transformers.losses import MultipleNegativesRankingLoss
    return MultipleNegativesRankingLoss


def train(
    base_path: str,
    examples: list[Example],
    out_dir: Path,
    settings: Settings,
    *,
    config: TrainConfig,
    held: EvalSet | None = None,
) -> dict[str, Any]:
    """Fine-tune the model at `base_path` and save it to `out_dir`; returns what the run did."""
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer

    if not examples:
        raise ValueError("no training examples: do the judgments name documents of the corpus?")
    device = pick_device(settings.models.device)
    model = SentenceTransformer(base_path, device=device)
    inference_length = model.max_seq_length
    model.max_seq_length = min(config.max_seq_length, inference_length)
    dataset = Dataset.from_dict(_columns(examples, config.hard_negatives))
    evaluator = held.evaluator() if held else None
    before = _score(evaluator, model)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mmsearch-train-") as scratch:
        trainer = SentenceTransformerTrainer(
            model=model,
            args=_arguments(scratch, config, device, len(examples), evaluate=evaluator is not None),
            train_dataset=dataset,
            loss=_loss_class()(model),
            evaluator=evaluator,
            callbacks=[_early_stopping(config.patience)] if evaluator else None,
        )
        output = trainer.train()  # with an evaluator: the best epoch's weights are loaded at the end
        history = [
            {"epoch": round(row["epoch"]), "ndcg@10": round(row[f"eval_{EVAL_METRIC}"], 4)}
            for row in trainer.state.log_history
            if f"eval_{EVAL_METRIC}" in row
        ]
    after = _score(evaluator, model)
    model.max_seq_length = inference_length
    model.save(str(out_dir))
    return {
        "device": device,
        "fp16": use_fp16(device),
        "steps": output.global_step,
        "final_loss": round(float(output.training_loss), 4),
        "train_seconds": round(time.monotonic() - started, 1),
        "train_max_seq_length": min(config.max_seq_length, inference_length),
        "max_seq_length": inference_length,
        **({"held_out": {"before": before, "after": after, "epochs": history}} if evaluator else {}),
    }


def _arguments(scratch: str, config: TrainConfig, device: str, examples: int, *, evaluate: bool) -> Any:
    from sentence_transformers import SentenceTransformerTrainingArguments

    per_epoch = {"eval_strategy": "epoch", "save_strategy": "epoch", "save_total_limit": 2}
    return SentenceTransformerTrainingArguments(
        output_dir=scratch,
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        warmup_steps=0.1,  # a fraction: 10% of the steps
        fp16=use_fp16(device),
        use_cpu=device == "cpu",
        batch_sampler="no_duplicates",
        report_to="none",
        logging_steps=max(1, examples // config.batch_size // 10),
        disable_tqdm=not sys.stderr.isatty(),  # a log file gets the loss lines, not a bar per step
        seed=config.seed,
        **(
            {
                **per_epoch,
                "load_best_model_at_end": True,
                "metric_for_best_model": f"eval_{EVAL_METRIC}",
                "greater_is_better": True,
                "save_only_model": True,
            }
            if evaluate
            else {"save_strategy": "no"}
        ),
    )


def _early_stopping(patience: int) -> Any:
    from transformers import EarlyStoppingCallback

    return EarlyStoppingCallback(early_stopping_patience=patience)


def _score(evaluator: Any, model: Any) -> float | None:
    """Held-out nDCG@10 of the candidate pool ranked by the model, or None without held-out queries."""
    return round(float(evaluator(model)[EVAL_METRIC]), 4) if evaluator else None
