"""Hybrid search: gather the query vectors (text encoded with a cache), plan the sub-queries, one `_msearch`
round trip, our fusion, one page of hits."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from elasticsearch import ApiError, NotFoundError

from core.access import READERS_FIELD, DocumentNotFound, Principal, may_read, read_filter, read_filters
from core.config import Settings
from core.errors import BackendError, MmsearchError, NotFound, Unavailable
from core.es import Client, engine_of, error_reason
from encoders import EncoderError, get_encoder
from encoders.rerank import get_reranker
from ingest.blobstore import BlobStore
from ingest.lifecycle import encoder_text, sha256_of
from mappings import catalog
from mappings.catalog import Collection, CollectionNotFound
from media.decode import load_audio, load_image
from media.filetypes import UnsupportedType, detect
from search import cutoff, fusion, plan
from search.schema import Profile, Rerank, SearchRequest

PASSAGE_CHECK_S = 10.0  # how long the answer to "does this collection hold passages?" is reused


class SearchError(MmsearchError):
    """A request the client can fix (bad profile, window, encoder, example)."""

    status = 400


class SearchNotFound(SearchError, NotFound):
    status = 404


class SearchBackendError(SearchError, BackendError):
    """A sub-query failed inside Elasticsearch through no fault of the request."""

    status = 502


class SearchIncomplete(SearchError, Unavailable):
    """Shards were missing or the search timed out, and the request said `allow_partial: false`; or
    no shard of the collection answered at all."""

    status = 503


@dataclass(frozen=True)
class StoredFile:
    """Where a document's original bytes lie, and what to call them when serving them."""

    path: Path
    mime: str | None
    filename: str | None


@dataclass
class Reranked:
    """The fused list with its top k reordered by the cross-encoder, what each hit got, and the cost."""

    hits: list[fusion.FusedHit]
    details: dict[str, dict[str, float]]
    summary: dict[str, Any]


class SearchService:
    """profile -> query vectors -> plan -> one `_msearch` -> fuse -> page -> explain."""

    def __init__(self, es: Client, settings: Settings) -> None:
        self.es = es
        self.engine = engine_of(es)
        self.settings = settings
        self._passage_checks: dict[str, tuple[float, bool]] = {}  # alias -> (valid until, holds passages)
        self.encode_query: Callable[[str, str, str, str], tuple[float, ...]] = lru_cache(
            maxsize=settings.api.query_cache_size
        )(self._encode_query)

    # --- collections and single documents ----------------------------------------------------------

    def collection(self, name: str, profile: str | None = None, *, principal: Principal) -> Collection:
        """The collection (cached a few seconds; `CollectionNotFound` is a 404, also for one the principal
        may not use), read afresh when it lacks the named `profile`, which another API process may have
        saved within the cache's lifetime."""
        if not principal.may_use(name):
            raise CollectionNotFound(f"collection {name!r} does not exist")
        collection = catalog.CACHE.get(self.es, self.settings, name)
        if profile and profile not in collection.profiles:
            collection = catalog.CACHE.get(self.es, self.settings, name, fresh=True)
        return collection

    def document(self, name: str, doc_id: str, *, principal: Principal) -> dict[str, Any]:
        """One stored document without its vectors and stemmed copies (`DocumentNotFound` when absent or
        not the principal's to read)."""
        return self._readable(name, doc_id, principal, excludes=["vectors", "search_stemmed"])

    def _readable(
        self,
        name: str,
        doc_id: str,
        principal: Principal,
        *,
        includes: list[str] | None = None,
        excludes: list[str] | None = None,
    ) -> dict[str, Any]:
        """A document's source by id, realtime (a get), when the principal may read it; else the same
        `DocumentNotFound` as for a missing id. `readers` is fetched for the check and then dropped unless
        `includes` asked for it."""
        alias = self.collection(name, principal=principal).alias
        wanted = None if includes is None else [*includes, READERS_FIELD]
        try:
            found = self.es.get(index=alias, id=doc_id, source_includes=wanted, source_excludes=excludes)
        except NotFoundError:
            raise DocumentNotFound() from None
        source = found["_source"]
        if not may_read(principal, source.get(READERS_FIELD)):
            raise DocumentNotFound()
        if includes is not None and READERS_FIELD not in includes:
            source = {key: value for key, value in source.items() if key != READERS_FIELD}
        return source

    def stored_file(self, name: str, doc_id: str, *, principal: Principal) -> StoredFile:
        """The original bytes of an uploaded document, or `NotFound` saying why there are none."""
        source = self._file_source(name, doc_id, principal)
        path = BlobStore.from_settings(self.settings).path(sha256_of(source) or "")
        if not path.exists():
            raise NotFound(f"the stored file of document {doc_id!r} is missing from the blob store")
        meta = source["source"]
        return StoredFile(path, meta.get("mime"), meta.get("filename"))

    def thumbnail(self, name: str, doc_id: str, *, principal: Principal) -> bytes:
        """A JPEG no larger than `thumbnail_side` of an image document."""
        source = self._file_source(name, doc_id, principal)
        if source.get("modality") != "image":
            raise NotFound(f"document {doc_id!r} is {source.get('modality')}, thumbnails exist for images")
        store = BlobStore.from_settings(self.settings)
        return store.thumbnail(sha256_of(source) or "", self.settings.limits.thumbnail_side)

    def _file_source(self, name: str, doc_id: str, principal: Principal) -> dict[str, Any]:
        source = self._readable(name, doc_id, principal, includes=["source", "modality"])
        if not sha256_of(source):
            raise NotFound(f"document {doc_id!r} has no stored file (it was ingested as JSON text)")
        return source

    def decode_example(self, data: bytes, filename: str | None, mime: str | None) -> tuple[str, Any]:
        """(kind, decoded item) of an uploaded query example: an image or an audio clip, within limits."""
        kind = detect(data, filename, mime).modality
        if kind == "image":
            return "image", load_image(data, max_pixels=self.settings.limits.max_image_pixels)
        if kind == "audio":
            return "audio", load_audio(data, max_seconds=min(self.settings.limits.max_audio_seconds, 600))
        raise UnsupportedType(f"query by example takes an image or an audio clip, not {kind}")

    def engine_health(self) -> str:
        """The cluster's health colour, asked with a short timeout (readiness must answer quickly)."""
        return self.es.options(request_timeout=2).cluster.health()["status"]

    # --- search ------------------------------------------------------------------------------------

    @staticmethod
    def _encode_query(name: str, model: str, kind: str, text: str) -> tuple[float, ...]:
        return tuple(float(x) for x in get_encoder(name, model or None).encode([text], kind=kind)[0])

    def search(
        self,
        collection: Collection,
        req: SearchRequest,
        example: tuple[str, Any] | None = None,
        *,
        principal: Principal,
    ) -> dict[str, Any]:
        """`example`: an uploaded (kind, decoded item). Every request sent has the principal's read filter."""
        started = time.perf_counter()
        facets = self._facet_names(req)
        self.collection(collection.name, principal=principal)  # a collection it may not use: 404
        vectors = self.query_vectors(collection, req, example, principal=principal)
        profile, bodies = self.plan(collection, req, vectors, principal=principal)
        if not bodies and not req.query and not vectors:
            raise SearchError("nothing to search for: give `query` (or an image/audio example or `like`)")
        responses = self._msearch(collection.alias, bodies, req.allow_partial)
        rankings = plan.rankings(responses)
        fused_all = fusion.fuse(rankings, profile.fusion)
        cut = cutoff.for_request(fused_all, rankings, profile=profile, req=req, by_example=bool(example))
        fused = cut.hits
        method = fusion.applied_method(rankings, profile.fusion)
        reranked = self.rerank(collection.alias, req, profile, fused, principal=principal)
        hits, page_responses = self._page(
            collection.alias,
            req,
            reranked.hits if reranked else fused,
            responses,
            method=method,
            reranked=reranked,
            access=read_filter(principal),
            vectors=vectors,
        )
        incomplete = plan.incomplete({**responses, **page_responses})
        if incomplete and not req.allow_partial:
            raise SearchIncomplete(_incomplete_message(incomplete))
        return {
            "collection": collection.name,
            "mode": req.mode,
            "from": req.from_,
            "size": req.size,
            "total": len(fused),  # the hits that passed the cut-off
            "cutoff": cut.info,
            "total_lexical": responses.get("lexical", {}).get("hits", {}).get("total", {}).get("value"),
            "fusion": profile.fusion.model_dump() if method != "none" else None,
            "rerank": reranked.summary if reranked else None,
            "took_ms": round((time.perf_counter() - started) * 1000, 2),
            "partial": bool(incomplete),
            "partial_details": incomplete,
            "hits": hits,
            **(
                {"facets": self._facets(collection.alias, req, fused, names=facets, principal=principal)}
                if facets
                else {}
            ),
        }

    def _facet_names(self, req: SearchRequest) -> list[str]:
        """The facets a request asks for, refused (400) before anything runs if the settings forbid one."""
        try:
            return plan.check_facets(req, self.settings.api.facet_fields, self.engine)
        except plan.FacetError as exc:
            raise SearchError(str(exc)) from None

    def _facets(
        self,
        alias: str,
        req: SearchRequest,
        fused: list[fusion.FusedHit],
        *,
        names: list[str],
        principal: Principal,
    ) -> dict[str, Any]:
        """Counts of the fused list by each facet (`plan.facet_request` says what is counted), under the
        principal's read filter like every other request."""
        body = plan.facet_request(req, [h.doc_id for h in fused], names, read_filter(principal))
        if body is None:
            return plan.facet_counts(names, None)
        try:
            resp = self.es.search(index=alias, body=body, allow_partial_search_results=req.allow_partial)
        except ApiError as exc:
            raise _engine_error(
                "counting facets", exc.meta.status, error_reason(exc), req.allow_partial
            ) from None
        return plan.facet_counts(names, resp)

    def plan(
        self,
        collection: Collection,
        req: SearchRequest,
        vectors: dict[str, Any],
        *,
        principal: Principal,
        passages: Sequence[str] | None = None,
    ) -> tuple[Profile, dict[str, dict[str, Any]]]:
        """The profile in force and the sub-query bodies for these query vectors (what `bench.query` sends
        directly, to measure the API against the engine), each holding the principal's read filter.
        `passages`: the encoders to run a passage kNN for (default: the collection's, when it holds any
        passage at all)."""
        if passages is None:
            held = collection.passages and self.holds_passages(collection.alias)
            passages = collection.passages if held else ()
        profile = self.profile(collection, req)
        bodies = plan.subqueries(
            req,
            profile,
            vectors,
            collection.encoders,
            window=self.window(profile, req),
            engine=self.engine,
            passages=passages,
            access=read_filter(principal),
        )
        return profile, bodies

    def holds_passages(self, alias: str) -> bool:
        """Whether any document behind `alias` has passages, asked at most every `PASSAGE_CHECK_S`
        seconds: a collection of short documents then skips the nested passage kNN (its documents are all
        found by their whole-document vectors). A long document's passages that arrive in between are
        searched from the next check on; until then it is found by its document vector."""
        now = time.monotonic()
        known = self._passage_checks.get(alias)
        if known is not None and known[0] > now:
            return known[1]
        resp = self.es.search(
            index=alias,
            query={"nested": {"path": plan.PASSAGES_PATH, "query": {"match_all": {}}}},
            size=0,
            terminate_after=1,
            track_total_hits=1,
        )
        held = bool(resp["hits"]["total"]["value"])
        self._passage_checks = {**self._passage_checks, alias: (now + PASSAGE_CHECK_S, held)}
        return held

    def rerank(
        self,
        alias: str,
        req: SearchRequest,
        profile: Profile,
        fused: list[fusion.FusedHit],
        *,
        principal: Principal,
    ) -> Reranked | None:
        """Reorder the top k fused hits by a cross-encoder, when the request or the profile asks for it."""
        if (
            req.rerank is False
            or (req.rerank is None and profile.rerank is None)
            or not req.query
            or not fused
        ):
            return None
        spec = profile.rerank or Rerank()
        if req.rerank:
            spec = spec.model_copy(update=req.rerank.model_dump(exclude_unset=True))
        model = spec.model or self.settings.models.rerank_model
        started = time.perf_counter()
        window = fused[: spec.top_k]
        texts = self._texts(alias, [h.doc_id for h in window], principal)
        try:
            scores = get_reranker(model).score(req.query, [texts.get(h.doc_id, "") for h in window])
        except EncoderError as exc:
            raise SearchError(str(exc)) from None
        ranked = fusion.blend([h.score for h in window], scores, spec.weight)
        details = {
            window[i].doc_id: {
                "rank": rank,
                "score": scores[i],
                "fused_rank": i + 1,
                "fused_score": window[i].score,
                "final_score": final,
            }
            for rank, (i, final) in enumerate(ranked, start=1)
        }
        hits = [fusion.FusedHit(window[i].doc_id, final, window[i].components) for i, final in ranked]
        summary = {
            "model": model,
            "top_k": spec.top_k,
            "weight": spec.weight,
            "ms": round((time.perf_counter() - started) * 1000, 2),
        }
        return Reranked([*hits, *fused[spec.top_k :]], details, summary)

    def _texts(self, alias: str, ids: list[str], principal: Principal) -> dict[str, str]:
        """Title and content of the rerank window, one request, as the encoders read them."""
        resp = self.es.search(
            index=alias,
            query={"bool": {"filter": [{"ids": {"values": ids}}, *read_filters(principal)]}},
            size=len(ids),
            source_includes=["title", "content"],
        )
        return {h["_id"]: encoder_text(h["_source"]) for h in resp["hits"]["hits"]}

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

    def window(self, profile: Profile, req: SearchRequest) -> int:
        """Each sub-query's list length: the profile's, at least the page's end, at most the cap."""
        window = min(max(profile.rank_window, req.from_ + req.size), self.settings.limits.max_window)
        if req.from_ + req.size > window:
            raise SearchError(f"from + size may not exceed {self.settings.limits.max_window} under fusion")
        return window

    def query_vectors(
        self,
        collection: Collection,
        req: SearchRequest,
        example: tuple[str, Any] | None = None,
        *,
        principal: Principal,
    ) -> dict[str, Any]:
        """Every query vector of a request, encoder name -> vector: the `like` document's stored ones,
        overridden by an uploaded example's, then the text query's for each text tower left.

        `req.encoders` is checked here and applied by the plan (a `like` vector it drops still counts as
        something to search for)."""
        vectors: dict[str, Any] = {}
        if req.like:
            vectors.update(self.like_vectors(collection, req.like, principal=principal))
        if example:
            vectors.update(self.example_vectors(collection, *example))
        if req.mode != "lexical":
            if req.encoders is not None:
                unknown = set(req.encoders) - set(collection.encoders)
                if unknown:
                    raise SearchError(f"unknown encoders for this collection: {', '.join(sorted(unknown))}")
            vectors.update(self._text_vectors(collection, req, skip=set(vectors)))
        return vectors

    def _text_vectors(self, collection: Collection, req: SearchRequest, skip: set[str]) -> dict[str, Any]:
        """The text query through each text tower (cached), except encoders already given a vector."""
        if not req.query:
            return {}
        vectors = {}
        for name, desc in collection.encoders.items():
            wanted = req.encoders is None or name in req.encoders
            if wanted and name not in skip and "text" in desc.get("query_kinds", []):
                try:
                    vectors[name] = list(self.encode_query(name, desc.get("model", ""), "text", req.query))
                except EncoderError as exc:
                    raise SearchError(str(exc)) from None
        return vectors

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

    def like_vectors(self, collection: Collection, doc_id: str, *, principal: Principal) -> dict[str, Any]:
        """The stored vectors of a document the principal may read, to find items similar to it."""
        try:
            source = self._readable(collection.name, doc_id, principal, includes=["vectors"])
        except DocumentNotFound:
            raise SearchNotFound(f"`like`: document {doc_id!r} does not exist") from None
        vectors = source.get("vectors", {})
        if not vectors:
            raise SearchError(f"`like`: document {doc_id!r} has no vectors yet (is it still pending?)")
        return vectors

    def _msearch(
        self, alias: str, bodies: dict[str, dict[str, Any]], allow_partial: bool = True
    ) -> dict[str, dict[str, Any]]:
        """Every sub-query in one round trip; `allow_partial` goes to the engine in each header, so a
        search missing shards fails there (an error item) instead of answering from what it has."""
        if not bodies:
            return {}
        searches: list[dict[str, Any]] = []
        for body in bodies.values():
            searches.extend([{"index": alias, "allow_partial_search_results": allow_partial}, body])
        resp = self.es.msearch(searches=searches)
        out = {}
        for name, item in zip(bodies, resp["responses"], strict=True):
            if "error" in item:
                raise _engine_error(
                    f"{name} sub-query", item.get("status", 500), error_reason(item["error"]), allow_partial
                )
            out[name] = item
        return out

    def _page(
        self,
        alias: str,
        req: SearchRequest,
        fused: list[fusion.FusedHit],
        responses: dict[str, dict[str, Any]],
        *,
        method: str,
        reranked: Reranked | None = None,
        access: dict[str, Any] | None = None,
        vectors: dict[str, Any] | None = None,
    ) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
        """The requested slice of the fused list, each hit with its source, highlights, best passages and
        explanation: the sources and the page's best passages come in one `_msearch` for the page only
        (sub-queries return ids). Also the engine's responses to it for their shard counts: `page` (the
        fetch) and `page passages:<encoder>` (none when the page is empty)."""
        page = fused[req.from_ : req.from_ + req.size]
        if not page:
            return [], {}
        ids = [h.doc_id for h in page]
        bodies = {
            "page": plan.page_fetch(req, ids, self.engine, access),
            **plan.page_passages(req, vectors or {}, responses, ids, engine=self.engine, access=access),
        }
        fetched = self._msearch(alias, bodies, req.allow_partial)
        found = {h["_id"]: h for h in fetched["page"]["hits"]["hits"]}
        passages = plan.passage_hits(fetched)
        hits = [  # a document deleted since the sub-queries ran is left out, not shown empty
            self._hit(h, req.from_ + i + 1, found[h.doc_id], req.explain, method=method, reranked=reranked)
            for i, h in enumerate(page)
            if h.doc_id in found
        ]
        for hit in hits:
            if hit["id"] in passages:
                hit["passages"] = passages[hit["id"]]  # a long document's best passages, with page/time
        return hits, {name if name == "page" else f"page {name}": resp for name, resp in fetched.items()}

    @staticmethod
    def _hit(
        hit: fusion.FusedHit,
        rank: int,
        es_hit: dict[str, Any],
        explain: bool,
        *,
        method: str,
        reranked: Reranked | None = None,
    ) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": hit.doc_id,
            "rank": rank,
            "score": hit.score,
            "source": es_hit["_source"],
        }
        if es_hit.get("highlight"):
            out["highlight"] = es_hit["highlight"]
        matched = es_hit.get("inner_hits", {}).get("segments", {}).get("hits", {}).get("hits", [])
        if matched:  # transcript phrases that match, best first, with their times in the recording
            out["segments"] = [segment["_source"] for segment in matched]
        if explain:
            rerank = reranked.details.get(hit.doc_id) if reranked else None
            out["explanation"] = {
                "fused": {"score": rerank["fused_score"] if rerank else hit.score, "method": method},
                "components": hit.components,
                **({"rerank": rerank} if rerank else {}),
            }
        return out


def _engine_error(what: str, status: int, reason: str, allow_partial: bool) -> SearchError:
    """The error for a failed engine request: the client's fault (4xx), shards unavailable (503: retry
    later, or allow a partial answer), or anything else the engine got wrong (502)."""
    if status < 500:
        return SearchError(f"{what} failed: {reason}")
    if status == 503:
        hint = "" if allow_partial else " (the request set allow_partial: false)"
        return SearchIncomplete(f"{what} failed: shards of the collection are unavailable{hint}: {reason}")
    return SearchBackendError(f"{what} failed: {reason}")


def _incomplete_message(incomplete: list[dict[str, Any]]) -> str:
    """Why a search that had to be whole is refused: which sub-queries missed how many shards."""
    parts = [
        f"{item['subquery']}: {item['total'] - item['successful']} of {item['total']} "
        "shards did not answer" + (", timed out" if item["timed_out"] else "")
        for item in incomplete
    ]
    return (
        "the search could not reach every shard and the request set allow_partial: false ("
        + "; ".join(parts)
        + "); retry later, or allow a partial answer"
    )
