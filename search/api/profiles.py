"""Named search profiles of a collection, e.g. what `mmsearch tune` learnt: one document each in the
state index (`mappings.metastore`), so PUTs of different names never overwrite each other.

A search names one with `profile`; the profile called `default` applies when a search names none.
Every search of the collection carries its profiles (the collection cache), so their size and number
are bounded.
"""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Blueprint, jsonify

from core.errors import NotFound
from encoders.allowlist import RERANK, check_model_ref
from search.api import json_object, principal, services
from search.errors import InvalidRequest
from search.schema import Profile

bp = Blueprint("profiles", __name__, url_prefix="/v1/collections/<name>/profiles")

PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_PROFILE_BYTES = 64_000  # as JSON; `mmsearch tune` writes a few hundred bytes


class ProfileTooLarge(InvalidRequest):
    status = 413


def _bounded(body: dict[str, Any]) -> dict[str, Any]:
    size = len(json.dumps(body).encode())
    if size > MAX_PROFILE_BYTES:
        raise ProfileTooLarge(f"the profile is {size} bytes as JSON; at most {MAX_PROFILE_BYTES} (64 kB)")
    return body


@bp.get("")
def list_profiles(name: str):
    return jsonify(collection=name, profiles=services().ingest.profiles(name, principal=principal()))


@bp.get("/<profile>")
def show(name: str, profile: str):
    stored = services().ingest.profiles(name, principal=principal()).get(profile)
    if stored is None:
        raise NotFound(f"collection {name!r} has no search profile {profile!r}")
    return jsonify(name=profile, profile=stored)


@bp.put("/<profile>")
def put(name: str, profile: str):
    if not PROFILE_NAME.match(profile):
        raise InvalidRequest(f"invalid profile name {profile!r}: 1-64 letters, digits, '_', '.', '-'")
    parsed = Profile.model_validate(json_object())
    if parsed.rerank and parsed.rerank.model:  # a registered name or a directory under the models roots
        check_model_ref(services().settings, parsed.rerank.model, encoder=RERANK)
    body = _bounded(parsed.model_dump(mode="json"))
    created = services().ingest.put_profile(name, profile, body, principal=principal())
    return jsonify(name=profile, profile=body), 201 if created else 200


@bp.delete("/<profile>")
def delete(name: str, profile: str):
    deleted = PROFILE_NAME.match(profile) and services().ingest.delete_profile(
        name, profile, principal=principal()
    )
    if not deleted:
        raise NotFound(f"collection {name!r} has no search profile {profile!r}")
    return jsonify(deleted=profile)
