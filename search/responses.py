"""Response models of the HTTP API, for its OpenAPI description (the routes build plain dicts).

They state what every response of a kind carries; objects stay open (`extra="allow"`) where a route adds
detail over time (hit sources, job records), so the description is a contract, not a snapshot.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorBody(BaseModel):
    status: int
    type: str
    message: str


class ErrorResponse(BaseModel):
    """Every error, 4xx or 5xx."""

    error: ErrorBody


class Health(BaseModel):
    status: str


class WhoAmI(BaseModel):
    """The caller's principal; `reader_terms` are the `readers` values it reads (None: an admin reads all)."""

    name: str
    user: str | None
    groups: list[str]
    collections: list[str]
    admin: bool
    scope: str
    reader_terms: list[str] | None


class Ready(BaseModel):
    ready: bool
    checks: dict[str, str]


class CollectionOut(Open):
    name: str
    alias: str
    index: str
    encoders: dict[str, dict[str, Any]]
    extractors: list[str]
    passages: list[str] = []  # encoders with a vector per passage of long texts
    default_readers: list[str] = ["*"]  # readers of documents that name none
    profiles: list[str]
    documents: dict[str, int]
    jobs: dict[str, Any]


class CollectionList(BaseModel):
    collections: list[str]


class CollectionDeleted(BaseModel):
    deleted: str
    indices: list[str]


class Requeued(BaseModel):
    requeued: int
    tasks: int


class DocumentsAdded(BaseModel):
    indexed: int
    ids: list[str]
    errors: list[dict[str, Any]]
    tasks: int
    status: str


class DocumentOut(BaseModel):
    id: str
    source: dict[str, Any]


class Deleted(BaseModel):
    deleted: str
    blobs_deleted: int = 0


class ReadersSet(BaseModel):
    """A document's new readers, and the ids updated: the document and a mail's attachments."""

    id: str
    readers: list[str]
    updated: list[str]


class DeletedMany(BaseModel):
    deleted: list[str]
    not_found: list[str]
    blobs_deleted: int


class MediaUrls(BaseModel):
    """Links to a hit's stored file; signed (`?expires=&p=&sig=`, `p` the principal it was minted for)
    when the API has keys, so a page can put them in `<img>`/`<audio>` without a header."""

    content: str
    thumbnail: str | None = None


class Passage(Open):
    """One of a long document's best passages for the query: where it lies in `content`, on which page
    or at which time, its kNN score and highlighted fragments."""

    text: str
    start: int
    end: int
    score: float
    highlight: list[str] = []
    page: int | None = None
    page_end: int | None = None
    time_start: float | None = None
    time_end: float | None = None


class Hit(Open):
    id: str
    rank: int
    score: float
    source: dict[str, Any]
    highlight: dict[str, list[str]] | None = None
    explanation: dict[str, Any] | None = None
    urls: MediaUrls | None = None
    segments: list[dict[str, Any]] | None = None  # matched transcript phrases, with times and words
    passages: list[Passage] | None = None  # a long document's best passages, best first


class PartialDetail(BaseModel):
    """A sub-query (or the page fetch) that did not hear from every shard in time."""

    subquery: str
    timed_out: bool
    total: int
    successful: int
    skipped: int
    failed: int
    reasons: list[str]


class FacetBucket(BaseModel):
    """One value of a facet and how many matches have it; a date bucket also gives its range filter."""

    value: str
    count: int
    range: dict[str, str] | None = None


class Facet(BaseModel):
    """A facet's counts; `field` is the filter that narrows a search to one of its values."""

    field: str
    buckets: list[FacetBucket]


class SearchResponse(Open):
    collection: str
    mode: str
    from_: int = Field(alias="from")
    size: int
    total: int  # the hits that passed the relevance cut-off (all of the fused windows with `cutoff: false`)
    total_lexical: int | None
    # Whether a cut-off applied, by which rule (`rule`: the final list's; `merit`: each sub-query list's),
    # learned (`source: profile`) or the default, how many hits there were `before` it and how many it `cut`.
    cutoff: dict[str, Any] | None = None
    fusion: dict[str, Any] | None
    took_ms: float
    # Some shards failed, were missing or timed out: the hits come from the rest (details say where).
    partial: bool
    partial_details: list[PartialDetail]
    hits: list[Hit]
    facets: dict[str, Facet] | None = None  # when the request asked for them


class FileOutcome(Open):
    status: str
    filename: str | None = None
    id: str | None = None
    error: str | None = None


class FilesUploaded(BaseModel):
    files: list[FileOutcome]
    tasks: int


class ProfileList(BaseModel):
    collection: str
    profiles: dict[str, dict[str, Any]]


class ProfileOut(BaseModel):
    name: str
    profile: dict[str, Any]


class Job(Open):
    id: str
    status: str


class JobList(BaseModel):
    jobs: list[Job]
