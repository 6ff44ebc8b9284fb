"""Long documents end to end (API, worker, Elasticsearch): a 12-page PDF whose answer is on page 11 is
found by vector search, its hit naming that page; a short document in the same collection keeps its one
vector and no passages. Pages are SciFact abstracts, one per page, so the answer is real text."""

from __future__ import annotations

import re
from itertools import islice
from pathlib import Path
from typing import Any

import pytest

from client.api import ApiClient
from core.access import ADMIN
from core.config import Settings
from ingest.beir import find, iter_jsonl, load_qrels, load_queries
from mappings import catalog
from search.schema import SearchRequest
from search.service import SearchService
from tests.scifact import QRELS, scifact_dir
from tests.test_ingest_files import make_pdf

pytestmark = pytest.mark.integration

ANSWER_PAGE = 11


def pdf_text(text: str) -> str:
    """An abstract as a hand-written PDF string holds it: ASCII, no parentheses or backslashes."""
    return re.sub(r"[()\\]", " ", text.encode("ascii", "ignore").decode())


def long_pdf_and_query() -> tuple[bytes, str, str]:
    """12 abstracts as 12 pages, a judged one on page 11; its training query; a short abstract."""
    source = scifact_dir()
    qrels = load_qrels(source / QRELS)
    qid = "0"  # a training query with one judged abstract
    (answer,) = qrels[qid]
    corpus = {row["_id"]: row for row in islice(iter_jsonl(find(source, "corpus")), 400)}
    judged = {doc for docs in qrels.values() for doc in docs}
    fillers = [row for doc_id, row in corpus.items() if doc_id not in judged][:12]
    answer_row = next(row for row in iter_jsonl(find(source, "corpus")) if row["_id"] == answer)
    pages = [pdf_text(row["text"]) for row in fillers[:11]]
    pages.insert(ANSWER_PAGE - 1, pdf_text(answer_row["text"]))
    query = load_queries(find(source, "queries"))[qid]
    return make_pdf(pages, "Collected abstracts", "Test"), query, fillers[11]["text"]


def test_a_late_page_answer_is_found_by_vectors_and_the_hit_names_its_page(
    api: ApiClient, collection: str, tmp_path: Path
) -> None:
    pdf, query, short = long_pdf_and_query()
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    uploaded = api.add_files(collection, [path], refresh=True)["files"][0]
    api.add_documents(collection, [{"id": "short", "title": "A short one", "text": short}], refresh=True)
    assert api.wait_encoded(collection, timeout=300).get("encoded") == 2

    doc = api.document(collection, uploaded["id"])["source"]
    assert doc["ingest"]["status"] == "encoded" and doc["metadata"]["page_count"] == 12
    assert sorted({p["page"] for p in doc["passages"]}) == list(range(1, 13))  # one abstract per page

    out = api.search(collection, query, mode="vector", highlight=True, size=2)
    top = out["hits"][0]
    assert top["id"] == uploaded["id"]
    best = top["passages"][0]
    assert best["page"] == ANSWER_PAGE, [(p.get("page"), p["score"]) for p in top["passages"]]
    assert best["text"] in doc["content"] and doc["content"][best["start"] : best["end"]] == best["text"]
    assert "passages" not in top["source"] and "vectors" not in top["source"]

    short_hit = api.search(collection, short[:200], mode="vector", size=1)["hits"][0]
    assert short_hit["id"] == "short" and "passages" not in short_hit  # one vector, as before


def test_a_collection_holding_no_passages_skips_the_passage_knn_until_one_arrives(
    api: ApiClient, collection: str, es: Any, settings: Settings
) -> None:
    """Short documents only: the vector plan is the whole-document kNN alone; once a document with a
    passage is stored, a service asking afresh (the answer is reused `PASSAGE_CHECK_S` seconds) plans the
    passage kNN again, and both find what they should."""
    api.add_documents(collection, [{"id": "short", "title": "Sleep", "text": "Infants sleep."}], refresh=True)
    assert api.wait_encoded(collection, timeout=300).get("encoded") == 1
    info = catalog.get(es, settings, collection)
    assert info.passages  # the collection cuts long texts into passages: none so far
    req = SearchRequest(query="infant sleep", mode="vector")
    service = SearchService(es, settings)
    vector = service.query_vectors(info, req, principal=ADMIN)["text"]
    assert list(service.plan(info, req, {"text": vector}, principal=ADMIN)[1]) == ["vector:text"]
    assert [h["id"] for h in service.search(info, req, principal=ADMIN)["hits"]] == ["short"]

    # a passage holding the query's own vector: the best match of all, found only by the passage kNN
    passage = {"text": "Infants sleep well.", "start": 0, "end": 19, "vectors": {"text": vector}}
    es.index(index=info.alias, id="long", document={"title": "Long", "passages": [passage]}, refresh=True)
    assert service.holds_passages(info.alias) is False  # the cached answer, for a few seconds
    fresh = SearchService(es, settings)
    assert list(fresh.plan(info, req, {"text": vector}, principal=ADMIN)[1]) == [
        "vector:text",
        "passages:text",
    ]
    top = fresh.search(info, req, principal=ADMIN)["hits"][0]
    assert top["id"] == "long" and top["passages"][0]["text"] == "Infants sleep well."
