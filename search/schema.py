"""Request models of the search API: what a client may send, validated before anything runs."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

FILTER_FIELD = re.compile(
    r"^(metadata\.[\w.-]{1,128}|modality|lang|doc_id|ingest\.status|source\.(mime|filename|sha256)"
    r"|title\.keyword|@timestamp|updated_at|readers|collection)$"
)
RANGE_KEYS = {"gt", "gte", "lt", "lte"}
# What a search may count its matches by (`facets`); a `metadata.<key>` one must also be listed in the
# `facet_fields` setting, so only fields an operator chose (never internal ones) are ever aggregated.
FACET_NAME = re.compile(r"^(modality|mime|date|collection|metadata\.[\w.-]{1,128})$")
DEFAULT_FACETS = ("modality", "mime", "date")  # what `facets: true` counts (with the metadata ones allowed)
Scalar = str | int | float | bool
# Relative weights of sub-queries and lexical fields: finite, never negative (a NaN would poison every score).
Weight = Annotated[float, Field(ge=0, le=1000, allow_inf_nan=False)]


class Fusion(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Default: z-score linear fusion with equal weights. On SciFact's training judgments it beat RRF
    # (k=60) by ~0.02 nDCG@10 zero-shot; RRF stays one parameter away for score scales that z-scores miss.
    method: Literal["rrf", "linear"] = "linear"
    k: float = Field(60.0, gt=0, le=10_000)
    weights: dict[str, Weight] | None = None
    normalization: Literal["minmax", "zscore", "l2"] = "zscore"


class RerankRequest(BaseModel):
    """`rerank: {"top_k": 50}`: a cross-encoder reorders the top k fused hits (the model is the profile's).

    What a request leaves out comes from the profile's stage (`mmsearch rerank` learns `weight`)."""

    model_config = ConfigDict(extra="forbid")

    top_k: int = Field(50, ge=1, le=200)
    # The cross-encoder's share of the window's final score, the fused score the rest (both min-max scaled).
    weight: float = Field(1.0, gt=0, le=1)


class Rerank(RerankRequest):
    """A profile's reranking stage: the model (a name, or a directory under the models roots) and depth."""

    model: str | None = Field(None, max_length=512)  # None: the server's `rerank_model`


class Cutoff(BaseModel):
    """Where a ranked list ends (`search.cutoff` applies it): keep the hits whose score clears the rule.

    `top_k`: the first `value` hits; `ratio`: score >= value x the top score (lists of positive scores:
    BM25, similarities); `gap`: score >= top score - value; `min_score`: score >= value (a fixed
    threshold, what Elasticsearch's kNN `similarity` and `min_score` do)."""

    model_config = ConfigDict(extra="forbid")

    rule: Literal["top_k", "ratio", "gap", "min_score"]
    value: float = Field(allow_inf_nan=False, ge=-1e6, le=1e6)

    @model_validator(mode="after")
    def _check_value(self) -> Cutoff:
        if self.rule == "top_k" and (self.value < 1 or self.value != int(self.value)):
            raise ValueError("a top_k cut-off keeps a whole number of hits, at least 1")
        if self.rule == "ratio" and not 0 < self.value <= 1:
            raise ValueError("a ratio cut-off is a share of the top score in (0, 1]")
        if self.rule == "gap" and self.value < 0:
            raise ValueError("a gap cut-off is a distance below the top score, never negative")
        return self


CutoffMode = Literal["lexical", "vector", "hybrid"]


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    query: str | None = Field(None, max_length=4096)
    mode: Literal["lexical", "vector", "hybrid"] = "hybrid"
    fusion: Fusion | None = None
    filters: dict[str, Any] = Field(default_factory=dict)
    modalities: list[Literal["text", "image", "audio", "document"]] | None = None
    encoders: list[str] | None = None  # restrict vector sub-queries to these encoders
    from_: int = Field(0, alias="from", ge=0, le=10_000)
    size: int = Field(10, ge=1, le=100)
    highlight: bool = False
    explain: bool = False
    profile: str | None = Field(None, max_length=64)
    boosts: dict[Literal["title", "content"], Weight] | None = None
    num_candidates: int | None = Field(None, ge=1, le=10_000)
    rank_window: int | None = Field(None, ge=1, le=10_000)
    like: str | None = Field(None, max_length=512)  # find items similar to this document id
    # A cross-encoder over the top fused hits; `false` turns off a profile's reranking for this search.
    rerank: RerankRequest | Literal[False] | None = None
    # Counts of the matches by modality, file type, date, ...: `true` for the default facets, or names.
    facets: bool | list[str] = False
    # false: every hit of the fused windows, as before cut-offs existed (`total` counts them all).
    cutoff: bool = Field(
        True,
        description="Apply the relevance cut-off (the profile's learned one, else the default for text "
        "queries); false returns every hit.",
    )
    allow_partial: bool = Field(
        True,
        description="When shards are missing or time out, answer from the rest (`partial: true` says so); "
        "false: answer 503 instead.",
    )

    @field_validator("facets")
    @classmethod
    def _check_facets(cls, facets: bool | list[str]) -> bool | list[str]:
        if isinstance(facets, list):
            if len(facets) > 8 or len(set(facets)) != len(facets):
                raise ValueError("at most 8 distinct facets")
            for name in facets:
                if not FACET_NAME.match(name):
                    raise ValueError(
                        f"no facet {name!r}; use modality, mime, date, collection or metadata.<key>"
                    )
        return facets

    def facet_names(self) -> list[str]:
        """The facets asked for, in order: none, the defaults (`true`) or the listed ones."""
        if self.facets is True:
            return list(DEFAULT_FACETS)
        return list(self.facets) if self.facets else []

    @field_validator("filters")
    @classmethod
    def _check_filters(cls, filters: dict[str, Any]) -> dict[str, Any]:
        if len(filters) > 32:
            raise ValueError("at most 32 filters")
        for name, value in filters.items():
            if not FILTER_FIELD.match(name):
                raise ValueError(
                    f"cannot filter on {name!r}; use metadata.<key>, modality, lang, ingest.status, ..."
                )
            if isinstance(value, dict):
                if (
                    not value
                    or set(value) - RANGE_KEYS
                    or not all(isinstance(v, Scalar) for v in value.values())
                ):
                    raise ValueError(f"filter {name!r}: a range takes gt/gte/lt/lte with scalar values")
            elif isinstance(value, list):
                if not value or len(value) > 1024 or not all(isinstance(v, Scalar) for v in value):
                    raise ValueError(f"filter {name!r}: a list takes 1-1024 scalar values")
            elif not isinstance(value, Scalar):
                raise ValueError(f"filter {name!r}: expected a scalar, a list or a range object")
        return filters


class Profile(BaseModel):
    """Search parameters learned by `mmsearch tune` (or set by hand), stored with the collection."""

    model_config = ConfigDict(extra="forbid")

    fusion: Fusion = Field(default_factory=Fusion)
    boosts: dict[Literal["title", "content"], Weight] = Field(
        default_factory=lambda: {"title": 1.0, "content": 1.0}
    )
    num_candidates: int = Field(100, ge=1, le=10_000)
    rank_window: int = Field(100, ge=1, le=10_000)
    rerank: Rerank | None = None  # on by default for this profile's searches (`mmsearch rerank` decides)
    # Where each mode's result set ends (learned by `mmsearch tune`); a mode left out gets the default.
    cutoff: dict[CutoffMode, Cutoff] = Field(default_factory=dict)
    scores: dict[str, Any] = Field(default_factory=dict)  # how it was measured (free form)
