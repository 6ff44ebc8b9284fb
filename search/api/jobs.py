"""Re-encode jobs over HTTP: start one, follow it, cancel it before its alias switch.

The work runs on the Celery workers (`workers.reencode`); these routes only start it and read the job
record, a document of the state index (`mappings.metastore`) keyed by the collection's name.
"""

from __future__ import annotations

from typing import Annotated

from flask import Blueprint, jsonify
from pydantic import BaseModel, ConfigDict, Field

from search.api import json_object, principal, services

bp = Blueprint("jobs", __name__, url_prefix="/v1/collections/<name>")

ModelRef = Annotated[str, Field(min_length=1, max_length=1024, pattern=r"^[^\x00-\x1f]+$")]


class ReencodeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: dict[str, ModelRef] = Field(..., min_length=1, max_length=16)  # encoder name -> model


def _usable(name: str) -> str:
    """The collection's name when the principal may use it; else the 404 of a missing collection."""
    services().search.collection(name, principal=principal())
    return name


@bp.post("/reencode")
def start(name: str):
    spec = ReencodeIn.model_validate(json_object())
    job = services().jobs.start(_usable(name), spec.models)
    return jsonify(job), 202, {"Location": f"/v1/collections/{name}/jobs/{job['id']}"}


@bp.get("/jobs")
def list_all(name: str):
    return jsonify(jobs=services().jobs.list(_usable(name)))


@bp.get("/jobs/<job_id>")
def show(name: str, job_id: str):
    return jsonify(services().jobs.show(_usable(name), job_id))


@bp.delete("/jobs/<job_id>")
def cancel(name: str, job_id: str):
    return jsonify(services().jobs.cancel(_usable(name), job_id))
