"""Hybrid search: encode the query (cached), one `_msearch` round trip, our fusion, one page of hits."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from elasticsearch import Elasticsearch, NotFoundError

from core.config import Settings
from core.es import error_reason
from encoders import EncoderError, get_encoder
from mappings.collections import Collection
from search import fusion
from search.query import filter_clauses, highlight_spec, knn_body, lexical_body, lexical_query
from search.schema import Fusion, Profile, SearchRequest


class SearchError(Exception):
    status = 400


class SearchNotFound(SearchError):
    status = 404


class SearchBackendError(SearchError):
    status = 502


class SearchService:
    def __init__(self, es: Elasticsearch, settings: Settings) -> None:
        self.es = es
        self.settings = settings
        self.encode_query: Callable[[str, str, str, str], tuple[float, ...]] = lru_cache(
            maxsize=settings.query_cache_size
        )(self._encode_query)

    @staticmethod
    def _encode_query(name: str, model: str, kind: str, text: str) -> tuple[float, ...]:
        return tuple(float(x) for x in get_encoder(name, model or None).encode([text], kind=kind)[0])

    def profile(self, collection: Collection, req: SearchRequest) -> Profile:
        """Defaults < the named (or `default`) profile < what the request says."""
        if req.profile and req.profile not in collection.profiles:
            raise SearchError(f"collection {collection.name!r} has no search profile {req.profile!r}")
        stored = collection.profiles.get(req.profile or "default")
        profile = Profile.model_validate(stored) if stored else Profile()
        # Boosts merge field by field: `{"title": 2}` must not drop the content field.
        overrides = {
            key: value
            for key, value in {
                "fusion": req.fusion,
                "boosts": {**profile.boosts, **req.boosts} if req.boosts else None,
                "num_candidates": req.num_candidates,
                "rank_window": req.rank_window,
            }.items()
            if value is not None
        }
        return profile.model_copy(update=overrides)

    def example_vectors(self, collection: Collection, kind: str, item: Any) -> dict[str, Any]:
        """Query vectors for an uploaded image or audio clip from each encoder of the collection taking it."""
        vectors = {}
        for name, desc in collection.encoders.items():
            if kind in desc.get("query_kinds", []):
                encoder = get_encoder(name, desc.get("model") or None)
                try:
                    vectors[name] = encoder.field_value(encoder.encode([item], kind=kind)[0])
                except EncoderError as exc:
                    raise SearchError(str(exc)) from None
        if not vectors:
            raise SearchError(f"collection {collection.name!r} has no encoder that takes {kind} queries")
        return vectors

    def like_vectors(self, collection: Collection, doc_id: str) -> dict[str, Any]:
        """The stored vectors of a document, to find items similar to it."""
        try:
            doc = self.es.get(index=collection.alias, id=doc_id, source_includes=["vectors"])
        except NotFoundError:
            raise SearchNotFound(f"`like`: document {doc_id!r} does not exist") from None
        vectors = doc["_source"].get("vectors", {})
        if not vectors:
            raise SearchError(f"`like`: document {doc_id!r} has no vectors yet (is it still pending?)")
        return vectors

    def vector_queries(
        self, collection: Collection, req: SearchRequest, extra: dict[str, Any] | None
    ) -> dict[str, list[float] | str]:
        """One query vector per vector field that can take the query (text towers; or given vectors)."""
        vectors: dict[str, list[float] | str] = dict(extra or {})
        if req.query:
            for name, desc in collection.encoders.items():
                if "text" in desc.get("query_kinds", []) and name not in vectors:
                    try:
                        vectors[name] = list(
                            self.encode_query(name, desc.get("model", ""), "text", req.query)
                        )
                    except EncoderError as exc:
                        raise SearchError(str(exc)) from None
        if req.encoders is not None:
            unknown = set(req.encoders) - set(collection.encoders)
            if unknown:
                raise SearchError(f"unknown encoders for this collection: {', '.join(sorted(unknown))}")
            vectors = {name: vec for name, vec in vectors.items() if name in req.encoders}
        return vectors

    def search(
        self, collection: Collection, req: SearchRequest, query_vectors: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        started = time.perf_counter()
        profile = self.profile(collection, req)
        window = min(max(profile.rank_window, req.from_ + req.size), self.settings.max_window)
        if req.from_ + req.size > window:
            raise SearchError(f"from + size may not exceed {self.settings.max_window} under fusion")
        filters = filter_clauses(req.filters, req.modalities)
        if req.like:
            query_vectors = {**self.like_vectors(collection, req.like), **(query_vectors or {})}
            filters.append({"bool": {"must_not": [{"ids": {"values": [req.like]}}]}})
        highlight = highlight_spec(req.query) if req.highlight and req.query else None

        bodies: dict[str, dict[str, Any]] = {}
        if req.mode in ("lexical", "hybrid") and req.query:
            lexical = lexical_query(req.query, profile.boosts)
            if lexical:
                bodies["lexical"] = lexical_body(lexical, filters, window, highlight)
        if req.mode in ("vector", "hybrid"):
            for name, vector in self.vector_queries(collection, req, query_vectors).items():
                quantised = collection.encoders.get(name, {}).get("element_type", "float") == "float"
                bodies[f"vector:{name}"] = knn_body(
                    f"vectors.{name}", vector, filters, window, profile.num_candidates, highlight, quantised
                )
        if not bodies and not req.query and not query_vectors:
            raise SearchError("nothing to search for: give `query` (or an image/audio example or `like`)")

        responses = self._msearch(collection.alias, bodies)
        rankings = {
            name: [(h["_id"], float(h["_score"] or 0.0)) for h in resp["hits"]["hits"]]
            for name, resp in responses.items()
        }
        fused = self._fuse(rankings, profile.fusion)
        method = profile.fusion.method if len(rankings) > 1 else "none"
        page = fused[req.from_ : req.from_ + req.size]
        sources = {h["_id"]: h for resp in responses.values() for h in resp["hits"]["hits"]}
        highlights: dict[str, dict[str, list[str]]] = {}
        for resp in responses.values():
            for h in resp["hits"]["hits"]:
                highlights.setdefault(h["_id"], {}).update(h.get("highlight", {}))
        lexical_total = responses.get("lexical", {}).get("hits", {}).get("total", {}).get("value")
        return {
            "collection": collection.name,
            "mode": req.mode,
            "from": req.from_,
            "size": req.size,
            "total": len(fused),
            "total_lexical": lexical_total,
            "fusion": profile.fusion.model_dump() if method != "none" else None,
            "took_ms": round((time.perf_counter() - started) * 1000, 2),
            "hits": [
                self._hit(
                    h, req.from_ + i + 1, sources[h.doc_id], highlights.get(h.doc_id), req.explain, method
                )
                for i, h in enumerate(page)
            ],
        }

    def _msearch(self, alias: str, bodies: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        if not bodies:
            return {}
        searches: list[dict[str, Any]] = []
        for body in bodies.values():
            searches.extend([{"index": alias}, body])
        resp = self.es.msearch(searches=searches)
        out = {}
        for name, item in zip(bodies, resp["responses"], strict=True):
            if "error" in item:
                reason = error_reason(item["error"])
                raise (SearchError if item.get("status", 500) < 500 else SearchBackendError)(
                    f"{name} sub-query failed: {reason}"
                )
            out[name] = item
        return out

    @staticmethod
    def _fuse(rankings: dict[str, fusion.Ranking], spec: Fusion) -> list[fusion.FusedHit]:
        if len(rankings) == 1:
            ((name, ranking),) = rankings.items()
            return fusion.passthrough(name, ranking)
        if spec.method == "linear":
            return fusion.linear(rankings, spec.weights, spec.normalization)
        return fusion.rrf(rankings, spec.k, spec.weights)

    @staticmethod
    def _hit(
        hit: fusion.FusedHit,
        rank: int,
        es_hit: dict[str, Any],
        highlight: dict[str, list[str]] | None,
        explain: bool,
        method: str,
    ) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": hit.doc_id,
            "rank": rank,
            "score": hit.score,
            "source": es_hit["_source"],
        }
        if highlight:
            out["highlight"] = highlight
        if explain:
            out["explanation"] = {
                "fused": {"score": hit.score, "method": method},
                "components": hit.components,
            }
        return out
