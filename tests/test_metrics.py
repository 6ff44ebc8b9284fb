"""Evaluation metrics (through ranx) against small examples worked out by hand. No services."""

from __future__ import annotations

import math

import pytest

from evaluation.runs import METRICS, per_query, ranked_run, scores

# q1: relevant d1, d3; ranked d1 d2 d3 -> hits at ranks 1 and 3
# q2: relevant d2;     ranked d1 d2    -> hit at rank 2
# q3: relevant d9;     no results      -> every metric 0
QRELS = {"q1": {"d1": 1, "d3": 1}, "q2": {"d2": 1}, "q3": {"d9": 1}}
RUN = {"q1": ranked_run(["d1", "d2", "d3"]), "q2": ranked_run(["d1", "d2"]), "q3": {}}

LOG2_3 = math.log2(3)
# nDCG@10, linear gains: q1 DCG = 1/log2(2) + 1/log2(4) = 1.5, IDCG = 1 + 1/log2(3) -> 0.919721
#                        q2 DCG = 1/log2(3), IDCG = 1 -> 0.630930
NDCG_Q1 = 1.5 / (1 + 1 / LOG2_3)
NDCG_Q2 = 1 / LOG2_3
# F1@10 per query = 2PR/(P+R): q1 P=0.2 R=1 -> 1/3; q2 P=0.1 R=1 -> 2/11
EXPECTED = {
    "ndcg@10": (NDCG_Q1 + NDCG_Q2) / 3,  # 0.516884
    "mrr@10": (1 + 1 / 2) / 3,  # first hit at 1 and 2 -> 0.5
    "map@100": ((1 / 1 + 2 / 3) / 2 + 1 / 2) / 3,  # AP q1 = (1 + 2/3)/2, q2 = 1/2 -> 0.444444
    "recall@10": (1 + 1) / 3,
    "recall@100": (1 + 1) / 3,
    "precision@10": (2 / 10 + 1 / 10) / 3,  # 0.1
    "f1@10": (1 / 3 + 2 / 11) / 3,  # 0.171717
}


def test_every_metric_matches_the_hand_computed_value() -> None:
    assert set(EXPECTED) == set(METRICS)
    got = scores(QRELS, RUN)
    for metric, value in EXPECTED.items():
        assert got[metric] == pytest.approx(value, abs=1e-9), metric


def test_per_query_values_and_unjudged_queries_ignored() -> None:
    run = {**RUN, "unjudged": ranked_run(["d1"])}
    got = per_query(QRELS, run, "ndcg@10")
    assert set(got) == set(QRELS)
    assert got["q1"] == pytest.approx(NDCG_Q1)
    assert got["q2"] == pytest.approx(NDCG_Q2)
    assert got["q3"] == 0.0


def test_graded_relevance_uses_linear_gains() -> None:
    # relevant a (2) and b (1), ranked b a: DCG = 1/1 + 2/log2(3); IDCG = 2/1 + 1/log2(3) -> 0.859719
    got = scores({"q": {"a": 2, "b": 1}}, {"q": ranked_run(["b", "a"])}, ["ndcg@10"])
    assert got["ndcg@10"] == pytest.approx((1 + 2 / LOG2_3) / (2 + 1 / LOG2_3))


def test_ranked_run_keeps_the_api_order() -> None:
    # ranx orders by score: strictly decreasing scores keep the API's order even where fused scores tie
    assert ranked_run(["b", "a", "c"]) == {"b": 3.0, "a": 2.0, "c": 1.0}
    got = scores({"q": {"a": 1}}, {"q": ranked_run(["b", "a", "c"])}, ["mrr@10"])
    assert got["mrr@10"] == pytest.approx(0.5)


def test_cutoffs() -> None:
    # the only relevant document at rank 11: invisible at 10, found at 100 (AP = 1/11)
    run = {"q": ranked_run([f"x{i}" for i in range(10)] + ["rel"])}
    got = scores({"q": {"rel": 1}}, run)
    assert got["ndcg@10"] == got["mrr@10"] == got["recall@10"] == got["f1@10"] == 0.0
    assert got["recall@100"] == 1.0
    assert got["map@100"] == pytest.approx(1 / 11)
