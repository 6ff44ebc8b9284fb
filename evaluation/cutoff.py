"""Learn where result sets end from judgments: candidate rules, the F-beta of each on each judged query,
and the choice by k-fold cross-validation (the folds and the per-fold choice of `evaluation.tuning`).

Each list kind of `search.cutoff` is fitted on its own lists: `lexical` on the BM25 lists, `vector` on
each kNN list alone, `hybrid` on the fused lists with the merit rule of the other two in force (in each
fold, the lexical and vector rules chosen on that fold's training queries), so what is scored offline
is what `search.cutoff.apply` keeps online."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from evaluation.runs import Judgments
from evaluation.tuning import Components, TuneResult, cross_validate, fixed_folds, folds, summary
from search import cutoff
from search.fusion import FusedHit, Ranking, fuse
from search.schema import Cutoff, Profile

KINDS = ("lexical", "vector", "hybrid")
TOP_KS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 15, 20, 30, 50, 100, 1000)
RATIOS = tuple(round(0.30 + 0.01 * i, 2) for i in range(70))  # 0.30 .. 0.99
QUANTILES = np.linspace(0.5, 99.5, 67)  # where gap and min_score candidates sit in the observed scores
DEPTH = 50  # observed scores come from each list's first hits: deeper ones are never where a cut sits
# A ratio of the top score needs positive scores: fused (z-score, RRF) lists do not have them.
FAMILIES: dict[str, tuple[str, ...]] = {
    "lexical": ("top_k", "ratio", "gap", "min_score"),
    "vector": ("top_k", "ratio", "gap", "min_score"),
    "hybrid": ("top_k", "gap", "min_score"),
}
TOP_10 = Cutoff(rule="top_k", value=10)


@dataclass(frozen=True)
class Judged:
    """One judged query's list as the API builds it: the final hits and the sub-query lists under it."""

    fused: list[FusedHit]
    rankings: dict[str, Ranking]
    relevant: frozenset[str]


def fbeta(returned: Sequence[str], relevant: frozenset[str], beta: float = 1.0) -> float:
    """F-beta of a returned set: 0 when nothing relevant is returned (or nothing is relevant)."""
    found = len(set(returned) & relevant)
    if not found:
        return 0.0
    precision, recall = found / len(returned), found / len(relevant)
    return (1 + beta**2) * precision * recall / (beta**2 * precision + recall)


def candidates(kind: str, lists: Sequence[Sequence[float]]) -> list[Cutoff]:
    """Every rule tried for a list kind: fixed sizes, shares of the top score, and gaps and thresholds at
    quantiles of the scores observed (score scales differ by list kind: BM25, similarity, fused)."""
    families = FAMILIES[kind]
    gaps = [s[0] - x for s in lists if s for x in s[1:DEPTH]]
    values = [x for s in lists for x in s[:DEPTH]]
    out = [Cutoff(rule="top_k", value=k) for k in TOP_KS]
    if "ratio" in families:
        out += [Cutoff(rule="ratio", value=r) for r in RATIOS]
    if gaps:
        out += [Cutoff(rule="gap", value=v) for v in _grid(gaps) if v >= 0]
    if values:
        out += [Cutoff(rule="min_score", value=v) for v in _grid(values)]
    if cutoff.DEFAULTS[kind] not in out:
        out.append(cutoff.DEFAULTS[kind])
    return out


def _grid(values: list[float]) -> list[float]:
    return sorted({round(float(v), 6) for v in np.percentile(values, QUANTILES)})


def score_matrix(
    queries: Sequence[Judged], rules: Sequence[Cutoff], lists: dict[str, Cutoff], beta: float
) -> np.ndarray:
    """F-beta of every rule (rows) on every query (columns) with `lists` as the merit rules (by list kind).

    Fast path of `search.cutoff.apply`: the final rule keeps a prefix (`cutoff.kept`), merit drops fixed
    hits from it, so per query a running count of kept and of relevant hits answers every rule."""
    matrix = np.zeros((len(rules), len(queries)))
    for j, query in enumerate(queries):
        named = by_name(query.rankings, lists)
        passing = cutoff.merit(query.rankings, named) if len(query.rankings) > 1 and named else None
        ok = [passing is None or hit.doc_id in passing for hit in query.fused]
        count = np.concatenate([[0], np.cumsum(ok)])
        found = np.concatenate(
            [[0], np.cumsum([o and h.doc_id in query.relevant for o, h in zip(ok, query.fused, strict=True)])]
        )
        scores = [hit.score for hit in query.fused]
        for i, rule in enumerate(rules):
            n = cutoff.kept(scores, rule)
            hits, rel = int(count[n]), int(found[n])
            if rel and query.relevant:
                p, r = rel / hits, rel / len(query.relevant)
                matrix[i, j] = (1 + beta**2) * p * r / (beta**2 * p + r)
    return matrix


@dataclass
class KindFit:
    """A list kind's rule chosen on every query, the rules chosen per fold, and how each scored."""

    rule: Cutoff
    fold_rules: list[Cutoff]
    report: dict[str, Any]


def _family_cv(matrix: np.ndarray, rules: list[Cutoff], families: set[str], splits: list[np.ndarray]) -> dict:
    """The best rule of some families, chosen on training folds and scored on the held-out one."""
    rows = [i for i, rule in enumerate(rules) if rule.rule in families]
    _, held = cross_validate(matrix[rows], splits)
    best = rows[int(np.argmax(matrix[rows].mean(axis=1)))]
    return {**summary(held, matrix[best]), "rule": rules[best].model_dump()}


def _fixed(row: np.ndarray, splits: list[np.ndarray], rule: Cutoff) -> dict:
    return {**summary(fixed_folds(row, splits), row), "rule": rule.model_dump()}


def fit_kind(
    queries: Sequence[Judged],
    kind: str,
    *,
    n_folds: int,
    beta: float = 1.0,
    merit: tuple[list[dict[str, Cutoff]], dict[str, Cutoff]] | None = None,
) -> KindFit:
    """Cross-validated choice among `candidates`; `merit`: the merit rules of each fold and of all
    queries (a fused list kind), else none. Also the baselines: a fixed top 10, the best fixed score
    threshold and the best top k (each chosen on the training folds), the default, and no cut."""
    rules = candidates(kind, [[hit.score for hit in q.fused] for q in queries])
    splits = folds(len(queries), n_folds)
    plain = score_matrix(queries, rules, {}, beta)
    if merit:
        per_fold = [
            cross_validate(score_matrix(queries, rules, lists, beta), [test])
            for lists, test in zip(merit[0], splits, strict=True)
        ]
        chosen, held = [c[0][0] for c in per_fold], [c[1][0] for c in per_fold]
        matrix = score_matrix(queries, rules, merit[1], beta)
        defaults = {k: cutoff.DEFAULTS[k] for k in ("lexical", "vector")}
        default_row = score_matrix(queries, [cutoff.DEFAULTS[kind]], defaults, beta)[0]
    else:
        chosen, held = cross_validate(plain, splits)
        matrix, default_row = plain, plain[rules.index(cutoff.DEFAULTS[kind])]
    best = int(np.argmax(matrix.mean(axis=1)))
    cv = {
        "learned": {**summary(held, matrix[best]), "rule": rules[best].model_dump()},
        "top_10": _fixed(plain[rules.index(TOP_10)], splits, TOP_10),
        "best_threshold": _family_cv(plain, rules, {"min_score"}, splits),
        "best_top_k": _family_cv(plain, rules, {"top_k"}, splits),
        "best_relative": _family_cv(matrix, rules, {"ratio", "gap"}, splits),
        "default": _fixed(default_row, splits, cutoff.DEFAULTS[kind]),
        "no_cut": _fixed(
            plain[rules.index(Cutoff(rule="top_k", value=TOP_KS[-1]))],
            splits,
            Cutoff(rule="top_k", value=TOP_KS[-1]),
        ),
    }
    if merit:
        cv["learned_without_merit"] = _family_cv(plain, rules, set(FAMILIES[kind]), splits)
    report = {"queries": len(queries), "candidates": len(rules), "beta": beta, "folds": n_folds, "cv": cv}
    report["fold_rules"] = [describe(rules[i]) for i in chosen]
    return KindFit(rules[best], [rules[i] for i in chosen], report)


def fit(
    sets: dict[str, list[Judged]], *, n_folds: int = 5, beta: float = 1.0
) -> tuple[dict[str, Cutoff], dict[str, Any]]:
    """Each list kind's rule, kept only where its cross-validated F-beta beats the default's (else the
    default stays in force), and the report of every kind."""
    fits: dict[str, KindFit] = {}
    for kind in ("lexical", "vector"):
        if sets.get(kind):
            fits[kind] = fit_kind(sets[kind], kind, n_folds=n_folds, beta=beta)
    rules = {kind: fitted.rule for kind, fitted in fits.items() if _beats_default(fitted)}
    if sets.get("hybrid") and len(fits) == 2:
        # the hybrid rule is fitted under the merit rules that will be in force beside it
        per_fold = [
            {"lexical": lex, "vector": vec}
            for lex, vec in zip(fits["lexical"].fold_rules, fits["vector"].fold_rules, strict=True)
        ]
        fits["hybrid"] = fit_kind(
            sets["hybrid"], "hybrid", n_folds=n_folds, beta=beta, merit=(per_fold, in_force(rules))
        )
        if _beats_default(fits["hybrid"]):
            rules["hybrid"] = fits["hybrid"].rule
    report = {
        kind: {**fitted.report, "selected": "learned" if kind in rules else "default"}
        for kind, fitted in fits.items()
    }
    return rules, report


def _beats_default(fitted: KindFit) -> bool:
    cv = fitted.report["cv"]
    return cv["learned"]["mean"] > cv["default"]["mean"]


def in_force(rules: dict[str, Cutoff]) -> dict[str, Cutoff]:
    """The lexical and vector rules a search applies: the learned ones, else the defaults."""
    return {kind: rules.get(kind, cutoff.DEFAULTS[kind]) for kind in ("lexical", "vector")}


def by_name(rankings: dict[str, Ranking], lists: dict[str, Cutoff]) -> dict[str, Cutoff]:
    """Rules by list kind -> rules by sub-query list name (what `search.cutoff.apply` takes)."""
    return {name: lists[cutoff.list_kind(name)] for name in rankings if cutoff.list_kind(name) in lists}


def describe(rule: Cutoff) -> str:
    """`top 10`, `ratio 0.5`, `gap 1.2`, `score >= 7.1`."""
    if rule.rule == "top_k":
        return f"top {int(rule.value)}"
    if rule.rule == "min_score":
        return f"score >= {rule.value:g}"
    return f"{rule.rule} {rule.value:g}"


def judged_sets(
    comps: Components, profile: Profile, names: list[str], qrels: Judgments
) -> dict[str, list[Judged]]:
    """Each list kind's judged lists under a profile: BM25 alone, each kNN list alone, and fused."""
    sets: dict[str, list[Judged]] = {kind: [] for kind in KINDS}
    for qid, judged in qrels.items():
        relevant = frozenset(doc for doc, grade in judged.items() if grade > 0)
        rankings = comps.rankings(profile, names, qid)
        for name, ranking in rankings.items():
            single = {name: ranking}
            sets[cutoff.list_kind(name)].append(Judged(fuse(single, profile.fusion), single, relevant))
        sets["hybrid"].append(Judged(fuse(rankings, profile.fusion), rankings, relevant))
    return sets


def fit_profile(
    result: TuneResult, qrels: Judgments, *, n_folds: int, beta: float = 1.0
) -> tuple[Profile, dict[str, Any]]:
    """The tuned profile with the cut-offs learned on its own rankings, and the fitting report."""
    judged = {qid: qrels[qid] for qid in qrels if qid in result.comps.lexical[result.profile.boosts["title"]]}
    rules, report = fit(
        judged_sets(result.comps, result.profile, result.vector_names, judged), n_folds=n_folds, beta=beta
    )
    scores = {
        **result.profile.scores,
        "cutoff": {
            kind: {"selected": r["selected"], "cv_f_beta": r["cv"]["learned"]["mean"], "beta": beta}
            for kind, r in report.items()
        },
    }
    return result.profile.model_copy(update={"cutoff": rules, "scores": scores}), report


LABELS = {
    "learned": "learned (rule and value chosen by CV)",
    "learned_without_merit": "learned, no merit rule",
    "top_10": "fixed top 10",
    "best_threshold": "best fixed score threshold",
    "best_top_k": "best fixed top k",
    "best_relative": "best ratio / gap",
    "default": "default (no judgments)",
    "no_cut": "no cut (whole window)",
}


def cv_table(cv: dict[str, dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(label, rule chosen on all queries, CV mean ± std) for each row of a kind's report."""
    return [
        (LABELS[key], describe(Cutoff.model_validate(row["rule"])), f"{row['mean']:.4f} ± {row['std']:.4f}")
        for key, row in cv.items()
    ]


def mean_size(queries: Sequence[Judged], rule: Cutoff, lists: dict[str, Cutoff]) -> float:
    """How many hits the rule keeps per query on average (with `lists` as the merit rules by kind)."""
    sizes = []
    for query in queries:
        rules = cutoff.Rules(rule, by_name(query.rankings, lists), "fit")
        sizes.append(len(cutoff.apply(query.fused, query.rankings, rules)))
    return round(sum(sizes) / max(len(sizes), 1), 2)
