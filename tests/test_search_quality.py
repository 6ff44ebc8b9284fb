"""Ranking behaviour on the demo articles (real model, cluster and HTTP): cases every reader agrees on."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest

from client.api import ApiClient, ApiClientError
from ingest.beir import iter_jsonl
from search import fusion

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def demo(api: ApiClient, worker) -> Iterator[str]:
    worker.ensure_running()
    name = f"t-demo-{uuid.uuid4().hex[:8]}"
    api.create_collection(name, encoders=["text"])
    articles = Path(str(resources.files("mmsearch") / "demo_data" / "articles.jsonl"))
    api.add_documents(name, list(iter_jsonl(articles)), refresh=True)
    api.wait_encoded(name, timeout=300)
    yield name
    api.delete_collection(name)


def test_two_weak_lexical_matches_do_not_outrank_the_clear_semantic_answer(api: ApiClient, demo: str) -> None:
    """Only 'warming' (pollinators) and 'suffer' match lexically; the coral-reef article is what a reader
    wants. Short lexical lists are shrunk, so their two hits cannot claim a full window's spread."""
    query = "how do oceans suffer from warming"
    lexical = [h["id"] for h in api.search(demo, query, mode="lexical")["hits"]]
    assert "bees" in lexical and "reef" not in lexical and len(lexical) <= 3
    result = api.search(demo, query, explain=True, cutoff=False)  # the ranking, not where it ends
    assert result["hits"][0]["id"] == "reef"
    bees = next(h for h in result["hits"] if h["id"] == "bees")
    assert bees["explanation"]["components"]["lexical"]["normalized"] <= 0.5


def test_highlights_analyse_a_capped_prefix_of_long_texts(api: ApiClient, collection: str) -> None:
    """Highlighting caps the analysed length (`max_analyzed_offset`), so a text longer than the index's
    limit cannot make a highlighted search fail: a term past the cap still matches, unhighlighted."""
    filler = "filler words without meaning " * 8_000  # ~232,000 characters
    docs = [{"id": "long", "title": "Long", "text": f"needle first. {filler} haystack last."}]
    assert not api.add_documents(collection, docs, refresh=True)["errors"]
    early = api.search(collection, "needle", mode="lexical", highlight=True)["hits"]
    assert "<mark>needle</mark>" in " ".join(early[0]["highlight"]["content"])
    assert "vectors" not in early[0]["source"]
    late = api.search(collection, "haystack", mode="lexical", highlight=True)["hits"]
    assert [h["id"] for h in late] == ["long"]
    assert "<mark>haystack</mark>" not in " ".join(late[0].get("highlight", {}).get("content", []))


@pytest.fixture(scope="module")
def reranker(api: ApiClient, demo: str) -> Iterator[str]:
    """A profile `rr` whose reranker is a MiniLM-L6 cross-encoder (body from the shipped bi-encoder)."""
    from bench.rerank import untrained_model

    model = untrained_model()
    api.request("PUT", f"/v1/collections/{demo}/profiles/rr", json={"rerank": {"model": model, "top_k": 5}})
    yield model
    api.request("DELETE", f"/v1/collections/{demo}/profiles/rr")


def test_rerank_reorders_the_top_k_and_explains_it(api: ApiClient, demo: str, reranker: str) -> None:
    query = "energy storage for the grid"
    fused = api.search(demo, query, size=10, profile="rr", rerank=False, cutoff=False)
    assert fused["rerank"] is None
    result = api.search(demo, query, size=10, profile="rr", rerank={"top_k": 4}, explain=True, cutoff=False)
    assert result["rerank"]["model"] == reranker and result["rerank"]["top_k"] == 4
    assert result["rerank"]["ms"] > 0
    top, rest = result["hits"][:4], result["hits"][4:]
    assert {h["id"] for h in top} == {h["id"] for h in fused["hits"][:4]}
    assert [h["id"] for h in rest] == [h["id"] for h in fused["hits"][4:]]  # beyond k: fused order
    scores = [h["explanation"]["rerank"]["score"] for h in top]
    assert scores == sorted(scores, reverse=True)
    assert [h["explanation"]["rerank"]["rank"] for h in top] == [1, 2, 3, 4]
    by_id = {h["id"]: i + 1 for i, h in enumerate(fused["hits"])}
    assert all(h["explanation"]["rerank"]["fused_rank"] == by_id[h["id"]] for h in top)
    assert "rerank" not in rest[0]["explanation"]
    # the profile's own depth applies when the request only names the profile
    assert api.search(demo, query, profile="rr")["rerank"]["top_k"] == 5


def test_rerank_blends_with_the_fused_score_at_the_profile_weight(
    api: ApiClient, demo: str, reranker: str
) -> None:
    query = "energy storage for the grid"
    path = f"/v1/collections/{demo}/profiles/blend"
    api.request("PUT", path, json={"rerank": {"model": reranker, "top_k": 5, "weight": 0.4}})
    try:
        result = api.search(demo, query, size=10, profile="blend", explain=True, cutoff=False)
        assert result["rerank"]["weight"] == 0.4 and result["rerank"]["top_k"] == 5
        stage = [h["explanation"]["rerank"] for h in result["hits"][:5]]
        stage.sort(key=lambda s: s["fused_rank"])
        ranked = fusion.blend([s["fused_score"] for s in stage], [s["score"] for s in stage], 0.4)
        by_position = dict(ranked)
        assert [s["final_score"] for s in stage] == pytest.approx([by_position[i] for i in range(5)])
        top = result["hits"][:5]
        assert [h["explanation"]["rerank"]["fused_rank"] for h in top] == [i + 1 for i, _ in ranked]
        assert [h["score"] for h in top] == [s for _, s in ranked]
        # what a request says overrides the profile's stage; what it leaves out (the depth) stays
        alone = api.search(demo, query, profile="blend", rerank={"weight": 1.0})["rerank"]
        assert alone["weight"] == 1.0 and alone["top_k"] == 5
    finally:
        api.request("DELETE", path)


def test_rerank_refuses_bad_requests(api: ApiClient, demo: str) -> None:
    for bad in ({"top_k": 0}, {"top_k": 201}, {"weight": 0}, {"weight": 1.5}, {"model": "x"}, True):
        with pytest.raises(ApiClientError) as err:
            api.search(demo, "coral", rerank=bad)
        assert err.value.status == 400
    with pytest.raises(ApiClientError) as err:
        api.request("PUT", f"/v1/collections/{demo}/profiles/bad", json={"rerank": {"model": "/etc"}})
    assert err.value.status == 400 and "is not allowed" in str(err.value)
