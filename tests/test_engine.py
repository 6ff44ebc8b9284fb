"""The engine dialect: the same search as Elasticsearch and as OpenSearch request fragments (no services)."""

from __future__ import annotations

import logging
from datetime import datetime

import numpy as np
import pytest
from opensearchpy.exceptions import SerializationError

from core.config import EngineSettings, Settings
from core.engine import ELASTICSEARCH, OPENSEARCH, signed_bytes
from core.es import POOL_SIZE, engine_of, make_client
from core.logs import configure_logging
from core.opensearch import FastJSONSerializer, OpenSearchClient, _split

FILTERS = [{"term": {"modality": "text"}}]


def test_elasticsearch_knn_is_the_top_level_section_with_filter_and_rescore() -> None:
    body = ELASTICSEARCH.knn_search("vectors.text", [0.6, 0.8], 10, 50, filters=FILTERS, quantised=True)
    assert body == {
        "knn": {
            "field": "vectors.text",
            "query_vector": [0.6, 0.8],
            "k": 10,
            "num_candidates": 50,
            "rescore_vector": {"oversample": 3.0},
            "filter": FILTERS,
        }
    }


def test_opensearch_knn_is_a_query_with_ef_search_filter_and_rescore() -> None:
    body = OPENSEARCH.knn_search("vectors.text", [0.6, 0.8], 10, 5, filters=FILTERS, quantised=True)
    assert body == {
        "query": {
            "knn": {
                "vectors.text": {
                    "vector": [0.6, 0.8],
                    "k": 10,
                    "method_parameters": {"ef_search": 10},  # never fewer candidates than k
                    "rescore": {"oversample_factor": 3.0},
                    "filter": {"bool": {"filter": FILTERS}},
                }
            }
        }
    }
    exact = OPENSEARCH.knn_search(
        "vectors.phash", "ff80", 5, 20, filters=[], quantised=False, element_type="bit"
    )
    assert exact["query"]["knn"]["vectors.phash"] == {
        "vector": [-1, -128],
        "k": 5,
        "method_parameters": {"ef_search": 20},
    }


def test_nested_knn_scores_a_parent_by_its_best_passage_on_both_engines() -> None:
    inner = {"size": 1, "_source": ["passages.page"]}
    es = ELASTICSEARCH.nested_knn_search(
        "passages", "vector", [1.0], 10, num_candidates=100, filters=FILTERS, inner_hits=inner, quantised=True
    )
    assert es["knn"]["field"] == "passages.vector" and es["knn"]["inner_hits"] == inner
    assert es["knn"]["filter"] == FILTERS
    opensearch = OPENSEARCH.nested_knn_search(
        "passages", "vector", [1.0], 10, num_candidates=100, filters=FILTERS, inner_hits=inner, quantised=True
    )
    nested = opensearch["query"]["nested"]
    assert nested["path"] == "passages" and nested["score_mode"] == "max" and nested["inner_hits"] == inner
    assert nested["query"]["knn"]["passages.vector"]["filter"] == {"bool": {"filter": FILTERS}}


def test_vector_mappings_per_engine() -> None:
    assert ELASTICSEARCH.vector_mapping(64, "l2_norm", "bit")["element_type"] == "bit"
    assert OPENSEARCH.vector_mapping(64, "l2_norm", "bit") == {
        "type": "knn_vector",
        "dimension": 64,
        "data_type": "binary",
        "method": {"name": "hnsw", "engine": "lucene", "space_type": "hamming"},
    }
    assert OPENSEARCH.vector_mapping(8, "dot_product", "float")["method"]["space_type"] == "innerproduct"
    with pytest.raises(ValueError, match="no space type"):
        OPENSEARCH.vector_mapping(8, "hyperbolic", "float")


def test_bit_vectors_travel_as_signed_bytes() -> None:
    assert signed_bytes("00ff7f80") == [0, -1, 127, -128]
    assert OPENSEARCH.vector_value("ff", "bit") == [-1]
    assert ELASTICSEARCH.vector_value("ff", "bit") == "ff"  # Elasticsearch takes hex as it is


def test_client_and_engine_follow_the_setting() -> None:
    settings = Settings(engine=EngineSettings(kind="opensearch", elasticsearch_url="http://127.0.0.1:1"))
    client = make_client(settings)
    assert isinstance(client, OpenSearchClient) and engine_of(client) is OPENSEARCH
    assert engine_of(make_client(Settings(engine=EngineSettings(kind="elasticsearch")))) is ELASTICSEARCH
    # An embedded stack is Elasticsearch unless told otherwise; nothing is asked.
    assert (
        engine_of(make_client(Settings(engine=EngineSettings(kind="auto", elasticsearch_url=""))))
        is ELASTICSEARCH
    )


def test_opensearch_client_pools_connections_and_speaks_json_like_the_elasticsearch_one() -> None:
    """Ten kept connections per node (opensearch-py's default keeps one: concurrent requests beyond it
    reconnected) and orjson; dates, numpy values and bad JSON behave as with opensearch-py's own."""
    settings = Settings(engine=EngineSettings(kind="opensearch", elasticsearch_url="http://127.0.0.1:1"))
    transport = make_client(settings).raw.transport
    assert transport.get_connection().pool.pool.maxsize == POOL_SIZE
    json = transport.serializer
    assert isinstance(json, FastJSONSerializer)
    body = {"at": datetime(2026, 1, 2), "v": np.array([0.5, 1.0], dtype=np.float32), "n": np.int64(3)}
    assert json.loads(json.dumps(body)) == {"at": "2026-01-02T00:00:00", "v": [0.5, 1.0], "n": 3}
    assert json.dumps("already text") == "already text"
    with pytest.raises(SerializationError):
        json.loads("{not json")


def test_elasticsearch_style_keywords_split_into_params_and_body() -> None:
    params, body = _split({"source_includes": ["vectors"], "refresh": True, "query": {"match_all": {}}})
    assert params == {"_source_includes": "vectors", "refresh": "true"}
    assert body == {"query": {"match_all": {}}}
    assert _split({"meta": {"a": 1}}) == ({}, {"_meta": {"a": 1}})
    assert _split({"searches": [{}, {}]}) == ({}, [{}, {}])
    # `search(index=..., body=...)`, which the elasticsearch client also takes, is the whole body
    assert _split({"body": {"size": 3}, "source": False}) == ({"_source": "false"}, {"size": 3})


def test_source_with_vectors_asks_elasticsearch_for_them_and_leaves_opensearch_as_indexed() -> None:
    assert ELASTICSEARCH.source_with_vectors() == {"exclude_vectors": False}
    assert ELASTICSEARCH.source_with_vectors(["vectors.text"]) == {
        "exclude_vectors": False,
        "includes": ["vectors.text"],
    }
    assert OPENSEARCH.source_with_vectors() is True  # `exclude_vectors` is an unknown key there (400)
    assert OPENSEARCH.source_with_vectors(["vectors.text"]) == ["vectors.text"]


def test_source_filter_names_kept_fields_on_opensearch_and_dropped_ones_on_elasticsearch() -> None:
    """OpenSearch rebuilds every vector into a source before `excludes` drops it again (derived source):
    naming the kept fields skips that work; Elasticsearch keeps the `excludes` form."""
    keep, drop = ["title", "content"], ["vectors", "passages"]
    assert ELASTICSEARCH.source_filter(keep=keep, drop=drop) == {"excludes": drop}
    assert OPENSEARCH.source_filter(keep=keep, drop=drop) == {"includes": keep}


def test_neither_engine_client_logs_a_line_per_request() -> None:
    """opensearch-py logs every request at INFO like the elasticsearch client: both are kept to warnings,
    so an OpenSearch search does not pay for two log records the Elasticsearch one skips."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        configure_logging("text")
        for name in ("elastic_transport.transport", "opensearch"):
            assert not logging.getLogger(name).isEnabledFor(logging.INFO), name
    finally:
        root.handlers, root.level = handlers, level
