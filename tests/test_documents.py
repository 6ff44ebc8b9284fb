"""Payload parsing, product-side analysis and mapping rendering (no services)."""

from __future__ import annotations

import pytest

from core.config import Settings
from core.engine import ELASTICSEARCH, OPENSEARCH
from ingest.documents import PayloadError, from_json, idempotent_id, parse_documents
from mappings import index_body
from mappings.analysis import stem_text


def parse(body: bytes, content_type: str | None = "application/json"):  # noqa: ANN201
    return [doc for _, doc in parse_documents(body, content_type, max_docs=10, max_chars=1000).docs]


def test_one_object_array_and_ndjson() -> None:
    assert [d.text for d in parse(b'{"text": "a"}')] == ["a"]
    assert [d.id for d in parse(b'[{"id": "1", "text": "a"}, {"id": "2", "text": "b"}]')] == ["1", "2"]
    assert len(parse(b'{"text": "a"}\n\n{"text": "b"}\n', "application/x-ndjson")) == 2


def test_invalid_documents_are_reported_by_position_beside_valid_ones() -> None:
    body = b'{"text": "a"}\n{"text": ""}\n{oops\n{"title": "only a title"}\n[1]\n'
    parsed = parse_documents(body, "application/x-ndjson", max_docs=10, max_chars=1000)
    assert [(pos, doc.title) for pos, doc in parsed.docs] == [(0, None), (3, "only a title")]
    assert [(e["position"], e["error"].split(":")[0]) for e in parsed.errors] == [
        (1, "body"),
        (2, "malformed JSON on NDJSON line 3"),
        (4, "expected a JSON object, got list"),
    ]


def test_ndjson_count_limit_applies_while_reading() -> None:
    body = b'{"text": "a"}\n' * 11 + b"{never parsed"
    with pytest.raises(PayloadError, match=r"more than 10 documents in one request \(line 11\)"):
        parse_documents(body, "application/x-ndjson", max_docs=10, max_chars=1000)


def test_idempotency_key_ids_are_stable_per_position() -> None:
    assert (
        idempotent_id("k1", 0) == idempotent_id("k1", 0) != idempotent_id("k1", 1) != idempotent_id("k2", 1)
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty"),
        (b"{oops", "malformed JSON"),
        (b'{"title": "", "text": ""}', "document 0: .*needs a title or a text"),
        (b'[{"text": ""}, {"text": " "}]', "document 0: .*needs a title or a text.*1 more invalid"),
        (b'{"text": "x", "extra": 1}', "extra"),
        (b'{"text": "x", "id": "a/b"}', "document 0: id"),
        (b'{"text": "' + b"x" * 1001 + b'"}', "limit 1000"),
        (b"[" + b",".join([b'{"text": "x"}'] * 11) + b"]", "limit is 10"),
        (b'"just a string"', "expected a JSON object"),
    ],
)
def test_bad_payloads_name_the_problem(body: bytes, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        parse(body)


def test_new_document_is_pending_with_stemmed_copy() -> None:
    doc = from_json("c", parse(b'{"id": "x", "title": "Running studies", "text": "The cats ran"}')[0])
    assert doc["ingest"]["status"] == "pending"
    assert doc["search_stemmed"] == {"title": "run studi", "content": "cat ran"}
    assert doc["doc_id"] == "x"


def test_stemming_drops_stopwords_and_possessives() -> None:
    assert stem_text("The patient's studies are running") == "patient studi run"
    assert stem_text("the of and") == ""


def test_mapping_has_one_quantised_vector_field_per_encoder() -> None:
    from encoders import get_encoder

    body = index_body("c", [get_encoder("text")], Settings(), ELASTICSEARCH)
    field = body["mappings"]["properties"]["vectors"]["properties"]["text"]
    assert field == {
        "type": "dense_vector",
        "dims": 384,
        "similarity": "cosine",
        "index": True,
        "index_options": {"type": "bbq_hnsw"},  # 1-bit from 384 dims, as Elasticsearch's own default
    }
    assert ELASTICSEARCH.vector_mapping(64, "cosine", "float")["index_options"] == {"type": "int8_hnsw"}
    assert body["mappings"]["properties"]["metadata"]["type"] == "flattened"
    assert "knn" not in body["settings"]["index"]
    assert body["mappings"]["_meta"]["encoders"]["text"]["version"] == "text@all-MiniLM-L6-v2"
    assert body["mappings"]["dynamic"] == "strict"


def test_opensearch_mapping_has_knn_vectors_and_flat_objects() -> None:
    from encoders import get_encoder

    body = index_body("c", [get_encoder("text")], Settings(), OPENSEARCH)
    properties = body["mappings"]["properties"]
    assert properties["vectors"]["properties"]["text"] == {
        "type": "knn_vector",
        "dimension": 384,
        "method": {
            "name": "hnsw",
            "engine": "lucene",
            "space_type": "cosinesimil",
            "parameters": {"encoder": {"name": "sq"}},
        },
    }
    assert properties["metadata"] == {"type": "flat_object"}
    assert properties["ingest"]["properties"]["encoders"] == {"type": "flat_object"}
    assert body["settings"]["index"]["knn"] is True
    assert "flattened" not in str(body)


def test_passage_vectors_are_the_text_encoders_fields_in_each_engines_dialect() -> None:
    from encoders import get_encoder

    encoders = [get_encoder("text"), get_encoder("phash")]
    for engine in (ELASTICSEARCH, OPENSEARCH):
        body = index_body("c", encoders, Settings(), engine)
        properties = body["mappings"]["properties"]
        assert properties["passages"]["type"] == "nested"
        passage_vectors = properties["passages"]["properties"]["vectors"]["properties"]
        assert list(passage_vectors) == ["text"]  # not the hash
        document_vector = properties["vectors"]["properties"]["text"]
        if engine is OPENSEARCH:
            assert passage_vectors["text"] == document_vector
        else:  # a nested kNN over bbq is not rescored on Elasticsearch 9.2: passages quantise to int8
            assert document_vector["index_options"] == {"type": "bbq_hnsw"}
            assert passage_vectors["text"] == {**document_vector, "index_options": {"type": "int8_hnsw"}}
        assert body["mappings"]["_meta"]["passages"] == ["text"]
    off = index_body("c", encoders, Settings(), OPENSEARCH, passages=False)
    assert off["mappings"]["_meta"]["passages"] == []
    assert off["mappings"]["properties"]["passages"]["properties"]["vectors"]["properties"] == {}
