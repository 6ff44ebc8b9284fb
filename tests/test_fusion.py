"""Fusion arithmetic on hand-checked examples (no services)."""

from __future__ import annotations

import pytest

from search import fusion
from search.schema import Fusion

LEX = [("a", 10.0), ("b", 8.0), ("c", 2.0)]
VEC = [("c", 0.9), ("a", 0.8), ("d", 0.1)]


def test_rrf_scores_and_order() -> None:
    hits = fusion.rrf({"lexical": LEX, "vector": VEC}, k=60)
    by_id = {h.doc_id: h for h in hits}
    assert by_id["a"].score == pytest.approx(1 / 61 + 1 / 62)
    assert by_id["c"].score == pytest.approx(1 / 63 + 1 / 61)
    assert by_id["d"].score == pytest.approx(1 / 63)
    assert [h.doc_id for h in hits] == ["a", "c", "b", "d"]
    assert by_id["a"].components["vector"]["rank"] == 2


def test_rrf_weights() -> None:
    hits = fusion.rrf({"lexical": LEX, "vector": VEC}, k=1, weights={"lexical": 0.0})
    assert [h.doc_id for h in hits][:2] == ["c", "a"]


def test_minmax_linear() -> None:
    hits = fusion.linear({"lexical": LEX, "vector": VEC}, {"lexical": 0.5, "vector": 0.5}, "minmax")
    by_id = {h.doc_id: h.score for h in hits}
    # lexical minmax: a=1, b=0.75, c=0 ; vector minmax: c=1, a=0.875, d=0
    assert by_id["a"] == pytest.approx(0.5 * 1 + 0.5 * 0.875)
    assert by_id["b"] == pytest.approx(0.5 * 0.75)
    assert by_id["c"] == pytest.approx(0.5 * 1)
    assert [h.doc_id for h in hits][0] == "a"


def test_normalisations() -> None:
    assert fusion.normalize([1.0, 3.0], "minmax") == [0.0, 1.0]
    assert fusion.normalize([5.0, 5.0], "minmax") == [1.0, 1.0]
    assert fusion.normalize([1.0, 3.0], "zscore") == pytest.approx([-0.5, 0.5])  # z ±1, shrunk by 1/2
    assert fusion.normalize([3.0, 4.0], "l2") == pytest.approx([0.6, 0.8])
    assert fusion.normalize([], "l2") == []


def test_zscore_missing_documents_get_the_floor() -> None:
    hits = fusion.linear({"x": [("a", 3.0), ("b", 1.0)], "y": [("b", 2.0), ("c", 0.0)]}, None, "zscore")
    by_id = {h.doc_id: h.score for h in hits}
    assert by_id["a"] == pytest.approx(0.5 + -0.5)  # a is missing from y: y's lowest normalised score
    assert by_id["b"] == pytest.approx(-0.5 + 0.5)


def test_zscore_shrinks_short_lists_and_leaves_full_windows_nearly_alone() -> None:
    full = [float(i) for i in range(100)]
    plain = [(s - 49.5) / 28.866 for s in full]
    assert fusion.normalize(full, "zscore") == pytest.approx([0.99 * z for z in plain], abs=1e-3)
    assert max(fusion.normalize([2.8, 2.6], "zscore")) == pytest.approx(0.5)


def test_zscore_lone_lexical_match_cannot_outweigh_the_best_semantic_match() -> None:
    """A list without spread (one hit, or ties) says who matched, not who is better: it moves nothing."""
    vector = [("near", 0.9), ("close", 0.8), ("exact", 0.5), ("far", 0.3)]
    hits = fusion.linear({"lexical": [("exact", 12.0)], "vector:text": vector}, None, "zscore")
    assert [h.doc_id for h in hits] == ["near", "close", "exact", "far"]
    assert hits[2].components["lexical"]["normalized"] == 0.0
    assert fusion.normalize([5.0, 5.0], "zscore") == [0.0, 0.0]


def test_ties_break_deterministically() -> None:
    hits = fusion.rrf({"x": [("b", 1.0)], "y": [("a", 1.0)]})
    assert [h.doc_id for h in hits] == ["a", "b"]


def test_passthrough_keeps_order_and_scores() -> None:
    hits = fusion.passthrough("lexical", LEX)
    assert [(h.doc_id, h.score) for h in hits] == LEX


# ---- `fuse`: the one dispatch the API, tuning and benchmarks share ---------------------------------


def test_fuse_passes_a_single_list_through_whatever_the_spec() -> None:
    for spec in (Fusion(), Fusion(method="rrf"), Fusion(normalization="minmax")):
        hits = fusion.fuse({"vector:text": VEC}, spec)
        assert [(h.doc_id, h.score) for h in hits] == VEC
        assert fusion.applied_method({"vector:text": VEC}, spec) == "none"


def test_fuse_default_is_zscore_linear() -> None:
    hits = fusion.fuse({"lexical": LEX, "vector:text": VEC}, Fusion())
    # lexical 10, 8, 2: mean 20/3, std sqrt(104/9) -> z a=0.9806, b=0.3922, c=-1.3728 (floor)
    # vector .9, .8, .1: mean .6, std sqrt(.38/3) -> z c=0.8429, a=0.5620, d=-1.4049 (floor)
    # three hits each: both shrunk by 2/3
    by_id = {h.doc_id: h.score / (2 / 3) for h in hits}
    assert by_id["a"] == pytest.approx(0.9806 + 0.5620, abs=1e-3)
    assert by_id["b"] == pytest.approx(0.3922 - 1.4049, abs=1e-3)  # missing from vector: its floor
    assert by_id["c"] == pytest.approx(-1.3728 + 0.8429, abs=1e-3)
    assert by_id["d"] == pytest.approx(-1.3728 - 1.4049, abs=1e-3)
    assert [h.doc_id for h in hits] == ["a", "c", "b", "d"]
    assert fusion.applied_method({"lexical": LEX, "vector:text": VEC}, Fusion()) == "linear"


def test_fuse_dispatches_to_rrf_and_minmax_with_the_spec_parameters() -> None:
    rankings = {"lexical": LEX, "vector": VEC}
    rrf = fusion.fuse(rankings, Fusion(method="rrf", k=1, weights={"lexical": 0.0}))
    assert {h.doc_id: h.score for h in rrf}["c"] == pytest.approx(0 / 4 + 1 / 2)
    assert fusion.applied_method(rankings, Fusion(method="rrf")) == "rrf"
    minmax = fusion.fuse(rankings, Fusion(weights={"lexical": 0.5, "vector": 0.5}, normalization="minmax"))
    assert {h.doc_id: h.score for h in minmax}["a"] == pytest.approx(0.5 * 1 + 0.5 * 0.875)


def test_fuse_of_nothing_is_empty() -> None:
    assert fusion.fuse({}, Fusion()) == []


def test_blend_scales_each_side_over_the_window_then_mixes() -> None:
    fused = [2.0, 1.0, 0.0]  # min-max: 1, 0.5, 0
    reranker = [-3.0, 5.0, 1.0]  # min-max: 0, 1, 0.5
    alone = fusion.blend(fused, reranker, 1.0)  # the reranker's order
    assert [i for i, _ in alone] == [1, 2, 0] and [s for _, s in alone] == pytest.approx([1.0, 0.5, 0.0])
    # 0.7 * fused + 0.3 * reranker: 0.7, 0.35 + 0.3 = 0.65, 0.15: the fused leader keeps its place
    mixed = fusion.blend(fused, reranker, 0.3)
    assert [i for i, _ in mixed] == [0, 1, 2] and [s for _, s in mixed] == pytest.approx([0.7, 0.65, 0.15])
    half = fusion.blend(fused, reranker, 0.5)
    assert [i for i, _ in half] == [1, 0, 2] and [s for _, s in half] == pytest.approx([0.75, 0.5, 0.25])
    assert fusion.blend([4.0], [9.0], 0.5) == [(0, 1.0)]  # one hit: nothing to scale against
    assert [i for i, _ in fusion.blend([3.0, 2.0], [1.0, 1.0], 1.0)] == [0, 1]  # ties keep the fused order
