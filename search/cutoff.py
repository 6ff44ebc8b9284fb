"""Where a result set ends: the relevance cut-off applied to a ranked list, and which rule is in force.

A kNN always finds k neighbours and a fused list holds the union of every window, so without a cut a
search returns the whole window. Each list kind has its rule (`schema.Cutoff`): `lexical` for a BM25
list alone, `vector` for one kNN list alone, `hybrid` for any fused list. The profile's rules are learned
from judgments by `mmsearch tune` (`evaluation.cutoff`); a collection without them gets `DEFAULTS`.

A fused list is cut twice: on the fused score, and on merit: a hit must also clear the cut of at least
one of its own sub-query lists (the lexical rule on the BM25 list, the vector rule on its kNN list), so
an image found only by a text-to-image kNN passes on its own similarity, never by riding on fused rank.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from search.fusion import FusedHit, Ranking
from search.schema import Cutoff, Profile, SearchRequest

# Chosen by measurement on SciFact's training judgments (`python -m bench.cutoff`: 809 queries, 1065
# abstracts, 5-fold CV): for each list kind the best share-of-top or gap rule for F2 of the returned set
# (CV F2 0.73 lexical, 0.72 vector, 0.78 hybrid; F1 0.68-0.73; a fixed top 10: F1 0.18, F2 0.34).
# F2, not F1: SciFact judges ~1.1 abstracts relevant per query, so its F1 optimum keeps one or two hits,
# too few for a collection whose queries have more answers; weighing recall keeps a few more.
# `hybrid` assumes the default z-score fusion; its gap is wide because merit does the finer cutting.
DEFAULTS: dict[str, Cutoff] = {
    "lexical": Cutoff(rule="ratio", value=0.73),
    "vector": Cutoff(rule="ratio", value=0.97),
    "hybrid": Cutoff(rule="gap", value=3.09),
}


@dataclass(frozen=True)
class Rules:
    """The rules in force for one search: the final list's, and each sub-query list's (merit)."""

    final: Cutoff | None
    lists: dict[str, Cutoff]
    source: str  # "profile", "default" or "mixed"


@dataclass(frozen=True)
class Cut:
    hits: list[FusedHit]
    info: dict[str, Any]


def threshold(top: float, rule: Cutoff) -> float:
    """The lowest score a score-based rule keeps, given the list's top score. A ratio of a top score
    that is not positive means nothing: then only hits tied with the top are kept."""
    if rule.rule == "ratio":
        return rule.value * top if top > 0 else top
    if rule.rule == "gap":
        return top - rule.value
    return rule.value  # min_score


def kept(scores: Sequence[float], rule: Cutoff) -> int:
    """How many of a best-first list of scores the rule keeps (always a prefix)."""
    if not scores:
        return 0
    if rule.rule == "top_k":
        return min(int(rule.value), len(scores))
    floor = threshold(scores[0], rule) - 1e-12  # a hit exactly on the threshold passes
    count = 0
    for score in scores:
        if score < floor:
            break
        count += 1
    return count


def list_kind(name: str) -> str:
    """The rule a sub-query list is cut by: `lexical`, or `vector` for every kNN list."""
    return "lexical" if name == "lexical" else "vector"


def final_kind(rankings: dict[str, Ranking]) -> str:
    """A single list is cut by its own kind's rule; a fused one by the `hybrid` rule."""
    return list_kind(next(iter(rankings))) if len(rankings) == 1 else "hybrid"


def merit(rankings: dict[str, Ranking], lists: dict[str, Cutoff]) -> set[str]:
    """Ids that clear the cut of at least one of their own lists (a list without a rule passes all)."""
    out: set[str] = set()
    for name, ranking in rankings.items():
        rule = lists.get(name)
        count = kept([score for _, score in ranking], rule) if rule else len(ranking)
        out.update(doc_id for doc_id, _ in ranking[:count])
    return out


def apply(fused: list[FusedHit], rankings: dict[str, Ranking], rules: Rules) -> list[FusedHit]:
    """The hits of `fused` (best first) that clear the final rule and, when fused, the merit rule."""
    count = kept([h.score for h in fused], rules.final) if rules.final else len(fused)
    head = fused[:count]
    if len(rankings) < 2 or not rules.lists:
        return head
    passing = merit(rankings, rules.lists)
    return [hit for hit in head if hit.doc_id in passing]


def resolve(profile: Profile, rankings: dict[str, Ranking], *, fusion_overridden: bool) -> Rules:
    """The profile's rule for each list kind, else the default. A fused list's rule is fitted to its
    fusion's score scale, so it is dropped when the request overrides the fusion (merit still holds),
    and the default one applies only under the default z-score linear fusion."""
    used: set[str] = set()

    def rule(kind: str) -> Cutoff | None:
        if kind in profile.cutoff:
            used.add("profile")
            return profile.cutoff[kind]
        fusion = profile.fusion
        if kind == "hybrid" and (fusion.method, fusion.normalization) != ("linear", "zscore"):
            return None
        used.add("default")
        return DEFAULTS.get(kind)

    kind = final_kind(rankings)
    final = None if kind == "hybrid" and fusion_overridden else rule(kind)
    lists = {name: r for name in rankings if len(rankings) > 1 and (r := rule(list_kind(name)))}
    source = "mixed" if len(used) > 1 else next(iter(used), "none")
    return Rules(final, lists, source)


def for_request(
    fused: list[FusedHit],
    rankings: dict[str, Ranking],
    *,
    profile: Profile,
    req: SearchRequest,
    by_example: bool,
) -> Cut:
    """What the search API returns: the cut list and what the response says about the cut. Rules are
    learned and measured on text queries, so searches by example or by `like` are not cut."""
    if not req.cutoff:
        return Cut(fused, {"applied": False, "reason": "the request set cutoff: false"})
    if by_example or req.like or not req.query:
        return Cut(fused, {"applied": False, "reason": "cut-offs apply to text queries"})
    rules = resolve(profile, rankings, fusion_overridden=req.fusion is not None)
    hits = apply(fused, rankings, rules)
    return Cut(
        hits,
        {
            "applied": rules.final is not None or bool(rules.lists),
            "source": rules.source,
            "rule": rules.final.model_dump() if rules.final else None,
            "merit": {name: r.model_dump() for name, r in rules.lists.items()},
            "before": len(fused),
            "cut": len(fused) - len(hits),
        },
    )
