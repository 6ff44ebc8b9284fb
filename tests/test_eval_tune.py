"""`mmsearch eval` and `tune` end to end on a SciFact slice, and the pure parts of tuning."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from client.api import ApiClient
from evaluation.rerank import WEIGHTS, Window, weight_matrix
from evaluation.runs import METRICS, SET_METRICS
from evaluation.tuning import Grid, cross_validate, folds, fused_top, profiles
from mmsearch.cli import main
from search.schema import Fusion, Profile
from tests.scifact import write_slice

QUERIES, DOCS = 20, 200


# ---- pure: no services -------------------------------------------------------------------------


def test_folds_partition_the_queries() -> None:
    splits = folds(11, 3)
    assert sorted(np.concatenate(splits).tolist()) == list(range(11))
    assert sorted(len(s) for s in splits) == [3, 4, 4]
    with pytest.raises(ValueError):
        folds(3, 5)


def test_cross_validation_picks_on_train_and_scores_held_out() -> None:
    # candidate 0 wins on queries 0-1, candidate 1 on queries 2-3
    matrix = np.array([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.9, 0.9]])
    chosen, held_out = cross_validate(matrix, [np.array([0, 1]), np.array([2, 3])])
    assert chosen == [1, 0]  # fold 1 trains on queries 2-3 and picks candidate 1, and vice versa
    assert held_out == [0.0, 0.0]


def test_grid_candidates_start_with_the_defaults_and_weights_sum_to_one() -> None:
    grid = Grid(title_boosts=(2.0,), num_candidates=(200,), rrf_k=(20,), lexical_weights=(0.3,))
    candidates = profiles(grid, ["vector:text", "vector:clip"])
    assert candidates[0] == Profile()
    # boosts {1, 2} x candidates {100, 200} x (1 rrf + 3 linear)
    assert len(candidates) == 1 + 2 * 2 * 4
    for profile in candidates[1:]:
        assert sum(profile.fusion.weights.values()) == pytest.approx(1.0)
        assert profile.fusion.weights["vector:clip"] == pytest.approx(0.35)


def test_offline_fusion_is_the_api_dispatch() -> None:
    rankings = {"lexical": [("a", 9.0), ("b", 5.0)], "vector:text": [("b", 0.9), ("c", 0.8)]}
    rrf = Fusion(method="rrf")
    assert fused_top(rankings, rrf) == ["b", "a", "c"]  # b is in both lists
    assert fused_top({"vector:text": [("c", 0.8), ("b", 0.7)]}, Profile().fusion) == ["c", "b"]
    # the default (z-score linear): a and b tie at 0 and the better best rank, then the id, decides
    assert fused_top(rankings, Profile().fusion) == ["a", "b", "c"]


def test_the_weight_choice_judges_the_list_the_api_returns() -> None:
    # a window of 2 (fusion says a, the cross-encoder says b) and c after it, as a top_k=2 search lists them
    window = Window([("a", 1.0, 0.0), ("b", 0.5, 1.0)], tail=["c"])
    matrix = weight_matrix({"q": {"b": 1, "c": 1}}, {"q": window})
    ideal = 1 + 1 / np.log2(3)
    # weight 0: a, b, c; weight 1: b, a, c. The tail counts: c at rank 3 adds 1/log2(4) either way
    assert matrix[WEIGHTS.index(0.0), 0] == pytest.approx((1 / np.log2(3) + 0.5) / ideal)  # 0.6934
    assert matrix[WEIGHTS.index(1.0), 0] == pytest.approx((1 + 0.5) / ideal)  # 0.9197


# ---- integration: the real API, worker and Elasticsearch ---------------------------------------


@pytest.fixture(scope="module")
def beir_slice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_slice(tmp_path_factory.mktemp("scifact-slice"), QUERIES, DOCS)


@pytest.fixture(scope="module")
def slice_collection(api: ApiClient) -> Iterator[str]:
    name = f"t-eval-{uuid.uuid4().hex[:8]}"
    yield name
    if api.collection_exists(name):
        api.delete_collection(name)


def _invoke(*args: str) -> None:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output


@pytest.mark.integration
def test_eval_tune_rerank_and_the_saved_profiles(
    api: ApiClient, beir_slice: Path, slice_collection: str, tmp_path: Path
) -> None:
    qrels = str(beir_slice / "qrels-train.tsv")
    _invoke(
        "eval", "--dataset", str(beir_slice), "--collection", slice_collection,
        "--json", str(tmp_path / "eval.json"), "--plot", str(tmp_path / "eval.png"),
    )  # fmt: skip
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["corpus_reused"] is False and report["documents"]["encoded"] == DOCS
    assert report["queries"] == QUERIES
    assert set(report["modes"]) == {"lexical", "vector", "hybrid-rrf", "hybrid-linear"}
    for mode in report["modes"].values():
        assert set(mode["metrics"]) == set(METRICS) | set(SET_METRICS)  # ranked, and of the returned set
        assert all(0.0 <= value <= 1.0 for value in mode["metrics"].values())
        assert 0 < mode["returned"] <= 100
        assert mode["latency_ms"]["p50"] > 0
    assert report["modes"]["hybrid-rrf"]["metrics"]["recall@100"] > 0.5
    assert (tmp_path / "eval.png").stat().st_size > 0

    _invoke(
        "tune", "--dataset", str(beir_slice), "--qrels", qrels, "--collection", slice_collection,
        "--folds", "2", "--name", "tuned", "--title-boosts", "0.5", "--num-candidates", "100",
        "--rrf-k", "20,60", "--lexical-weights", "0.3,0.7", "--normalizations", "minmax",
        "--json", str(tmp_path / "tune.json"),
    )  # fmt: skip
    tuned = json.loads((tmp_path / "tune.json").read_text())
    assert tuned["verify"]["agree"] == tuned["verify"]["queries"] > 0
    assert {"tuned", "defaults", "lexical", "vector:text"} <= set(tuned["cv"])
    assert 0.0 <= tuned["cv"]["tuned"]["mean"] <= 1.0

    assert set(tuned["cutoff"]) == {"lexical", "vector", "hybrid"}  # where each mode's result set ends
    for kind, fitted in tuned["cutoff"].items():
        assert 0.0 <= fitted["cv"]["learned"]["mean"] <= 1.0 and fitted["queries"] > 0
        assert (kind in tuned["profile"]["cutoff"]) == (fitted["selected"] == "learned")
    stored = api.profiles(slice_collection)["tuned"]
    selected = tuned["selected"]  # the grid's winner only when it beats the defaults cross-validated
    beats = tuned["cv"]["tuned"]["mean"] > tuned["cv"]["defaults"]["mean"]
    assert selected == ("tuned" if beats else "defaults")
    assert Profile.model_validate(stored).scores["cv_mean"] == tuned["cv"][selected]["mean"]
    hits = api.search(slice_collection, "vitamin D and bone density", profile="tuned")["hits"]
    assert hits

    _invoke(
        "eval", "--dataset", str(beir_slice), "--collection", slice_collection, "--profile", "tuned",
        "--modes", "hybrid,lexical", "--json", str(tmp_path / "eval-tuned.json"),
    )  # fmt: skip
    again = json.loads((tmp_path / "eval-tuned.json").read_text())
    assert again["corpus_reused"] is True and again["profile"] == "tuned"
    assert set(again["modes"]) == {"hybrid", "lexical"}

    # One segment first: `rerank` compares the API's searches before and after training, and background
    # merges of the workers' many small segments in between could make an approximate kNN answer otherwise.
    _invoke("optimize", "--collection", slice_collection)
    # a reranker trained on half the queries, judged on the other half at each weight against fusion
    _invoke(
        "rerank", "--dataset", str(beir_slice), "--qrels", qrels, "--collection", slice_collection,
        "--holdout", "0.5", "--epochs", "1", "--negatives", "2", "--top-k", "5,10", "--budget-ms", "60000",
        "--json", str(tmp_path / "rerank.json"),
    )  # fmt: skip
    rerank = json.loads((tmp_path / "rerank.json").read_text())
    # each depth tried, with what it adds to a search; the kept one is the deepest that wins within budget
    assert [d["top_k"] for d in rerank["depths"]] == [5, 10] and rerank["budget_ms"] == 60000
    assert all(isinstance(d["added_p50_ms"], float) for d in rerank["depths"])
    fits = [d["top_k"] for d in rerank["depths"] if d["fits"]]
    assert rerank["adopted"] == bool(fits) and (not fits or rerank["top_k"] == fits[-1])
    card = rerank["card"]
    assert card["pairs"] == 3 * card["groups"] and card["steps"] >= 1  # a judged passage, 2 negatives
    assert rerank["queries"] == QUERIES // 2
    by_weight = {float(w): v for w, v in rerank["by_weight"].items()}
    assert set(by_weight) == set(WEIGHTS)
    assert by_weight[0.0] == pytest.approx(rerank["without"], abs=1e-4)  # offline fusion = the API's
    if rerank["weight"] > 0:  # the API's blend scores what the offline one chose it on
        assert rerank["with"] == pytest.approx(by_weight[rerank["weight"]], abs=1e-4)
    stored = api.profiles(slice_collection)
    assert not [name for name in stored if name.startswith("rerank-candidate")]  # each one deleted
    if rerank["adopted"]:
        assert rerank["with"] > rerank["without"]
        expected = {"model": rerank["model"], "top_k": rerank["top_k"], "weight": rerank["weight"]}
        assert stored["default"]["rerank"] == expected
    else:
        assert rerank["weight"] == 0 or rerank["with"] <= rerank["without"]
        assert "default" not in stored or stored["default"].get("rerank") is None
