"""Re-encode jobs, the work: a collection's documents encoded by new models in a new physical index,
then one atomic alias switch. The job's states and record are `workers.reencode_job`; the copying is
`workers.reencode_copy`.

Why a new index: a vector field holds one model's vectors only, so a model change means the next
generation `<alias>-00000N` whose `_meta` names the new models (encode tasks read that `_meta`).
Searches keep hitting the old generation through the alias until the switch.

The steps, each moving the job on only from the state it expects:
  copying   `reencode_copy` copies every document into the new index as `pending`, vectors dropped,
            queueing encode batches as it goes; with the same models (`keep_vectors`: a mapping
            upgrade) encoded documents are copied with their vectors and only the others queued.
  encoding  `reencode_finish` polls until the new index has no `pending` document, copies what was
            ingested into the old index meanwhile, then moves the alias in one `update_aliases` call.
  switched  after a grace longer than the API's collection cache (a writer may still hold the old
            index name), the old index is write-blocked, what was ingested or deleted there since is
            replayed onto the new one, and the old index is retired (no rollback copy is kept).
  done | failed | cancelled   (a job failed or cancelled before the switch leaves the collection as
            it was and retires the half-built index).

Retiring = close now, delete a visibility timeout later. An encode batch that read its documents
before the close may write after it; into a closed index that write fails, into a deleted one it
would auto-create a bare index of the same name. The delay outlasts any batch (the setting's contract).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from celery import Task
from elastic_transport import ConnectionError as ESConnectionError
from elastic_transport import ConnectionTimeout
from elasticsearch import ApiError, BadRequestError, NotFoundError

from core.config import Settings, get_settings
from core.es import Client, engine_of, get_client
from encoders import Encoder, allowlist, get_encoder
from ingest.lifecycle import PENDING, now_iso
from mappings import catalog, index_body
from mappings.catalog import CollectionError, physical_index, status_counts
from workers.celery_app import app
from workers.reencode_copy import ago, copy_documents, delete_removed, since
from workers.reencode_job import (
    BEFORE_SWITCH,
    JobNotFound,
    JobState,
    ReencodeConflict,
    ReencodeError,
    active_jobs,
    create_job,
    find_job,
    finish,
    state_of,
    trim_jobs,
    update_job,
)

log = logging.getLogger(__name__)

POLL_S = 3.0
SWITCH_GRACE_S = 3 * catalog.CACHE.ttl
# Replays look back this far before the copy's start: unrefreshed writes, API/worker clock skew.
LOOKBACK = timedelta(seconds=60)
# Copies written this close to the switch are not checked for deletion (a direct write to the new
# index, stamped by a clock running behind, must not be mistaken for a deleted original).
CLOCK_SKEW = timedelta(seconds=5)


# --- starting -------------------------------------------------------------------------------------


def start_reencode(
    es: Client, settings: Settings, collection_name: str, models: dict[str, str]
) -> dict[str, Any]:
    """Create the next generation for `models` (encoder name -> model) and queue the copy."""
    coll = catalog.get(es, settings, collection_name)
    _check_request(settings, coll, models)
    target = _free_index(es, settings, collection_name, generation(coll.index) + 1)
    encoders = _load_encoders(coll, models)
    body = index_body(collection_name, encoders, settings, engine_of(es), meta=carried_meta(coll.meta))
    try:
        es.indices.create(index=target, **body)
    except BadRequestError as exc:
        if exc.error != "resource_already_exists_exception":
            raise
        raise ReencodeConflict(
            f"index {target} already exists: another re-encode of {collection_name!r} is starting"
        ) from None
    job = {
        "id": uuid.uuid4().hex[:12],
        "kind": "reencode",
        "status": JobState.COPYING,
        "source_index": coll.index,
        "target_index": target,
        "models": {enc.name: enc.version for enc in encoders},
        # The same models (a mapping upgrade): encoded documents move with their vectors.
        "keep_vectors": all(enc.version == coll.encoders[enc.name].get("version") for enc in encoders),
        "total": es.count(index=coll.index)["count"],
        "started_at": now_iso(),
    }
    create_job(es, settings, collection_name, job)
    reencode_copy.apply_async((collection_name, job["id"]))
    return job


def keeps_vectors(job: Mapping[str, Any]) -> bool:
    """Whether the job copies encoded documents with their vectors (jobs from before say nothing: no)."""
    return bool(job.get("keep_vectors"))


def generation(index: str) -> int:
    return int(index.rsplit("-", 1)[1])


def _free_index(es: Client, settings: Settings, name: str, start: int) -> str:
    """The first generation from `start` with no index (a retired one may still await deletion)."""
    while es.indices.exists(index=physical_index(settings, name, start)):
        start += 1
    return physical_index(settings, name, start)


def carried_meta(meta: Mapping[str, Any]) -> dict[str, Any]:
    """What the new generation's `_meta` inherits (extractors, passages); not what its vectors mean, nor
    profiles and jobs, which live in the state index under the collection's name."""
    dropped = ("collection", "encoders", "profiles", "jobs")
    return {key: value for key, value in meta.items() if key not in dropped}


def check_model_ref(settings: Settings, ref: str, *, encoder: str) -> None:
    """A model registered for `encoder` or a directory under the models roots (`encoders.allowlist`)."""
    try:
        allowlist.check_model_ref(settings, ref, encoder=encoder)
    except allowlist.ModelNotAllowed as exc:
        raise ReencodeError(str(exc)) from None


def _check_request(settings: Settings, coll: catalog.Collection, models: dict[str, str]) -> None:
    active = active_jobs(coll.jobs)
    if active:
        raise ReencodeConflict(f"collection {coll.name!r} has a re-encode job running: {active[0]}")
    unknown = sorted(set(models) - set(coll.encoders))
    if unknown:
        raise ReencodeError(
            f"collection {coll.name!r} has no encoders {unknown}; it has {sorted(coll.encoders)}"
        )
    for encoder, ref in models.items():
        check_model_ref(settings, ref, encoder=encoder)


def _load_encoders(coll: catalog.Collection, models: dict[str, str]) -> list[Encoder]:
    """The collection's encoders with the new models, loaded now so a bad model is a 400, not a job."""
    encoders = []
    for name, desc in coll.encoders.items():
        encoder = get_encoder(name, models.get(name) or desc.get("model") or None)
        try:
            encoder.dims  # noqa: B018 - loads the model
        except Exception as exc:  # noqa: BLE001 - any loading error means the client named a bad model
            raise ReencodeError(f"cannot load model {encoder.model_ref!r} for {name!r}: {exc}") from None
        encoders.append(encoder)
    return encoders


# --- ending early ---------------------------------------------------------------------------------


def cancel_job(es: Client, settings: Settings, name: str, job_id: str) -> dict[str, Any]:
    """Cancel a job before its switch (409 after it, or when it got there while we asked)."""
    find_job(es, settings, name, job_id)  # 404s
    stopped = _stop(es, settings, name, job_id, state=JobState.CANCELLED, reason="cancelled by request")
    if stopped is None:
        job = find_job(es, settings, name, job_id)
        raise ReencodeConflict(
            f"job {job_id} is {job['status']}; only a job before its switch can be cancelled"
        )
    return stopped


def stop_job(
    es: Client, settings: Settings, name: str, job_id: str, *, state: JobState, reason: str
) -> dict[str, Any]:
    """End a job as failed or cancelled (a finished one is left as it is)."""
    find_job(es, settings, name, job_id)  # 404s
    stopped = _stop(es, settings, name, job_id, state=state, reason=reason)
    return stopped or find_job(es, settings, name, job_id)


def _stop(
    es: Client, settings: Settings, name: str, job_id: str, *, state: JobState, reason: str
) -> dict[str, Any] | None:
    """The state change first (so a switch racing it cannot go ahead), then, when it came before the
    switch, the half-built index is retired."""
    ended = finish(es, settings, name, job_id, state=state, reason=reason)
    if ended is None:
        return None
    left, job = ended
    if left in BEFORE_SWITCH:
        retire_index(es, settings, job["target_index"])
    trim_jobs(es, settings, name)
    return job


# --- the steps the tasks run ----------------------------------------------------------------------


def run_copy(es: Client, settings: Settings, name: str, job_id: str) -> bool:
    """The bulk copy; returns whether the job goes on (a duplicate delivery or a cancel stops it)."""
    job = find_job(es, settings, name, job_id)
    if state_of(job) != JobState.COPYING:
        return False
    sync_from = ago(LOOKBACK)
    copied = copy_documents(
        es, job["source_index"], job["target_index"], {"match_all": {}}, keep_vectors=keeps_vectors(job)
    )
    fields = {"status": JobState.ENCODING, "copied": copied, "copied_at": now_iso(), "sync_from": sync_from}
    moved = update_job(es, settings, name, job_id, expected={JobState.COPYING}, change=lambda _: fields)
    return moved is not None


def advance(es: Client, settings: Settings, name: str, job_id: str) -> float | None:
    """One step after the copy; returns seconds until the next step, or None when the job is over."""
    job = find_job(es, settings, name, job_id)
    if state_of(job) == JobState.ENCODING:
        return _switch_when_encoded(es, settings, name, job)
    if state_of(job) == JobState.SWITCHED:
        _point_alias(es, settings, name, job)  # again, when the switch failed after its record
        waited = (datetime.now(UTC) - datetime.fromisoformat(job["switched_at"])).total_seconds()
        if waited < SWITCH_GRACE_S:
            return SWITCH_GRACE_S - waited
        _retire_source(es, settings, name, job)
    return None


def _switch_when_encoded(es: Client, settings: Settings, name: str, job: Mapping[str, Any]) -> float | None:
    source, target = job["source_index"], job["target_index"]
    es.indices.refresh(index=target)
    if status_counts(es, target).get(PENDING, 0):
        return POLL_S
    sync_from = ago(LOOKBACK)
    caught_up = copy_documents(es, source, target, since(job["sync_from"]), keep_vectors=keeps_vectors(job))
    fields = {
        "status": JobState.SWITCHED,
        "switched_at": now_iso(),
        "sync_from": sync_from,
        "caught_up": caught_up,
    }
    # The record first: a cancel that got in before it wins, and the alias is left alone.
    switched = update_job(
        es, settings, name, job["id"], expected={JobState.ENCODING}, change=lambda _: fields
    )
    if switched is None:
        return None
    _point_alias(es, settings, name, switched)
    return SWITCH_GRACE_S


def _point_alias(es: Client, settings: Settings, name: str, job: Mapping[str, Any]) -> None:
    """Move the alias from the job's source to its target in one call, unless it is there already."""
    source, target = job["source_index"], job["target_index"]
    alias = catalog.alias_for(settings, name)
    if es.indices.exists_alias(name=alias, index=target):
        return
    es.indices.update_aliases(
        actions=[
            {"remove": {"index": source, "alias": alias}},
            {"add": {"index": target, "alias": alias, "is_write_index": True}},
        ]
    )
    catalog.CACHE.invalidate(name)
    log.info("re-encode %s: %s now serves %s", job["id"], target, alias)


def _retire_source(es: Client, settings: Settings, name: str, job: Mapping[str, Any]) -> None:
    """Replay what reached the old index after the last catch-up, then retire it."""
    source, target = job["source_index"], job["target_index"]
    es.indices.put_settings(index=source, settings={"index.blocks.write": True})
    es.indices.refresh(index=source)  # the replay's scan sees only refreshed writes
    caught_up = copy_documents(es, source, target, since(job["sync_from"]), keep_vectors=keeps_vectors(job))
    before = (datetime.fromisoformat(job["switched_at"]) - CLOCK_SKEW).isoformat(timespec="milliseconds")
    removed = delete_removed(es, source, target, before)
    retired = retire_index(es, settings, source)

    def done(stored: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "caught_up": stored.get("caught_up", 0) + caught_up,
            "removed": removed,
            "status": JobState.DONE,
            "finished_at": now_iso(),
            "retired": retired,
        }

    if update_job(es, settings, name, job["id"], expected={JobState.SWITCHED}, change=done) is not None:
        trim_jobs(es, settings, name)
        log.info("re-encode %s done; %s retired", job["id"], source)


def retire_index(es: Client, settings: Settings, index: str) -> dict[str, str]:
    """Close `index` now and delete it after the visibility timeout (see the module's docstring)."""
    es.indices.close(index=index, ignore_unavailable=True)
    drop_index.apply_async((index,), countdown=settings.workers.visibility_timeout)
    delete_at = datetime.now(UTC) + timedelta(seconds=settings.workers.visibility_timeout)
    return {"index": index, "closed_at": now_iso(), "delete_at": delete_at.isoformat(timespec="seconds")}


# --- Celery tasks ---------------------------------------------------------------------------------


class JobTask(Task):
    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:  # noqa: ANN001 - Celery's signature
        name, job_id = args[0], args[1]
        log.error("re-encode job %s of %s failed: %s", job_id, name, exc)
        try:
            reason = f"{type(exc).__name__}: {exc}"
            stop_job(get_client(), get_settings(), name, job_id, state=JobState.FAILED, reason=reason)
        except (CollectionError, JobNotFound, NotFoundError):
            log.warning("job %s of %s is gone; nothing to record", job_id, name)


TASK_OPTIONS: dict[str, Any] = {
    "bind": True,
    "base": JobTask,
    "acks_late": True,
    "autoretry_for": (ESConnectionError, ConnectionTimeout, ApiError),
    "retry_backoff": 2,
    "retry_backoff_max": 120,
    "retry_jitter": True,
}  # max_retries: from settings when the app is configured (`workers.celery_app.from_settings`)


@app.task(name="mmsearch.reencode_copy", **TASK_OPTIONS)
def reencode_copy(self: Task, name: str, job_id: str) -> None:
    if run_copy(get_client(), get_settings(), name, job_id):
        reencode_finish.apply_async((name, job_id), countdown=POLL_S)


@app.task(name="mmsearch.reencode_finish", **TASK_OPTIONS)
def reencode_finish(self: Task, name: str, job_id: str) -> None:
    """Polls by re-queueing itself with a countdown, so a solo worker goes on encoding meanwhile."""
    delay = advance(get_client(), get_settings(), name, job_id)
    if delay is not None:
        reencode_finish.apply_async((name, job_id), countdown=delay)


@app.task(
    name="mmsearch.drop_index",
    acks_late=True,
    autoretry_for=(ESConnectionError, ConnectionTimeout),
    retry_backoff=2,
)
def drop_index(index: str) -> None:
    """Delete a retired index, unless an alias points at it again (someone rolled back by hand)."""
    es = get_client()
    try:
        aliases = es.indices.get_alias(index=index)[index]["aliases"]
    except NotFoundError:
        return
    if aliases:
        log.warning("not deleting %s: aliases %s point at it", index, sorted(aliases))
        return
    es.indices.delete(index=index)
    log.info("deleted retired index %s", index)
