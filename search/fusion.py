"""Rank fusion done by us (not the licensed RRF retriever), so it works on every cluster and OpenSearch.

Input: one ranked list of (doc_id, score) per sub-query, best first. Output: fused hits with each
component's rank, raw score, normalised score and contribution, which is what `explain` shows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from search.schema import Fusion

Ranking = list[tuple[str, float]]
Normalization = Literal["minmax", "zscore", "l2"]


@dataclass
class FusedHit:
    doc_id: str
    score: float
    components: dict[str, dict[str, float]] = field(default_factory=dict)


def rrf(
    rankings: dict[str, Ranking], k: float = 60.0, weights: dict[str, float] | None = None
) -> list[FusedHit]:
    """Reciprocal rank fusion: score = sum over lists of weight / (k + rank)."""
    hits: dict[str, FusedHit] = {}
    for name, ranking in rankings.items():
        weight = (weights or {}).get(name, 1.0)
        for rank, (doc_id, score) in enumerate(ranking, start=1):
            contribution = weight / (k + rank)
            hit = hits.setdefault(doc_id, FusedHit(doc_id, 0.0))
            hit.score += contribution
            hit.components[name] = {"rank": rank, "score": score, "contribution": contribution}
    return _sorted(hits)


def normalize(scores: list[float], method: Normalization) -> list[float]:
    if not scores:
        return []
    if method == "minmax":
        low, high = min(scores), max(scores)
        return [1.0 if high == low else (s - low) / (high - low) for s in scores]
    if method == "zscore":
        n = len(scores)
        mean = sum(scores) / n
        std = math.sqrt(sum((s - mean) ** 2 for s in scores) / n)
        if std == 0:  # one hit, or all tied: the list says who is in it, nothing about who is better
            return [0.0] * n
        # Shrink by (n - 1) / n: the z-scores of n hits span at most sqrt(n) units whatever the scores,
        # so two weak matches would claim as much spread as a full window of strong ones. A lone match
        # then moves nothing (it cannot outweigh the best semantic match by construction) and a full
        # window of 100 keeps 99% of its z-scores.
        shrink = (n - 1) / n
        return [shrink * (s - mean) / std for s in scores]
    if method == "l2":
        norm = math.sqrt(sum(s * s for s in scores))
        return [0.0 if norm == 0 else s / norm for s in scores]
    raise ValueError(f"unknown normalization {method!r}")


def linear(
    rankings: dict[str, Ranking],
    weights: dict[str, float] | None = None,
    normalization: Normalization = "minmax",
) -> list[FusedHit]:
    """Convex combination of normalised scores; a document missing from a list gets that list's floor."""
    weights = weights or {}
    hits: dict[str, FusedHit] = {}
    floors: dict[str, float] = {}
    for name, ranking in rankings.items():
        normalised = normalize([score for _, score in ranking], normalization)
        # z-scores are centred on 0, so a document missing from a list gets the list's lowest value (0 for
        # a list without spread, see `normalize`); min-max and L2 floors are 0.
        floors[name] = min(normalised, default=0.0) if normalization == "zscore" else 0.0
        weight = weights.get(name, 1.0)
        for rank, ((doc_id, score), norm) in enumerate(zip(ranking, normalised, strict=True), start=1):
            hit = hits.setdefault(doc_id, FusedHit(doc_id, 0.0))
            hit.components[name] = {
                "rank": rank,
                "score": score,
                "normalized": norm,
                "contribution": weight * norm,
            }
            hit.score += weight * norm
    for hit in hits.values():
        for name in rankings:
            if name not in hit.components:
                hit.score += weights.get(name, 1.0) * floors[name]
    return _sorted(hits)


def fuse(rankings: dict[str, Ranking], spec: Fusion) -> list[FusedHit]:
    """The one dispatch the API, tuning and benchmarks share: a lone list passes through, more are fused."""
    if len(rankings) == 1:
        ((name, ranking),) = rankings.items()
        return passthrough(name, ranking)
    if spec.method == "linear":
        return linear(rankings, spec.weights, spec.normalization)
    return rrf(rankings, spec.k, spec.weights)


def blend(fused: list[float], reranker: list[float], weight: float) -> list[tuple[int, float]]:
    """A rerank window reordered: (position in the window, final score), best first, ties in fused order.

    final = (1 - weight) * fused + weight * reranker, each min-max scaled over the window. weight 1 is the
    cross-encoder's order alone; lower keeps what fusion knew (a reranker learned from a few hundred
    queries is rarely better on its own than with the first stage). The API and `mmsearch rerank`'s
    offline choice of the weight both order windows with this one function."""
    final = [
        (1 - weight) * f + weight * r
        for f, r in zip(normalize(fused, "minmax"), normalize(reranker, "minmax"), strict=True)
    ]
    return sorted(enumerate(final), key=lambda item: (-item[1], item[0]))


def applied_method(rankings: dict[str, Ranking], spec: Fusion) -> str:
    """What `fuse` applies: "none" for a single list (its own scores), else the spec's method."""
    return spec.method if len(rankings) > 1 else "none"


def passthrough(name: str, ranking: Ranking) -> list[FusedHit]:
    """A single list keeps its own scores and order."""
    return [
        FusedHit(doc_id, score, {name: {"rank": rank, "score": score, "contribution": score}})
        for rank, (doc_id, score) in enumerate(ranking, start=1)
    ]


def _sorted(hits: dict[str, FusedHit]) -> list[FusedHit]:
    """Deterministic order (score, then best rank, then id), so pages never overlap or skip."""
    return sorted(
        hits.values(), key=lambda h: (-h.score, min(c["rank"] for c in h.components.values()), h.doc_id)
    )
