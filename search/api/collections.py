"""Create, list, inspect and delete collections; send their documents to the workers again."""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, jsonify, request
from pydantic import BaseModel, ConfigDict, Field

from encoders import available, available_extractors
from search.api import json_object, principal, readers_value, services
from search.errors import InvalidRequest

bp = Blueprint("collections", __name__, url_prefix="/v1/collections")


class CollectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., max_length=63)
    encoders: list[str] | None = Field(None, min_length=1, max_length=16)
    models: dict[str, str] | None = None  # encoder name -> model (hub name or directory under MODELS_DIR)
    extractors: list[str] | None = None
    passages: bool = True  # long texts get passage vectors (see README, "Long documents")
    default_readers: list[Any] | None = Field(None, max_length=1000)  # of documents that name none
    # Quotas (README, "Quotas"): 0 = unlimited, unset = the global default (MMSEARCH_COLLECTION_MAX_*).
    max_documents: int | None = Field(None, ge=0, le=2**62)
    max_bytes: int | None = Field(None, ge=0, le=2**62)


@bp.post("")
def create():
    spec = CollectionIn.model_validate(json_object())
    unknown = set(spec.encoders or []) - set(available())
    if unknown:
        raise InvalidRequest(f"unknown encoders {sorted(unknown)}; available: {available()}")
    unknown = set(spec.extractors or []) - set(available_extractors())
    if unknown:
        raise InvalidRequest(f"unknown extractors {sorted(unknown)}; available: {available_extractors()}")
    described = services().ingest.create_collection(
        spec.name,
        principal=principal(),
        default_readers=readers_value(spec.default_readers, "default_readers"),
        encoders=spec.encoders,
        models=spec.models,
        extractors=spec.extractors,
        passages=spec.passages,
        quota=spec.model_dump(include={"max_documents", "max_bytes"}, exclude_none=True),
    )
    return jsonify(described), 201


@bp.get("")
def list_all():
    return jsonify(collections=services().ingest.list_collections(principal=principal()))


@bp.get("/<name>")
def show(name: str):
    return jsonify(services().ingest.describe_collection(name, principal=principal()))


@bp.delete("/<name>")
def delete(name: str):
    """Delete the collection's indices and state, then the stored files no other collection references."""
    return jsonify(services().ingest.delete_collection(name, principal=principal()))


@bp.post("/<name>/requeue")
def requeue(name: str):
    """Send documents to the workers again: `pending` ones queued over `older_than` seconds ago (lost
    messages, e.g. a purged queue) or, with `status=failed`, the failed ones after fixing the cause."""
    status = request.args.get("status", "pending")
    if status not in ("pending", "failed"):
        raise InvalidRequest("status must be pending or failed")
    older_than = request.args.get("older_than", "600")
    if not re.fullmatch(r"[0-9]{1,9}", older_than):
        raise InvalidRequest("older_than must be a whole number of seconds")
    documents, tasks = services().ingest.requeue(
        name, principal=principal(), status=status, older_than=int(older_than)
    )
    return jsonify(requeued=documents, tasks=tasks)
