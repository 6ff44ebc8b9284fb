"""Named search profiles of a collection, e.g. what `mmsearch tune` learnt: one document each in the
state index (`mappings.metastore`), so PUTs of different names never overwrite each other.

A search names one with `profile`; the profile called `default` applies when a search names none.
"""

from __future__ import annotations

import re

from flask import Blueprint, jsonify

from core.errors import NotFound
from encoders.allowlist import check_model_ref
from mappings import collections, metastore
from search.api import json_object, services
from search.errors import InvalidRequest
from search.schema import Profile

bp = Blueprint("profiles", __name__, url_prefix="/v1/collections/<name>/profiles")

PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _collection(name: str) -> collections.Collection:
    """Read fresh from the cluster (not the per-process cache): a profile PUT by another process shows."""
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
    svc = services()
    collections.get(svc.es, svc.settings, name)  # 404 when there is no such collection
    created = metastore.put(svc.es, svc.settings, name, kind=metastore.PROFILE, name=profile, body=body)
    collections.CACHE.invalidate(name)
    return jsonify(name=profile, profile=body), 201 if created else 200


@bp.delete("/<profile>")
def delete(name: str, profile: str):
    svc = services()
    collections.get(svc.es, svc.settings, name)  # 404 when there is no such collection
    stored = PROFILE_NAME.match(profile) and metastore.delete(
        svc.es, svc.settings, name, kind=metastore.PROFILE, name=profile
    )
    if not stored:
        raise NotFound(f"collection {name!r} has no search profile {profile!r}")
    collections.CACHE.invalidate(name)
    return jsonify(deleted=profile)
