"""Named search profiles stored with a collection (in its index `_meta`), e.g. what `mmsearch tune` learnt.

A search names one with `profile`; the profile called `default` applies when a search names none.
"""

from __future__ import annotations

import re

from flask import Blueprint, jsonify

from core.errors import NotFound
from encoders.allowlist import check_model_ref
from mappings import collections
from search.api import json_object, services
from search.errors import InvalidRequest
from search.schema import Profile

bp = Blueprint("profiles", __name__, url_prefix="/v1/collections/<name>/profiles")

PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _collection(name: str) -> collections.Collection:
    """Read fresh from the cluster (not the per-process cache), since we are about to rewrite `_meta`."""
    svc = services()
    return collections.get(svc.es, svc.settings, name)


@bp.get("")
def list_profiles(name: str):
    return jsonify(collection=name, profiles=_collection(name).profiles)


@bp.get("/<profile>")
def show(name: str, profile: str):
    stored = _collection(name).profiles.get(profile)
    if stored is None:
        raise NotFound(f"collection {name!r} has no search profile {profile!r}")
    return jsonify(name=profile, profile=stored)


@bp.put("/<profile>")
def put(name: str, profile: str):
    if not PROFILE_NAME.match(profile):
        raise InvalidRequest(f"invalid profile name {profile!r}: 1-64 letters, digits, '_', '.', '-'")
    parsed = Profile.model_validate(json_object())
    if parsed.rerank and parsed.rerank.model:  # a registered name or a directory under the models roots
        check_model_ref(services().settings, parsed.rerank.model)
    body = parsed.model_dump(mode="json")
    collection = _collection(name)
    created = profile not in collection.profiles
    _store(collection, {**collection.profiles, profile: body})
    return jsonify(name=profile, profile=body), 201 if created else 200


@bp.delete("/<profile>")
def delete(name: str, profile: str):
    collection = _collection(name)
    if profile not in collection.profiles:
        raise NotFound(f"collection {name!r} has no search profile {profile!r}")
    _store(collection, {key: value for key, value in collection.profiles.items() if key != profile})
    return jsonify(deleted=profile)


def _store(collection: collections.Collection, profiles: dict) -> None:
    svc = services()
    collections.update_meta(svc.es, collection.index, profiles=profiles)
    collections.CACHE.invalidate(collection.name)
