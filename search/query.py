"""Search request bodies for the sub-queries of a search: lexical (BM25) and kNN per vector field.

The lexical body is the same on Elasticsearch and OpenSearch; the kNN clause is the engine's dialect
(`core.engine.Engine.knn_search`).

User text only ever goes into `combined_fields`/`multi_match` (no query-string syntax, no scripts).
"""

from __future__ import annotations

from typing import Any

from core.engine import RESCORE_OVERSAMPLE, Engine
from mappings.analysis import stem_text
from mappings.render import field_names

SOURCE_EXCLUDES = ["vectors", "search_stemmed", "passages", "pages"]  # hits carry their best passages
# The same choice by name, for an engine that fetches kept fields faster (`Engine.source_filter`).
SOURCE_KEEPS = [name for name in field_names() if name not in SOURCE_EXCLUDES]
__all__ = [
    "RESCORE_OVERSAMPLE",
    "facet_aggs",
    "facet_body",
    "facet_field",
    "fetch_body",
    "filter_clauses",
    "highlight_spec",
    "knn_body",
    "lexical_body",
    "lexical_query",
    "segments_clause",
]
# A highlighted search analyses at most this many characters of a field, so one very long text cannot make
# the highlighter fail (Elasticsearch refuses fields beyond `index.highlight.max_analyzed_offset`).
HIGHLIGHT_MAX_ANALYZED_OFFSET = 100_000


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


def highlight_spec(text: str, engine: Engine) -> dict[str, Any]:
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
        **engine.highlight_limit(HIGHLIGHT_MAX_ANALYZED_OFFSET),
    }


MAX_MATCHED_SEGMENTS = 3


def segments_clause(text: str) -> dict[str, Any]:
    """The timed segments (transcript phrases) that match the query, as `inner_hits`: where in a recording
    the words were said. Boost 0: it only finds them, the document's BM25 score is unchanged."""
    return {
        "nested": {
            "path": "segments",
            "query": {"match": {"segments.text": text}},
            "score_mode": "max",
            "boost": 0,
            "inner_hits": {
                "name": "segments",
                "size": MAX_MATCHED_SEGMENTS,
                "_source": ["segments.text", "segments.start", "segments.end", "segments.words"],
            },
        }
    }


def lexical_body(query: dict[str, Any], filters: list[dict[str, Any]], window: int) -> dict[str, Any]:
    """Ids and scores only: sources and highlights are fetched once, for the page (`fetch_body`)."""
    return {
        "query": {"bool": {"must": [query], "filter": filters}},
        "size": window,
        "track_total_hits": True,
        "_source": False,
    }


def knn_body(
    engine: Engine,
    field: str,
    vector: list[float] | list[int] | str,
    filters: list[dict[str, Any]],
    *,
    window: int,
    num_candidates: int,
    rescore: bool = True,
    element_type: str = "float",
) -> dict[str, Any]:
    """One filtered kNN sub-query (filters inside the HNSW search, not after it); `rescore` re-ranks
    oversampled quantised candidates with the float vectors."""
    body: dict[str, Any] = engine.knn_search(
        field, vector, window, num_candidates, filters=filters, quantised=rescore, element_type=element_type
    )
    body.update(size=window, _source=False)  # ids and scores only, like the lexical sub-query
    return body


def fetch_body(
    ids: list[str],
    highlight: dict[str, Any] | None,
    segments: dict[str, Any] | None,
    *,
    engine: Engine,
    access: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The sources (highlights, matched segments) of the hits a response shows: one request for the page,
    not one copy per sub-query and window position; `access` (a read filter) keeps out what the
    principal may not read, whatever ids it is asked for. Sources leave out vectors and other bulk in
    the form `engine` fetches fastest."""
    filters = [{"ids": {"values": ids}}, *([access] if access is not None else [])]
    body: dict[str, Any] = {
        "query": {"bool": {"filter": filters, "should": [segments] if segments else []}},
        "size": len(ids),
        "_source": engine.source_filter(keep=SOURCE_KEEPS, drop=SOURCE_EXCLUDES),
        "track_total_hits": False,
    }
    if highlight:
        body["highlight"] = highlight
    return body


FACET_SIZE = 20  # values per terms facet, the most frequent first
# The field each named facet counts; a `metadata.<key>` facet counts that key of the flattened field.
FACET_FIELDS = {
    "modality": "modality",
    "mime": "source.mime",
    "collection": "collection",
    "date": "@timestamp",
}
# Date buckets by ingest time, each one a range filter as a person narrows by it. They nest (the past week
# holds the past day) and stay relative (date math), so a shared link keeps meaning "the past week".
DATE_RANGES: dict[str, dict[str, str]] = {
    "past-day": {"gte": "now-1d"},
    "past-week": {"gte": "now-7d"},
    "past-month": {"gte": "now-1M"},
    "past-year": {"gte": "now-1y"},
    "older": {"lt": "now-1y"},
}


def facet_field(name: str) -> str:
    """The index field a facet counts, which is also the filter that narrows by one of its values."""
    return FACET_FIELDS.get(name, name)


def facet_aggs(names: list[str]) -> dict[str, Any]:
    """One aggregation per facet: terms for keyword fields, the fixed date ranges for `date`."""
    aggs: dict[str, Any] = {}
    for name in names:
        if name == "date":
            ranges = [
                {"key": key, **({"from": r["gte"]} if "gte" in r else {"to": r["lt"]})}
                for key, r in DATE_RANGES.items()
            ]
            aggs[name] = {"date_range": {"field": facet_field(name), "keyed": False, "ranges": ranges}}
        else:
            aggs[name] = {"terms": {"field": facet_field(name), "size": FACET_SIZE}}
    return aggs


def facet_body(ids: list[str], filters: list[dict[str, Any]], aggs: dict[str, Any]) -> dict[str, Any]:
    """Counts only (no hits) over the given documents, under the request's filters once more: the ids come
    from sub-queries that already applied them, and repeating them costs nothing and keeps a filter (a
    principal's, say) from ever depending on how the ids were found."""
    return {
        "query": {"bool": {"filter": [{"ids": {"values": ids}}, *filters]}},
        "size": 0,
        "track_total_hits": False,
        "aggs": aggs,
    }
