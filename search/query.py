"""Elasticsearch request bodies for the sub-queries of a search: lexical (BM25) and kNN per vector field.

User text only ever goes into `combined_fields`/`multi_match` (no query-string syntax, no scripts).
"""

from __future__ import annotations

from typing import Any

from mappings.analysis import stem_text

SOURCE_EXCLUDES = ["vectors", "search_stemmed", "passages", "pages"]  # hits carry their best passages
# int8 quantisation caps recall@10 at ~0.98; rescoring 3x candidates with the float vectors gives ~1.0.
RESCORE_OVERSAMPLE = 3.0


def filter_clauses(filters: dict[str, Any], modalities: list[str] | None) -> list[dict[str, Any]]:
    clauses: list[dict[str, Any]] = []
    for name, value in filters.items():
        if isinstance(value, dict):
            clauses.append({"range": {name: value}})
        elif isinstance(value, list):
            clauses.append({"terms": {name: value}})
        else:
            clauses.append({"term": {name: value}})
    if modalities:
        clauses.append({"terms": {"modality": modalities}})
    return clauses


def lexical_query(text: str, boosts: dict[str, float]) -> dict[str, Any] | None:
    """BM25 over the product-stemmed fields; None when nothing searchable is left (only stopwords)."""
    stemmed = stem_text(text)
    positive = {name: boost for name, boost in boosts.items() if boost > 0}
    if not stemmed or not positive:
        return None
    # combined_fields: BM25 over title+content as one field (both share one analyzer); best on SciFact.
    # It takes boosts >= 1 only, and only their ratio is meant: scale them so the smallest is 1.
    floor = min(positive.values())
    fields = [f"search_stemmed.{name}^{boost / floor:g}" for name, boost in positive.items()]
    return {"combined_fields": {"query": stemmed, "fields": fields}}


def highlight_spec(text: str) -> dict[str, Any]:
    return {
        "fields": {
            "content": {"fragment_size": 180, "number_of_fragments": 3},
            "title": {"number_of_fragments": 0},
        },
        "highlight_query": {"multi_match": {"query": text, "fields": ["title", "content"]}},
        "pre_tags": ["<mark>"],
        "post_tags": ["</mark>"],
        "encoder": "html",
        "require_field_match": False,
    }


def lexical_body(
    query: dict[str, Any], filters: list[dict[str, Any]], window: int, highlight: dict[str, Any] | None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "query": {"bool": {"must": [query], "filter": filters}},
        "size": window,
        "track_total_hits": True,
        "_source": {"excludes": SOURCE_EXCLUDES},
    }
    if highlight:
        body["highlight"] = highlight
    return body


def knn_body(
    field: str,
    vector: list[float] | str,
    filters: list[dict[str, Any]],
    window: int,
    num_candidates: int,
    highlight: dict[str, Any] | None,
    rescore: bool = True,
) -> dict[str, Any]:
    knn: dict[str, Any] = {
        "field": field,
        "query_vector": vector,
        "k": window,
        "num_candidates": min(max(num_candidates, window), 10_000),
    }
    if rescore:
        knn["rescore_vector"] = {"oversample": RESCORE_OVERSAMPLE}
    if filters:
        knn["filter"] = filters  # applied inside the HNSW search, not after it
    body: dict[str, Any] = {"knn": knn, "size": window, "_source": {"excludes": SOURCE_EXCLUDES}}
    if highlight:
        body["highlight"] = highlight
    return body
