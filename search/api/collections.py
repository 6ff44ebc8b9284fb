"""Create, list, inspect and delete collections."""

from __future__ import annotations

from flask import Blueprint, jsonify
from pydantic import BaseModel, ConfigDict, Field

from encoders import available, available_extractors
from mmsearch import collections
from search.api import json_object, services
from search.errors import ApiProblem

bp = Blueprint("collections", __name__, url_prefix="/v1/collections")


class CollectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., max_length=63)
    encoders: list[str] | None = Field(None, min_length=1, max_length=16)
    models: dict[str, str] | None = None  # encoder name -> model (hub name or directory under MODELS_DIR)
    extractors: list[str] | None = None


def describe(name: str) -> dict:
    svc = services()
    info = collections.get(svc.es, svc.settings, name)
    return {
        "name": info.name,
        "alias": info.alias,
        "index": info.index,
        "encoders": info.encoders,
        "extractors": info.extractors,
        "profiles": sorted(info.profiles),
        "documents": collections.status_counts(svc.es, info.alias),
        "jobs": info.meta.get("jobs", {}),
    }


@bp.post("")
def create():
    spec = CollectionIn.model_validate(json_object())
    unknown = set(spec.encoders or []) - set(available())
    if unknown:
        raise ApiProblem(400, f"unknown encoders {sorted(unknown)}; available: {available()}")
    unknown = set(spec.extractors or []) - set(available_extractors())
    if unknown:
        raise ApiProblem(400, f"unknown extractors {sorted(unknown)}; available: {available_extractors()}")
    svc = services()
    collections.create(svc.es, svc.settings, spec.name, spec.encoders, spec.models, spec.extractors)
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
    svc = services()
    return jsonify(deleted=name, indices=collections.delete(svc.es, svc.settings, name))
