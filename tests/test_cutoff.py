"""The relevance cut-off and its fitting on hand-checked examples (no services)."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from evaluation import cutoff as fitting
from evaluation.runs import set_scores
from search import cutoff
from search.fusion import FusedHit, passthrough
from search.schema import Cutoff, Fusion, Profile, SearchRequest

SCORES = [10.0, 8.0, 5.0, 4.9, 1.0]


def rule(name: str, value: float) -> Cutoff:
    return Cutoff(rule=name, value=value)


def hits(*pairs: tuple[str, float]) -> list[FusedHit]:
    return [FusedHit(doc_id, score) for doc_id, score in pairs]


# ---- the rule -------------------------------------------------------------------------------------


def test_each_rule_keeps_the_prefix_it_says() -> None:
    assert cutoff.kept(SCORES, rule("top_k", 3)) == 3
    assert cutoff.kept(SCORES, rule("top_k", 10)) == 5
    assert cutoff.kept(SCORES, rule("ratio", 0.5)) == 3  # >= 5.0: a hit exactly on the threshold passes
    assert cutoff.kept(SCORES, rule("gap", 2.0)) == 2  # >= 10 - 2
    assert cutoff.kept(SCORES, rule("min_score", 4.9)) == 4
    assert cutoff.kept([], rule("gap", 1.0)) == 0


def test_a_ratio_of_a_top_score_that_is_not_positive_keeps_only_the_ties() -> None:
    assert cutoff.kept([-1.0, -1.0, -2.0], rule("ratio", 0.5)) == 2
    assert cutoff.kept([0.0, 0.0, -0.5], rule("ratio", 0.9)) == 2


def test_rules_reject_values_that_mean_nothing() -> None:
    for name, value in (("ratio", 1.5), ("ratio", 0.0), ("top_k", 2.5), ("top_k", 0), ("gap", -1.0)):
        with pytest.raises(ValidationError):
            Cutoff(rule=name, value=value)
    with pytest.raises(ValidationError):
        Cutoff(rule="ratio", value=float("nan"))
    assert SearchRequest(query="x", cutoff=False).cutoff is False
    assert (
        Profile.model_validate({"cutoff": {"hybrid": {"rule": "gap", "value": 1.5}}}).cutoff["hybrid"].value
        == 1.5
    )
    with pytest.raises(ValidationError):
        Profile.model_validate({"cutoff": {"fused": {"rule": "gap", "value": 1.5}}})


LEXICAL = [("a", 10.0), ("b", 6.0), ("c", 2.0)]  # ratio 0.5 keeps >= 5: a, b
VECTOR = [("d", 0.9), ("c", 0.85), ("e", 0.6)]  # gap 0.1 keeps >= 0.8: d, c
MERIT = {"lexical": rule("ratio", 0.5), "vector:text": rule("gap", 0.1)}


def test_a_fused_hit_must_clear_the_cut_of_one_of_its_own_lists() -> None:
    rankings = {"lexical": LEXICAL, "vector:text": VECTOR}
    assert cutoff.merit(rankings, MERIT) == {"a", "b", "c", "d"}
    fused = hits(("a", 2.0), ("d", 1.5), ("e", 1.2), ("b", 0.5), ("c", 0.1))
    # the fused gap 1.0 keeps a, d, e (>= 1.0); e, found only by the kNN far below its top, is dropped
    rules = cutoff.Rules(rule("gap", 1.0), MERIT, "profile")
    assert [h.doc_id for h in cutoff.apply(fused, rankings, rules)] == ["a", "d"]
    # no final rule: merit alone
    assert [h.doc_id for h in cutoff.apply(fused, rankings, cutoff.Rules(None, MERIT, "x"))] == [
        "a",
        "d",
        "b",
        "c",
    ]
    # a single list is cut by its own rule, merit does not apply
    single = passthrough("vector:text", VECTOR)
    kept = cutoff.apply(single, {"vector:text": VECTOR}, cutoff.Rules(rule("gap", 0.1), MERIT, "x"))
    assert [h.doc_id for h in kept] == ["d", "c"]


def test_which_rules_are_in_force() -> None:
    both = {"lexical": LEXICAL, "vector:text": VECTOR}
    rules = cutoff.resolve(Profile(), both, fusion_overridden=False)
    assert rules.final == cutoff.DEFAULTS["hybrid"] and rules.source == "default"
    assert rules.lists == {"lexical": cutoff.DEFAULTS["lexical"], "vector:text": cutoff.DEFAULTS["vector"]}
    # the request's own fusion has another score scale: merit only
    assert cutoff.resolve(Profile(), both, fusion_overridden=True).final is None
    # the default hybrid rule is a z-score gap: not for a profile fused by RRF
    rrf = Profile(fusion=Fusion(method="rrf"))
    assert cutoff.resolve(rrf, both, fusion_overridden=False).final is None
    learned = Profile(fusion=Fusion(method="rrf"), cutoff={"hybrid": rule("top_k", 4)})
    rules = cutoff.resolve(learned, both, fusion_overridden=False)
    assert rules.final == rule("top_k", 4) and rules.source == "mixed"
    lexical = cutoff.resolve(
        Profile(cutoff={"lexical": rule("top_k", 2)}), {"lexical": LEXICAL}, fusion_overridden=False
    )
    assert (lexical.final, lexical.lists, lexical.source) == (rule("top_k", 2), {}, "profile")


def test_what_the_response_says() -> None:
    single = passthrough("lexical", LEXICAL)
    profile = Profile(cutoff={"lexical": rule("top_k", 2)})
    cut = cutoff.for_request(
        single, {"lexical": LEXICAL}, profile=profile, req=SearchRequest(query="q"), by_example=False
    )
    assert [h.doc_id for h in cut.hits] == ["a", "b"]
    assert cut.info == {
        "applied": True,
        "source": "profile",
        "rule": {"rule": "top_k", "value": 2.0},
        "merit": {},
        "before": 3,
        "cut": 1,
    }
    off = cutoff.for_request(
        single,
        {"lexical": LEXICAL},
        profile=profile,
        req=SearchRequest(query="q", cutoff=False),
        by_example=False,
    )
    assert off.hits == single and off.info["applied"] is False
    example = cutoff.for_request(
        single, {"lexical": LEXICAL}, profile=profile, req=SearchRequest(), by_example=True
    )
    assert example.hits == single and example.info["applied"] is False


# ---- the fitting ----------------------------------------------------------------------------------


def test_f_beta_of_a_returned_set() -> None:
    relevant = frozenset({"a", "e"})
    # P = 1/4, R = 1/2: F1 = 2 PR / (P + R) = 1/3; F2 = 5 PR / (4P + R) = 0.625 / 1.5
    assert fitting.fbeta(["a", "b", "c", "d"], relevant) == pytest.approx(1 / 3)
    assert fitting.fbeta(["a", "b", "c", "d"], relevant, beta=2) == pytest.approx(0.625 / 1.5)
    assert fitting.fbeta([], relevant) == 0.0 and fitting.fbeta(["x"], relevant) == 0.0


# two relevant hits well above the rest, or one: a share of the top score finds both, a fixed size cannot
TWO = fitting.Judged(hits(("a", 10.0), ("b", 9.0), ("c", 4.0), ("d", 3.0)), {}, frozenset({"a", "b"}))
# ... on another score scale, so no fixed threshold serves both (TWO needs one in (4, 9], ONE in (1.5, 3])
ONE = fitting.Judged(hits(("a", 3.0), ("b", 1.5), ("c", 1.35), ("d", 1.2)), {}, frozenset({"a"}))


def test_f1_of_each_rule_on_each_query_by_hand() -> None:
    rules = [
        rule("top_k", 1),
        rule("top_k", 2),
        rule("ratio", 0.8),
        rule("top_k", 10),
        rule("min_score", 4.5),
    ]
    matrix = fitting.score_matrix([TWO, ONE], rules, {}, beta=1.0)
    expected = [
        [2 / 3, 1.0],  # top 1: TWO has P 1, R 1/2
        [1.0, 2 / 3],  # top 2: ONE has P 1/2, R 1
        [1.0, 1.0],  # ratio 0.8: >= 8 keeps a, b in TWO; >= 2.4 keeps a alone in ONE
        [2 / 3, 0.4],  # everything: P 1/2 and 1/4, R 1
        [1.0, 0.0],  # >= 4.5: TWO keeps a, b; ONE keeps nothing
    ]
    assert matrix == pytest.approx(np.array(expected))


def test_the_fast_matrix_is_what_the_api_keeps() -> None:
    rankings = {"lexical": LEXICAL, "vector:text": VECTOR}
    fused = hits(("a", 2.0), ("d", 1.5), ("e", 1.2), ("b", 0.5), ("c", 0.1))
    query = fitting.Judged(fused, rankings, frozenset({"a", "e", "c"}))
    merit = {"lexical": rule("ratio", 0.5), "vector": rule("gap", 0.1)}
    rules = [rule("gap", g) for g in (0.0, 0.5, 1.0, 1.6, 2.0)] + [rule("top_k", k) for k in (1, 3, 5)]
    matrix = fitting.score_matrix([query], rules, merit, beta=1.0)
    for i, candidate in enumerate(rules):
        by_name = {"lexical": merit["lexical"], "vector:text": merit["vector"]}
        kept = cutoff.apply(fused, rankings, cutoff.Rules(candidate, by_name, "x"))
        assert matrix[i, 0] == pytest.approx(fitting.fbeta([h.doc_id for h in kept], query.relevant))
    # gap 1.6 keeps a, d, e, b (>= 0.4); merit drops e: {a, d, b} holds a of {a, e, c}: P 1/3, R 1/3
    assert matrix[3, 0] == pytest.approx(1 / 3)
    # gap 2.0 keeps all five (>= 0); merit drops e: a and c of four: P 1/2, R 2/3, F1 4/7
    assert matrix[4, 0] == pytest.approx(4 / 7)


def test_cross_validation_learns_a_relative_rule_where_a_fixed_size_fails() -> None:
    queries = [TWO, ONE] * 5
    fitted = fitting.fit_kind(queries, "lexical", n_folds=5)
    cv = fitted.report["cv"]
    assert cv["learned"]["mean"] == pytest.approx(1.0)  # e.g. a ratio in (0.5, 0.9]: perfect on every fold
    assert fitted.rule.rule in {"ratio", "gap"}
    assert cutoff.kept([h.score for h in TWO.fused], fitted.rule) == 2
    assert cutoff.kept([h.score for h in ONE.fused], fitted.rule) == 1
    assert cv["top_10"]["mean"] == pytest.approx((2 / 3 + 0.4) / 2, abs=1e-4)  # top 10 keeps all four
    # fitted on every query, top 1 or 2 scores 5/6; the held-out folds, chosen on the others, no more
    assert cv["best_top_k"]["all_queries"] == pytest.approx((2 / 3 + 1.0) / 2, abs=1e-4)
    assert cv["best_top_k"]["mean"] <= 5 / 6
    # the best fixed threshold serves one scale: (1.5, 3] keeps all of TWO (F1 2/3) and a of ONE (1)
    assert cv["best_threshold"]["all_queries"] == pytest.approx((2 / 3 + 1.0) / 2, abs=1e-4)
    assert cv["best_threshold"]["mean"] <= 5 / 6
    assert cv["no_cut"]["mean"] == pytest.approx(cv["top_10"]["mean"])
    assert len(fitted.fold_rules) == 5


def test_fit_fits_hybrid_under_the_merit_rules_and_keeps_only_what_beats_the_default() -> None:
    rankings = {"lexical": LEXICAL, "vector:text": VECTOR}
    fused = hits(("a", 2.0), ("d", 1.5), ("e", 1.2), ("b", 0.5), ("c", 0.1))
    hybrid = fitting.Judged(fused, rankings, frozenset({"a", "d"}))
    lexical = fitting.Judged(passthrough("lexical", LEXICAL), {"lexical": LEXICAL}, frozenset({"a"}))
    vector = fitting.Judged(passthrough("vector:text", VECTOR), {"vector:text": VECTOR}, frozenset({"d"}))
    rules, report = fitting.fit(
        {"lexical": [lexical] * 4, "vector": [vector] * 4, "hybrid": [hybrid] * 4}, n_folds=2
    )
    assert set(report) == {"lexical", "vector", "hybrid"}
    for kind in ("lexical", "vector"):  # one relevant hit on top: the first of the perfect rules, top 1
        assert report[kind]["cv"]["learned"]["mean"] == 1.0
        assert report[kind]["cv"]["learned"]["rule"] == {"rule": "top_k", "value": 1.0}
    assert report["hybrid"]["cv"]["learned"]["mean"] == pytest.approx(1.0)
    assert "learned_without_merit" in report["hybrid"]["cv"]
    for kind, fitted in report.items():  # a rule is kept only where it beats the default cross-validated
        beats = fitted["cv"]["learned"]["mean"] > fitted["cv"]["default"]["mean"]
        assert (kind in rules) == beats and fitted["selected"] == ("learned" if beats else "default")


def test_set_metrics_of_eval() -> None:
    qrels = {"q1": {"a": 1, "b": 1}, "q2": {"c": 1}}
    run = {"q1": {"a": 2.0, "x": 1.0}, "q2": {}}  # q1: P 1/2, R 1/2; q2: nothing returned, 0
    assert set_scores(qrels, run) == pytest.approx(
        {"set_precision": 0.25, "set_recall": 0.25, "set_f1": 0.25}
    )
