"""The query plan: which named sub-queries a search request sends, and the rankings their responses give.

One builder for the API, the benchmarks and anything else that must search exactly as the product does:
`lexical` (BM25, when the text leaves something to match) and one `vector:<encoder>` kNN per query vector;
for an encoder whose collection cuts long texts into passages, also `passages:<encoder>`, a kNN over the
nested passages (a document scores by its best passage). Its ranking and the whole-document one merge
into the encoder's one ranking (best score per document: both are the same encoder's cosine), so fusion
sees one list per encoder whether documents are short or long. Sub-queries return ids and scores only;
`page_fetch` then asks for what the returned page shows, and `page_passages` for the best passages of the
page's documents only (inner hits over the whole window cost a third of a hybrid search, measured by
`bench.query`).
Pure: no cluster, no models; the caller brings the query vectors and the engine's dialect.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from core.engine import Engine
from mappings.render import field_names
from search.fusion import Ranking
from search.query import (
    DATE_RANGES,
    facet_aggs,
    facet_body,
    facet_field,
    fetch_body,
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
PASSAGES = "passages:"  # sub-query name prefix of a nested passage kNN
PASSAGE_HITS = 3  # best passages returned with each hit
PAGE_PASSAGE_CANDIDATES = 100  # the page's few documents: enough for an exact search of their passages
PASSAGES_PATH = "passages"  # the nested field of passages
# What a returned passage carries: every field but its vectors (by name: `Engine.source_filter`).
PASSAGE_KEEPS = [f"{PASSAGES_PATH}.{f}" for f in field_names(PASSAGES_PATH) if f != "vectors"]


def request_filters(req: SearchRequest, access: Body | None = None) -> list[dict[str, Any]]:
    """Filters shared by every sub-query; `like` never finds the document it starts from. `access` is the
    principal's read filter (`core.access.read_filter`; None for an admin): a filter clause like the
    request's own, so it runs inside every sub-query, kNN included, and nothing can widen it."""
    filters = filter_clauses(req.filters, req.modalities)
    if access is not None:
        filters.append(access)
    if req.like:
        filters.append({"bool": {"must_not": [{"ids": {"values": [req.like]}}]}})
    return filters


def subqueries(
    req: SearchRequest,
    profile: Profile,
    vectors: Mapping[str, QueryVector],
    encoders: Mapping[str, Mapping[str, Any]],
    *,
    window: int,
    engine: Engine,
    passages: Sequence[str] = (),
    access: Body | None = None,
) -> dict[str, Body]:
    """`{"lexical": body, "vector:<encoder>": body, ...}`, lexical first, vectors in the given order.

    `vectors` maps encoder name -> query vector; `encoders` is the collection's encoder descriptions (a
    float field is quantised, so its kNN rescores); `req.encoders`, when set, keeps only those encoders;
    `passages` names the encoders with passage vectors; `access` the principal's read filter."""
    filters = request_filters(req, access)
    bodies: dict[str, Body] = {}
    if req.mode in ("lexical", "hybrid") and req.query:
        lexical = lexical_query(req.query, profile.boosts)
        if lexical:  # None when only stopwords are left
            bodies["lexical"] = lexical_body(lexical, filters, window)
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
                window=window,
                num_candidates=profile.num_candidates,
                rescore=element_type == "float",
                element_type=element_type,
            )
            if name in passages:
                bodies[f"{PASSAGES}{name}"] = passage_knn_body(
                    engine, name, vector, filters, window=window, num_candidates=profile.num_candidates
                )
    return bodies


def page_passages(
    req: SearchRequest,
    vectors: Mapping[str, QueryVector],
    responses: Mapping[str, Mapping[str, Any]],
    page: Sequence[str],
    *,
    engine: Engine,
    access: Body | None = None,
) -> dict[str, Body]:
    """`{"passages:<encoder>": body}`: for each passage kNN the search ran (its response in `responses`),
    the same kNN narrowed to the page's documents that it found, returning their `PASSAGE_HITS` best
    passages (highlighted when asked). A handful of documents: the engine searches their passages
    exactly, and only the shown ones are fetched."""
    bodies: dict[str, Body] = {}
    for name, resp in responses.items():
        encoder = name[len(PASSAGES) :]
        if not name.startswith(PASSAGES) or encoder not in vectors:
            continue
        found = {hit["_id"] for hit in resp["hits"]["hits"]}
        ids = [doc_id for doc_id in page if doc_id in found]
        if ids:
            bodies[name] = passage_knn_body(
                engine,
                encoder,
                vectors[encoder],
                [*request_filters(req, access), {"ids": {"values": ids}}],
                window=len(ids),
                num_candidates=PAGE_PASSAGE_CANDIDATES,
                highlight_text=highlight_text(req),
                inner_hits=True,
            )
    return bodies


def page_fetch(req: SearchRequest, ids: list[str], engine: Engine, access: Body | None = None) -> Body:
    """The one request for what the page shows: sources, highlights and the transcript segments that
    match the query (where in a recording the words were said); only documents `access` lets through."""
    if not (req.highlight and req.query):
        return fetch_body(ids, None, None, engine=engine, access=access)
    highlight = highlight_spec(req.query, engine)
    return fetch_body(ids, highlight, segments_clause(req.query), engine=engine, access=access)


class FacetError(ValueError):
    """A facet on a metadata key the `facet_fields` setting does not list."""


def check_facets(req: SearchRequest, allowed: Sequence[str], engine: Engine) -> list[str]:
    """The request's facet names, each one allowed: the fixed ones, or a `metadata.<key>` that the
    setting lists (the schema has already refused every other name). `facets: true` asks for the default
    ones and every listed metadata key, so a page need not know the server's settings; on an engine that
    cannot count metadata keys it leaves them out, and naming one is refused."""
    counted = allowed if engine.counts_object_keys else []
    names = [*req.facet_names(), *(counted if req.facets is True else [])]
    refused = [n for n in names if n.startswith("metadata.") and n not in allowed]
    if refused:
        raise FacetError(
            f"cannot count by {', '.join(refused)}; facets on metadata are limited to: "
            + (", ".join(allowed) or "none (set MMSEARCH_FACET_FIELDS)")
        )
    if not engine.counts_object_keys and any(n.startswith("metadata.") for n in names):
        raise FacetError(
            f"no facets on metadata keys on {engine.name}: its flat_object field cannot count one key"
        )
    return names


def facet_request(
    req: SearchRequest, ids: list[str], names: list[str], access: Body | None = None
) -> Body | None:
    """The facet counts of a search: aggregations over the documents it matched, under its filters.

    What "matched" means: the fused list, every document some sub-query returned within its window (BM25
    matches of the words, the kNN candidates of each vector) — the same list `total` counts, so the
    counts add up to what the page can reach. Counting all BM25 matches instead would mix in documents
    fusion never saw, and kNN has no "all matches" to count. `request_filters` is applied again (see
    `facet_body`) with the principal's read filter `access`, which governs the counts as it does the hits.
    None when there is nothing to count."""
    if not names or not ids:
        return None
    return facet_body(ids, request_filters(req, access), facet_aggs(names))


def facet_counts(names: list[str], resp: Mapping[str, Any] | None) -> dict[str, Any]:
    """`{name: {"field": <filter field>, "buckets": [{"value", "count"(, "range")}]}}`, empty buckets left
    out; a date bucket carries the range filter that narrows to it."""
    aggs = (resp or {}).get("aggregations", {})
    out: dict[str, Any] = {}
    for name in names:
        buckets = [b for b in aggs.get(name, {}).get("buckets", []) if b.get("doc_count")]
        if name == "date":  # the engine orders ranges by their start: newest first reads better
            buckets = sorted(buckets, key=lambda b: list(DATE_RANGES).index(b["key"]))
        out[name] = {
            "field": facet_field(name),
            "buckets": [
                {
                    "value": str(b["key"]),
                    "count": int(b["doc_count"]),
                    **({"range": DATE_RANGES[b["key"]]} if name == "date" else {}),
                }
                for b in buckets
            ],
        }
    return out


def highlight_text(req: SearchRequest) -> str | None:
    """The text passages are highlighted with: the query, when highlighting was asked for."""
    return req.query if req.highlight and req.query else None


def passage_knn_body(
    engine: Engine,
    encoder: str,
    vector: QueryVector,
    filters: list[dict[str, Any]],
    *,
    window: int,
    num_candidates: int,
    highlight_text: str | None = None,
    inner_hits: bool = False,
) -> Body:
    """kNN over the nested `passages.vectors.<encoder>` in the engine's dialect: a document scores by its
    best passage; with `inner_hits` its `PASSAGE_HITS` best passages come back too (text, offsets, page or
    times, highlight). Filters on document fields apply inside the search. The one place it is built."""
    inner: dict[str, Any] | None = (
        None
        if not inner_hits
        else {
            "name": "passages",
            "size": PASSAGE_HITS,
            "_source": engine.source_filter(keep=PASSAGE_KEEPS, drop=[f"{PASSAGES_PATH}.vectors"]),
        }
    )
    if inner is not None and highlight_text:
        inner["highlight"] = {
            "fields": {"passages.text": {"fragment_size": 180, "number_of_fragments": 2}},
            "highlight_query": {"match": {"passages.text": highlight_text}},
            "pre_tags": ["<mark>"],
            "post_tags": ["</mark>"],
            "encoder": "html",
        }
    body = engine.nested_knn_search(
        PASSAGES_PATH,
        f"vectors.{encoder}",
        vector,
        window,
        num_candidates=num_candidates,
        filters=filters,
        inner_hits=inner,
        quantised=True,
    )
    body.update(size=window, _source=False)
    return body


def rankings(responses: Mapping[str, Mapping[str, Any]]) -> dict[str, Ranking]:
    """Each sub-query's (id, score) list, best first, as fusion takes it; a `passages:<encoder>` list
    merges into `vector:<encoder>` (a document keeps its best score of the two)."""
    out: dict[str, Ranking] = {}
    for name, resp in responses.items():
        ranking = [(hit["_id"], float(hit["_score"] or 0.0)) for hit in resp["hits"]["hits"]]
        key = f"vector:{name[len(PASSAGES) :]}" if name.startswith(PASSAGES) else name
        out[key] = merge_best(out[key], ranking) if key in out else ranking
    return out


def merge_best(first: Ranking, second: Ranking) -> Ranking:
    """Two rankings of one encoder's scores as one: each document once, at its best score, best first,
    as long as the longer of the two (a window, like any sub-query's list: fusion normalises over it)."""
    best: dict[str, float] = {}
    for doc_id, score in [*first, *second]:
        best[doc_id] = max(score, best.get(doc_id, score))
    return sorted(best.items(), key=lambda item: -item[1])[: max(len(first), len(second))]


def passage_hits(responses: Mapping[str, Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """doc id -> its best passages (text, offsets, page or times, score, highlight), best first."""
    found: dict[str, list[dict[str, Any]]] = {}
    for name, resp in responses.items():
        if not name.startswith(PASSAGES):
            continue
        for hit in resp["hits"]["hits"]:
            inner = hit.get("inner_hits", {}).get("passages", {}).get("hits", {}).get("hits", [])
            found.setdefault(hit["_id"], []).extend(
                {
                    **p["_source"],
                    "score": p["_score"],
                    "highlight": p.get("highlight", {}).get("passages.text", []),
                }
                for p in inner
            )
    return {
        doc_id: sorted(ps, key=lambda p: -p["score"])[:PASSAGE_HITS] for doc_id, ps in found.items() if ps
    }


SHARD_COUNTS = ("total", "successful", "skipped", "failed")
MAX_REASONS = 3  # distinct shard failure reasons reported per sub-query


def incomplete(responses: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The responses that did not hear from every shard in time: a shard failed or missing (no replica
    left, a node lost) or the search timed out. Each names its sub-query, the shard counts and the
    reasons, so a thinner list is never mistaken for a whole one. Elasticsearch counts a missing shard
    as `failed`; OpenSearch only leaves it out of `successful` (which counts `skipped` shards: they
    answered that they hold no match), so both are read."""
    out = []
    for name, resp in responses.items():
        shards = resp.get("_shards", {})
        whole = shards.get("successful", 0) >= shards.get("total", 0) and not shards.get("failed")
        if whole and not resp.get("timed_out"):
            continue
        reasons = {str(f.get("reason", {}).get("type", "unknown")) for f in shards.get("failures", [])}
        out.append(
            {
                "subquery": name,
                "timed_out": bool(resp.get("timed_out")),
                **{key: int(shards.get(key, 0)) for key in SHARD_COUNTS},
                "reasons": sorted(reasons)[:MAX_REASONS],
            }
        )
    return out
