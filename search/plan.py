"""The query plan: which named sub-queries a search request sends, and the rankings their responses give.

One builder for the API, the benchmarks and anything else that must search exactly as the product does:
`lexical` (BM25, when the text leaves something to match) and one `vector:<encoder>` kNN per query vector.
Pure: no cluster, no models; the caller brings the query vectors and the engine's dialect.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.engine import Engine
from search.fusion import Ranking
from search.query import (
    filter_clauses,
    highlight_spec,
    knn_body,
    lexical_body,
    lexical_query,
    segments_clause,
)
from search.schema import Profile, SearchRequest

QueryVector = list[float] | str  # a hex string for bit vectors (perceptual hashes)
Body = dict[str, Any]


def request_filters(req: SearchRequest) -> list[dict[str, Any]]:
    """Filters shared by every sub-query; `like` never finds the document it starts from."""
    filters = filter_clauses(req.filters, req.modalities)
    if req.like:
        filters.append({"bool": {"must_not": [{"ids": {"values": [req.like]}}]}})
    return filters


def subqueries(
    req: SearchRequest,
    profile: Profile,
    vectors: Mapping[str, QueryVector],
    encoders: Mapping[str, Mapping[str, Any]],
    window: int,
    engine: Engine,
) -> dict[str, Body]:
    """`{"lexical": body, "vector:<encoder>": body, ...}`, lexical first, vectors in the given order.

    `vectors` maps encoder name -> query vector; `encoders` is the collection's encoder descriptions (a
    float field is quantised, so its kNN rescores); `req.encoders`, when set, keeps only those encoders."""
    filters = request_filters(req)
    highlight = highlight_spec(req.query) if req.highlight and req.query else None
    bodies: dict[str, Body] = {}
    if req.mode in ("lexical", "hybrid") and req.query:
        lexical = lexical_query(req.query, profile.boosts)
        if lexical:  # None when only stopwords are left
            segments = segments_clause(req.query) if highlight else None  # highlights name the moments too
            bodies["lexical"] = lexical_body(lexical, filters, window, highlight, segments)
    if req.mode in ("vector", "hybrid"):
        for name, vector in vectors.items():
            if req.encoders is not None and name not in req.encoders:
                continue
            element_type = encoders.get(name, {}).get("element_type", "float")
            bodies[f"vector:{name}"] = knn_body(
                engine,
                f"vectors.{name}",
                vector,
                filters,
                window,
                profile.num_candidates,
                highlight,
                rescore=element_type == "float",
                element_type=element_type,
            )
    return bodies


def rankings(responses: Mapping[str, Mapping[str, Any]]) -> dict[str, Ranking]:
    """Each sub-query's (id, score) list, best first, as fusion takes it."""
    return {
        name: [(hit["_id"], float(hit["_score"] or 0.0)) for hit in resp["hits"]["hits"]]
        for name, resp in responses.items()
    }
