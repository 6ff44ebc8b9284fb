"""Create, list, inspect and delete collections."""

from __future__ import annotations

from flask import Blueprint, jsonify, request
from pydantic import BaseModel, ConfigDict, Field

from core.es import bulk, scan
from encoders import available, available_extractors
from ingest.blobrefs import release, shas_of
from ingest.lifecycle import requeue_update
from mappings import collections
from search.api import json_object, services
from search.errors import InvalidRequest
from workers.tasks import enqueue

bp = Blueprint("collections", __name__, url_prefix="/v1/collections")


class CollectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., max_length=63)
    encoders: list[str] | None = Field(None, min_length=1, max_length=16)
    models: dict[str, str] | None = None  # encoder name -> model (hub name or directory under MODELS_DIR)
    extractors: list[str] | None = None
    passages: bool = True  # long texts get passage vectors (see README, "Long documents")


def describe(name: str) -> dict:
    svc = services()
    info = collections.get(svc.es, svc.settings, name)
    return {
        "name": info.name,
        "alias": info.alias,
        "index": info.index,
        "encoders": info.encoders,
        "extractors": info.extractors,
        "passages": info.passages,
        "profiles": sorted(info.profiles),
        "documents": collections.status_counts(svc.es, info.alias),
        "jobs": info.jobs,
    }


@bp.post("")
def create():
    spec = CollectionIn.model_validate(json_object())
    unknown = set(spec.encoders or []) - set(available())
    if unknown:
        raise InvalidRequest(f"unknown encoders {sorted(unknown)}; available: {available()}")
    unknown = set(spec.extractors or []) - set(available_extractors())
    if unknown:
        raise InvalidRequest(f"unknown extractors {sorted(unknown)}; available: {available_extractors()}")
    svc = services()
    collections.create(
        svc.es, svc.settings, spec.name, spec.encoders, spec.models, spec.extractors, spec.passages
    )
    return jsonify(describe(spec.name)), 201


@bp.get("")
def list_all():
    svc = services()
    return jsonify(collections=collections.list_names(svc.es, svc.settings))


@bp.get("/<name>")
def show(name: str):
    return jsonify(describe(name))


@bp.delete("/<name>")
def delete(name: str):
    """Delete the collection's indices, then the stored files no other collection references."""
    svc = services()
    alias = collections.alias_for(svc.settings, name)
    shas = set(shas_of(svc.es, alias))  # every generation holds the same files
    indices = collections.delete(svc.es, svc.settings, name)
    blobs = release(svc.es, svc.settings, shas)
    return jsonify(deleted=name, indices=indices, blobs_deleted=len(blobs))


@bp.post("/<name>/requeue")
def requeue(name: str):
    """Send documents to the workers again: `pending` ones queued over `older_than` seconds ago (lost
    messages, e.g. a purged queue) or, with `status=failed`, the failed ones after fixing the cause."""
    svc = services()
    status = request.args.get("status", "pending")
    if status not in ("pending", "failed"):
        raise InvalidRequest("status must be pending or failed")
    try:
        older_than = max(0, int(request.args.get("older_than", 600)))
    except ValueError:
        raise InvalidRequest("older_than must be a number of seconds") from None
    collection = collections.get(svc.es, svc.settings, name)
    query = {
        "bool": {
            "filter": [
                {"term": {"ingest.status": status}},
                {"range": {"ingest.queued_at": {"lte": f"now-{older_than}s"}}},
            ]
        }
    }
    hits = scan(svc.es, index=collection.index, query={"query": query}, _source=["modality"])
    docs = [(hit["_id"], hit["_source"].get("modality", "text")) for hit in hits]
    if status == "failed":  # workers encode pending documents only
        actions = (
            {"_op_type": "update", "_index": collection.index, "_id": i, "doc": requeue_update()}
            for i, _ in docs
        )
        bulk(svc.es, actions, raise_on_error=False, refresh="wait_for")
    return jsonify(requeued=len(docs), tasks=enqueue(collection.index, docs))
