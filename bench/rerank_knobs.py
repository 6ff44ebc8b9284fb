"""What else makes the reranking stage cheaper on a CPU, against torch, taking turns query by query (no
services): OpenVINO's performance hints and thread count, bf16 and f32 (a CPU with avx512_bf16 or AMX runs
bf16 unless told otherwise), smaller batches, and fewer tokens per (query, passage) pair than the 192 the
reranker reads. Top `depth` of a dense ranking of held-back SciFact queries (bench.encoders' subset), stage
p50/p95, nDCG@10 of the reranked list and the mean correlation of each variant's scores with torch's at 192
tokens (1.0: the same scores).

Without `--model` the cross-encoder is bench.rerank's untrained MiniLM-L6 (its speed is the trained one's;
its nDCG is not a quality): a token limit that changes the correlation needs a trained model's held-back
nDCG before it is adopted.

  python -m bench.rerank_knobs --dataset DIR [--queries 20] [--docs 200] [--depth 20] [--model REF]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from bench.common import Report, save, show
from bench.encoders import subset
from bench.rerank import dense_windows, untrained_model
from core.config import get_settings
from encoders import runtime
from encoders.rerank import MAX_LENGTH, Reranker
from evaluation.runs import ranked_run, scores

Scorer = Callable[[str, list[str]], list[float]]
# label -> (OpenVINO config or None for torch, tokens per pair, batch size)
VARIANTS: dict[str, tuple[dict[str, Any] | None, int, int]] = {
    "torch": (None, MAX_LENGTH, 32),
    "openvino LATENCY (default)": ({"PERFORMANCE_HINT": "LATENCY"}, MAX_LENGTH, 32),
    "openvino LATENCY, 2 threads": (
        {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": 2},
        MAX_LENGTH,
        32,
    ),
    "openvino THROUGHPUT": ({"PERFORMANCE_HINT": "THROUGHPUT"}, MAX_LENGTH, 32),
    "openvino bf16": ({"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "bf16"}, MAX_LENGTH, 32),
    "openvino f32": ({"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}, MAX_LENGTH, 32),
    "openvino, batches of 8": ({"PERFORMANCE_HINT": "LATENCY"}, MAX_LENGTH, 8),
    "openvino, 128 tokens": ({"PERFORMANCE_HINT": "LATENCY"}, 128, 32),
    "openvino, 96 tokens": ({"PERFORMANCE_HINT": "LATENCY"}, 96, 32),
}


def scorers(model: str) -> dict[str, Scorer]:
    """One scoring function per variant, each loaded and exported before any timing."""
    settings = get_settings()
    loaded = {
        name: Reranker(model, settings.replace(models={"rerank_backend": name, "device": "cpu"}))
        for name in ("torch", "openvino")
    }
    for reranker in loaded.values():
        reranker.score("warm up", ["the model loads and exports here, outside the timings"])
    onnx = runtime.compiled_dir(settings, loaded["openvino"].path) / "scores.onnx"
    out = {}
    for label, (config, tokens, batch) in VARIANTS.items():
        if config is None:
            out[label] = _torch_scorer(loaded["torch"], tokens, batch)
        else:
            out[label] = _openvino_scorer(
                loaded["openvino"], runtime.openvino_runner(onnx, config), tokens, batch
            )
    return out


def _torch_scorer(reranker: Reranker, tokens: int, batch: int) -> Scorer:
    def score(query: str, passages: list[str]) -> list[float]:
        model = reranker.load()
        model.max_length = tokens
        pairs = [(query, p) for p in passages]
        return [float(s) for s in model.predict(pairs, batch_size=batch, show_progress_bar=False)]

    return score


def _openvino_scorer(reranker: Reranker, run: runtime.Runner, tokens: int, batch: int) -> Scorer:
    import torch

    def score(query: str, passages: list[str]) -> list[float]:
        model = reranker.load()
        model.max_length = tokens
        logits = runtime.run_batched(model, run, [(query, p) for p in passages], batch)
        # through the model's activation, as `Reranker.score` and torch's `predict` return them: the
        # correlation with torch's scores then measures the backend, not a sigmoid
        return [float(s) for s in model.activation_fn(torch.from_numpy(logits)).reshape(-1)]

    return score


def run(
    dataset: Path, n_queries: int = 20, n_docs: int = 200, *, depth: int = 20, model: str | None = None
) -> Report:
    model = model or untrained_model()
    data = subset(dataset, n_queries, n_docs)
    windows = dense_windows(data, depth)
    scoring = scorers(model)
    ms: dict[str, list[float]] = {label: [] for label in scoring}
    got: dict[str, dict[str, list[float]]] = {label: {} for label in scoring}
    for qid, window in windows.items():
        passages = [data.texts[data.doc_ids.index(d)] for d in window]
        for label, score in scoring.items():  # turn by turn: a neighbour's load falls on all alike
            began = time.perf_counter()
            got[label][qid] = score(data.queries[qid], passages)
            ms[label].append((time.perf_counter() - began) * 1000)
    torch_p50 = float(np.percentile(ms["torch"], 50))
    rows = []
    for label in scoring:
        ranked = {
            q: ranked_run([w[i] for i in np.argsort(-np.asarray(got[label][q]), kind="stable")])
            for q, w in windows.items()
        }
        p50 = float(np.percentile(ms[label], 50))
        rows.append(
            {
                "variant": label,
                "stage p50 ms": round(p50, 1),
                "stage p95 ms": round(float(np.percentile(ms[label], 95)), 1),
                "x torch (p50)": round(torch_p50 / p50, 2),
                "corr vs torch": round(
                    float(np.mean([np.corrcoef(got[label][q], got["torch"][q])[0, 1] for q in windows])), 4
                ),
                "nDCG@10": round(scores(data.qrels, ranked, ["ndcg@10"])["ndcg@10"], 4),
            }
        )
    return Report(
        "rerank-knobs",
        f"reranking stage variants: top {depth} of a dense ranking of {len(data.texts)} abstracts, "
        f"{len(data.queries)} held-back SciFact queries, one query at a time",
        rows,
        [f"model {model}; variants take turns query by query in one process: the ratios are what compares."],
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.rerank_knobs", description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--docs", type=int, default=200)
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--model")
    args = parser.parse_args()
    report = run(args.dataset, args.queries, args.docs, depth=args.depth, model=args.model)
    show(report, Console(width=200))
    print(f"JSON: {save(report)}", file=sys.stderr)


if __name__ == "__main__":
    main()
