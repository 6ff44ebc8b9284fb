"""The query plan: which sub-queries a request yields and what each body holds (no services)."""

from __future__ import annotations

from typing import Any

import pytest
from elasticsearch import Elasticsearch

from core.access import ADMIN, Principal, read_filter
from core.config import LimitSettings, Settings
from core.engine import ELASTICSEARCH, OPENSEARCH, Engine
from core.errors import BackendError, MmsearchError, NotFound, Unavailable
from mappings.catalog import Collection
from mappings.render import field_names
from search import plan
from search.schema import Profile, SearchRequest
from search.service import (
    SearchBackendError,
    SearchError,
    SearchIncomplete,
    SearchNotFound,
    SearchService,
)

ENCODERS = {
    "text": {"query_kinds": ["text"], "element_type": "float"},
    "phash": {"query_kinds": ["image"], "element_type": "bit"},
}
VECTORS: dict[str, plan.QueryVector] = {"text": [0.6, 0.8], "phash": "ff00"}


def build(window: int = 100, profile: Profile | None = None, **request: Any) -> dict[str, dict[str, Any]]:
    return plan.subqueries(
        SearchRequest(**request), profile or Profile(), VECTORS, ENCODERS, window=window, engine=ELASTICSEARCH
    )


def test_each_mode_yields_its_subqueries_lexical_first() -> None:
    assert list(build(query="running dogs", mode="lexical")) == ["lexical"]
    assert list(build(query="running dogs", mode="vector")) == ["vector:text", "vector:phash"]
    assert list(build(query="running dogs")) == ["lexical", "vector:text", "vector:phash"]


def test_lexical_body_is_bm25_over_stemmed_fields_with_ratio_boosts() -> None:
    profile = Profile(boosts={"title": 4.0, "content": 2.0})
    body = build(query="Running dogs", mode="lexical", profile=profile, window=50)["lexical"]
    (query,) = body["query"]["bool"]["must"]
    # stopword-free, stemmed text; the smaller boost becomes 1 and the ratio 2:1 stays
    assert query == {
        "combined_fields": {
            "query": "run dog",
            "fields": ["search_stemmed.title^2", "search_stemmed.content^1"],
        }
    }
    assert body["size"] == 50 and body["track_total_hits"] is True
    assert body["query"]["bool"]["filter"] == []
    assert "highlight" not in body


def test_knn_bodies_take_window_candidates_and_rescore_only_float_fields() -> None:
    bodies = build(query="dogs", mode="vector", window=150, profile=Profile(num_candidates=100))
    text, phash = bodies["vector:text"]["knn"], bodies["vector:phash"]["knn"]
    assert text["field"] == "vectors.text" and text["query_vector"] == [0.6, 0.8]
    assert text["k"] == 150 and text["num_candidates"] == 150  # never fewer candidates than k
    assert text["rescore_vector"] == {"oversample": 3.0}  # float: int8-quantised, so rescored
    assert phash["query_vector"] == "ff00" and "rescore_vector" not in phash  # bit: exact hamming
    assert "filter" not in text
    assert bodies["vector:text"]["size"] == 150


def test_filters_go_inside_knn_and_into_lexical_and_like_excludes_its_document() -> None:
    bodies = build(
        query="dogs",
        filters={"lang": "en", "metadata.year": {"gte": 2020}},
        modalities=["text", "image"],
        like="doc-7",
    )
    expected = [
        {"term": {"lang": "en"}},
        {"range": {"metadata.year": {"gte": 2020}}},
        {"terms": {"modality": ["text", "image"]}},
        {"bool": {"must_not": [{"ids": {"values": ["doc-7"]}}]}},
    ]
    assert bodies["lexical"]["query"]["bool"]["filter"] == expected
    for name in ("vector:text", "vector:phash"):
        assert bodies[name]["knn"]["filter"] == expected  # inside the HNSW search, not a post-filter
        assert "post_filter" not in bodies[name]


def test_a_stopword_only_query_gives_no_lexical_subquery() -> None:
    assert build(query="the of and", mode="lexical") == {}
    assert list(build(query="the of and")) == ["vector:text", "vector:phash"]
    assert build(mode="lexical") == {}  # no text at all


def test_zero_boosts_give_no_lexical_subquery() -> None:
    assert "lexical" not in build(query="dogs", profile=Profile(boosts={"title": 0.0, "content": 0.0}))


def test_encoders_restricts_the_vector_subqueries() -> None:
    assert list(build(query="dogs", encoders=["phash"])) == ["lexical", "vector:phash"]
    assert list(build(query="dogs", mode="vector", encoders=[])) == []
    assert list(build(query="dogs", mode="lexical", encoders=["text"])) == ["lexical"]


def test_subqueries_fetch_ids_and_scores_only() -> None:
    """Sources and highlights come once, for the page (`page_fetch`), not per sub-query and window slot."""
    for body in build(query="dogs", highlight=True).values():
        assert body["_source"] is False and "highlight" not in body


def test_page_fetch_highlights_only_when_asked_and_there_is_text() -> None:
    body = plan.page_fetch(SearchRequest(query="dogs", highlight=True), ["a", "b"], ELASTICSEARCH)
    assert body["query"]["bool"]["filter"] == [{"ids": {"values": ["a", "b"]}}] and body["size"] == 2
    assert body["highlight"]["highlight_query"]["multi_match"]["query"] == "dogs"
    assert body["highlight"]["max_analyzed_offset"] > 0  # a huge text cannot break the highlighter
    (segments,) = body["query"]["bool"]["should"]  # the transcript phrases that match, found not scored
    assert segments["nested"]["path"] == "segments" and segments["nested"]["boost"] == 0
    assert "vectors" in body["_source"]["excludes"]
    for req in (SearchRequest(highlight=True), SearchRequest(query="dogs")):
        body = plan.page_fetch(req, ["a"], ELASTICSEARCH)
        assert "highlight" not in body and body["query"]["bool"]["should"] == []
    # OpenSearch names the same cap differently
    body = plan.page_fetch(SearchRequest(query="dogs", highlight=True), ["a"], OPENSEARCH)
    assert body["highlight"]["max_analyzer_offset"] > 0 and "max_analyzed_offset" not in body["highlight"]


def test_opensearch_fetches_every_field_but_the_bulky_ones_by_name() -> None:
    """The kept fields are the template's others, so a field added to the template is shown on both
    engines (OpenSearch names what it keeps: it would rebuild dropped vectors first)."""
    kept = plan.page_fetch(SearchRequest(query="dogs"), ["a"], OPENSEARCH)["_source"]["includes"]
    dropped = plan.page_fetch(SearchRequest(query="dogs"), ["a"], ELASTICSEARCH)["_source"]["excludes"]
    assert set(kept) | set(dropped) == set(field_names()) and not set(kept) & set(dropped)
    assert {"title", "content", "metadata", "source"} <= set(kept)
    inner = plan.passage_knn_body(
        OPENSEARCH, "text", [1.0], [], window=10, num_candidates=50, highlight_text=None, inner_hits=True
    )["query"]["nested"]["inner_hits"]["_source"]
    assert "passages.text" in inner["includes"] and "passages.page" in inner["includes"]
    assert not any(name.startswith("passages.vectors") for name in inner["includes"])


def test_vectors_of_encoders_the_collection_no_longer_has_are_rescored_as_float() -> None:
    bodies = plan.subqueries(
        SearchRequest(mode="vector"), Profile(), {"old": [1.0]}, ENCODERS, window=10, engine=ELASTICSEARCH
    )
    assert bodies["vector:old"]["knn"]["rescore_vector"] == {"oversample": 3.0}


def test_rankings_keep_order_and_read_a_missing_score_as_zero() -> None:
    responses = {
        "lexical": {"hits": {"hits": [{"_id": "a", "_score": 3}, {"_id": "b", "_score": None}]}},
        "vector:text": {"hits": {"hits": []}},
    }
    assert plan.rankings(responses) == {"lexical": [("a", 3.0), ("b", 0.0)], "vector:text": []}


def test_search_errors_are_mmsearch_errors_with_their_status() -> None:
    assert issubclass(SearchError, MmsearchError) and SearchError("x").status == 400
    assert issubclass(SearchNotFound, NotFound) and issubclass(SearchNotFound, SearchError)
    assert SearchNotFound("x").status == 404
    assert issubclass(SearchBackendError, BackendError) and SearchBackendError("x").status == 502
    assert issubclass(SearchIncomplete, Unavailable) and SearchIncomplete("x").status == 503


def shards(total: int, failed: int, **extra: Any) -> dict[str, Any]:
    return {
        "_shards": {"total": total, "successful": total - failed, "skipped": 0, "failed": failed},
        **extra,
    }


def test_responses_missing_shards_or_time_are_named_with_their_counts() -> None:
    failure = {"shard": 0, "index": "x", "reason": {"type": "no_shard_available_action_exception"}}
    missing = shards(3, 1)
    missing["_shards"]["failures"] = [failure, failure]
    responses = {
        "lexical": shards(3, 0),
        "vector:text": missing,
        "page": shards(3, 0, timed_out=True),
    }
    assert plan.incomplete(responses) == [
        {
            "subquery": "vector:text",
            "timed_out": False,
            "total": 3,
            "successful": 2,
            "skipped": 0,
            "failed": 1,
            "reasons": ["no_shard_available_action_exception"],
        },
        {
            "subquery": "page",
            "timed_out": True,
            "total": 3,
            "successful": 3,
            "skipped": 0,
            "failed": 0,
            "reasons": [],
        },
    ]
    assert plan.incomplete({"lexical": shards(5, 0, timed_out=False)}) == []
    # OpenSearch leaves a missing shard out of `successful` without counting it `failed`
    left_out = {"_shards": {"total": 2, "successful": 1, "skipped": 0, "failed": 0}}
    assert [d["subquery"] for d in plan.incomplete({"lexical": left_out})] == ["lexical"]
    skipped = {"_shards": {"total": 2, "successful": 2, "skipped": 1, "failed": 0}}  # skipped: no match there
    assert plan.incomplete({"lexical": skipped}) == []


def service(max_window: int = 1000) -> SearchService:
    """The steps before `_msearch` send nothing: the client points nowhere and is never called."""
    return SearchService(
        Elasticsearch("http://127.0.0.1:9"), Settings(limits=LimitSettings(max_window=max_window))
    )


COLLECTION = Collection(
    "c", "mmsearch-c", "mmsearch-c-1", ENCODERS, profiles={"default": {"fusion": {"method": "rrf", "k": 10}}}
)


def test_the_stored_default_profile_then_the_request_decide_the_plan_parameters() -> None:
    req = SearchRequest(query="dogs", boosts={"title": 3.0}, rank_window=50)
    profile = service().profile(COLLECTION, req)
    assert profile.fusion.method == "rrf" and profile.fusion.k == 10
    assert profile.boosts == {"title": 3.0, "content": 1.0}  # merged field by field
    assert service().window(profile, req) == 50
    assert service().window(profile, SearchRequest(**{"from": 45, "size": 10})) == 55  # the page's end
    deep = SearchRequest(**{"from": 95, "size": 10})
    assert service().window(Profile(), deep) == 105
    with pytest.raises(SearchError, match="may not exceed 100"):
        service(max_window=100).window(profile, deep)


def test_query_vectors_check_encoders_only_for_vector_modes() -> None:
    lexical = SearchRequest(query="dogs", mode="lexical", encoders=["nope"])
    assert service().query_vectors(COLLECTION, lexical, principal=ADMIN) == {}  # nothing encoded
    with pytest.raises(SearchError, match="unknown encoders for this collection: nope"):
        service().query_vectors(COLLECTION, SearchRequest(query="dogs", encoders=["nope"]), principal=ADMIN)
    # an encoder restriction that leaves out every text tower encodes nothing
    only_phash = SearchRequest(query="dogs", encoders=["phash"])
    assert service().query_vectors(COLLECTION, only_phash, principal=ADMIN) == {}


def test_passage_encoders_add_a_nested_knn_ranking_documents_by_their_best_passage() -> None:
    req = SearchRequest(query="dogs", mode="vector", highlight=True, filters={"modality": "document"})
    bodies = plan.subqueries(
        req, Profile(), VECTORS, ENCODERS, window=20, engine=ELASTICSEARCH, passages=["text"]
    )
    assert list(bodies) == ["vector:text", "passages:text", "vector:phash"]
    knn = bodies["passages:text"]["knn"]
    assert knn["field"] == "passages.vectors.text" and knn["k"] == 20
    assert knn["filter"] == [{"term": {"modality": "document"}}]
    assert "inner_hits" not in knn  # the page's passages only, asked by `page_passages`
    assert bodies["passages:text"]["_source"] is False  # ids and scores only
    assert "passages:text" not in build(query="dogs", mode="vector")  # a collection without passages


def page_passage_bodies(engine: Engine, access: dict[str, Any] | None = None) -> dict[str, Any]:
    """The page passage requests after a search whose passage kNN found `long` and `other` (not `short`)."""
    req = SearchRequest(query="dogs", mode="vector", highlight=True, filters={"modality": "document"})
    responses = {
        "vector:text": {"hits": {"hits": [{"_id": "short", "_score": 0.9}]}},
        "passages:text": {
            "hits": {"hits": [{"_id": "long", "_score": 0.8}, {"_id": "other", "_score": 0.7}]}
        },
    }
    return plan.page_passages(req, VECTORS, responses, ["short", "long"], engine=engine, access=access)


def test_the_best_passages_are_asked_for_the_pages_documents_the_passage_knn_found() -> None:
    knn = page_passage_bodies(ELASTICSEARCH)["passages:text"]["knn"]
    assert knn["field"] == "passages.vectors.text" and knn["k"] == 1  # `long` only: `other` is off the page
    assert knn["filter"] == [{"term": {"modality": "document"}}, {"ids": {"values": ["long"]}}]
    assert knn["inner_hits"]["size"] == plan.PASSAGE_HITS
    assert knn["inner_hits"]["_source"] == {"excludes": ["passages.vectors"]}
    assert knn["inner_hits"]["highlight"]["highlight_query"] == {"match": {"passages.text": "dogs"}}
    access = read_filter(Principal(name="k", user="alice", groups=frozenset()))
    assert access in page_passage_bodies(ELASTICSEARCH, access)["passages:text"]["knn"]["filter"]
    nested = page_passage_bodies(OPENSEARCH)["passages:text"]["query"]["nested"]
    assert nested["inner_hits"]["name"] == "passages" and nested["inner_hits"]["size"] == plan.PASSAGE_HITS
    clause = nested["query"]["knn"]["passages.vectors.text"]
    assert {"ids": {"values": ["long"]}} in clause["filter"]["bool"]["filter"]
    lexical = SearchRequest(query="dogs", mode="hybrid")
    assert (
        plan.page_passages(lexical, VECTORS, {"lexical": {"hits": {"hits": []}}}, ["long"], engine=OPENSEARCH)
        == {}
    )


def test_on_opensearch_the_passage_knn_is_a_nested_query_scored_by_the_best_passage() -> None:
    req = SearchRequest(query="dogs", mode="vector", highlight=True, filters={"modality": "document"})
    bodies = plan.subqueries(
        req, Profile(), VECTORS, ENCODERS, window=20, engine=OPENSEARCH, passages=["text"]
    )
    body = bodies["passages:text"]
    nested = body["query"]["nested"]
    assert nested["path"] == "passages" and nested["score_mode"] == "max"
    clause = nested["query"]["knn"]["passages.vectors.text"]
    assert clause["k"] == 20 and clause["vector"] == VECTORS["text"]
    assert clause["filter"] == {"bool": {"filter": [{"term": {"modality": "document"}}]}}
    assert "inner_hits" not in nested
    assert body["size"] == 20 and "knn" not in body


def test_passage_ranking_merges_into_its_encoders_ranking_at_each_documents_best_score() -> None:
    def hits(*pairs: tuple[str, float]) -> dict[str, Any]:
        return {"hits": {"hits": [{"_id": i, "_score": s} for i, s in pairs]}}

    responses = {
        "vector:text": hits(("short", 0.9), ("long", 0.6)),
        "passages:text": hits(("long", 0.95), ("other", 0.5)),
    }
    # each document at its best score, cut to the window (2 here): fusion normalises over a window-long list
    # online exactly as the tuner does offline from a single-sub-query page
    assert plan.rankings(responses) == {"vector:text": [("long", 0.95), ("short", 0.9)]}
    responses["passages:text"]["hits"]["hits"][0]["inner_hits"] = {
        "passages": {
            "hits": {
                "hits": [
                    {
                        "_source": {"text": "p12", "page": 12},
                        "_score": 0.95,
                        "highlight": {"passages.text": ["x"]},
                    },
                    {"_source": {"text": "p3", "page": 3}, "_score": 0.7},
                ]
            }
        }
    }
    found = plan.passage_hits(responses)
    assert found == {
        "long": [
            {"text": "p12", "page": 12, "score": 0.95, "highlight": ["x"]},
            {"text": "p3", "page": 3, "score": 0.7, "highlight": []},
        ]
    }


def test_the_read_filter_is_inside_every_subquery_and_the_page_fetch_on_both_engines() -> None:
    """A principal's filter runs inside BM25, each kNN (the HNSW search's own filter, not a post-filter),
    the nested passage kNN and the page fetch; an admin's plan has none."""
    alice = Principal(name="k", user="alice", groups=frozenset({"hr"}))
    access = read_filter(alice)
    assert access == {"terms": {"readers": ["*", "user:alice", "group:hr"]}}
    req = SearchRequest(query="dogs", highlight=True, filters={"readers": "group:board"})
    for engine in (ELASTICSEARCH, OPENSEARCH):
        bodies = plan.subqueries(
            req, Profile(), VECTORS, ENCODERS, window=20, engine=engine, passages=["text"], access=access
        )
        assert list(bodies) == ["lexical", "vector:text", "passages:text", "vector:phash"]
        assert access in bodies["lexical"]["query"]["bool"]["filter"]
        for name in ("vector:text", "passages:text", "vector:phash"):
            body = bodies[name]
            if engine is ELASTICSEARCH:
                filters = body["knn"]["filter"]
            else:
                query = body["query"].get("nested", {}).get("query", body["query"])
                (clause,) = query["knn"].values()
                filters = clause["filter"]["bool"]["filter"]
            # the request's own filter on `readers` narrows; it can never replace the principal's
            assert access in filters and {"term": {"readers": "group:board"}} in filters, (engine, name)
        fetch = plan.page_fetch(req, ["a", "b"], engine, access)
        assert access in fetch["query"]["bool"]["filter"]
        admin = plan.subqueries(req, Profile(), VECTORS, ENCODERS, window=20, engine=engine)
        assert all("terms" not in str(body) or "user:" not in str(body) for body in admin.values())


def test_facets_count_the_fused_ids_under_the_request_filters() -> None:
    req = SearchRequest(
        query="x", facets=["modality", "date", "metadata.author"], filters={"lang": "en"}, modalities=["text"]
    )
    names = plan.check_facets(req, ["metadata.author"], ELASTICSEARCH)
    body = plan.facet_request(req, ["a", "b"], names)
    assert body is not None and body["size"] == 0
    assert body["query"]["bool"]["filter"] == [{"ids": {"values": ["a", "b"]}}, *plan.request_filters(req)]
    assert body["aggs"]["modality"] == {"terms": {"field": "modality", "size": 20}}
    assert body["aggs"]["metadata.author"]["terms"]["field"] == "metadata.author"
    assert body["aggs"]["date"]["date_range"]["ranges"][1] == {"key": "past-week", "from": "now-7d"}
    assert plan.facet_request(req, [], names) is None  # nothing matched, nothing to count


def test_facet_counts_name_their_filter_field_and_drop_empty_buckets() -> None:
    resp = {
        "aggregations": {
            "mime": {"buckets": [{"key": "application/pdf", "doc_count": 2}, {"key": "x", "doc_count": 0}]},
            "date": {
                "buckets": [
                    {"key": "older", "doc_count": 0},
                    {"key": "past-year", "doc_count": 3},
                    {"key": "past-day", "doc_count": 3},
                ]
            },
        }
    }
    counts = plan.facet_counts(["mime", "date"], resp)
    assert counts["mime"] == {"field": "source.mime", "buckets": [{"value": "application/pdf", "count": 2}]}
    assert counts["date"] == {
        "field": "@timestamp",
        "buckets": [
            {"value": "past-day", "count": 3, "range": {"gte": "now-1d"}},
            {"value": "past-year", "count": 3, "range": {"gte": "now-1y"}},
        ],
    }
    assert plan.facet_counts(["modality"], None) == {"modality": {"field": "modality", "buckets": []}}


def test_facets_refuse_unknown_internal_and_unlisted_fields() -> None:
    assert SearchRequest(facets=True).facet_names() == ["modality", "mime", "date"]
    assert SearchRequest().facet_names() == []
    everything = plan.check_facets(SearchRequest(facets=True), ["metadata.author"], ELASTICSEARCH)
    assert everything == ["modality", "mime", "date", "metadata.author"]
    # OpenSearch's flat_object cannot count one key: `true` leaves metadata out, naming one is refused.
    assert plan.check_facets(SearchRequest(facets=True), ["metadata.author"], OPENSEARCH) == everything[:3]
    with pytest.raises(plan.FacetError, match="opensearch"):
        plan.check_facets(SearchRequest(facets=["metadata.author"]), ["metadata.author"], OPENSEARCH)
    for bad in (["readers"], ["ingest.status"], ["vectors.text"], ["modality", "modality"]):
        with pytest.raises(ValueError):
            SearchRequest(facets=bad)
    with pytest.raises(plan.FacetError, match="metadata.author"):
        plan.check_facets(SearchRequest(facets=["metadata.secret"]), ["metadata.author"], ELASTICSEARCH)
    with pytest.raises(ValueError):
        Settings(api={"facet_fields": ["readers"]})
