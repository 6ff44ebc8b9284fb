"""Re-encode jobs: a collection's documents encoded by new models in a new physical index, then one
atomic alias switch.

Why a new index: a vector field holds one model's vectors only, so a model change means the next
generation `<alias>-00000N` whose `_meta` names the new models (encode tasks read that `_meta`).
Searches keep hitting the old generation through the alias until the switch.

The job is a document of the state index (`mappings.metastore`) keyed by the collection's name, so the
alias switch moves nothing and `GET /v1/collections/<c>` shows it. Every step changes it read-modify-write
under optimistic concurrency, and only from the status the step expects: a cancel racing the switch
leaves exactly one of them done.

Lifecycle:
  copying   `reencode_copy` scans the old index (no `_reindex` on this Elasticsearch build) and
            bulk-writes every document into the new one as `pending`, vectors dropped, queueing encode
            batches as it goes.
  encoding  `reencode_finish` polls until the new index has no `pending` document, copies what was
            ingested into the old index meanwhile, then moves the alias in one `update_aliases` call.
  switched  after a grace longer than the API's collection cache (a writer may still hold the old
            index name), the old index is write-blocked, what was ingested or deleted there since is
            replayed onto the new one, and the old index is retired (no rollback copy is kept).
  done | failed | cancelled   (a job failed or cancelled before the switch leaves the collection as
            it was and retires the half-built index).
Catch-up keys on `@timestamp`, which every (re)ingest sets and encoding leaves alone: a document of the
old index is copied again only when it is newer than the new index's copy, so replays are idempotent.

Retiring = close now, delete a visibility timeout later. An encode batch that read its documents
before the close may write after it; into a closed index that write fails, into a deleted one it
would auto-create a bare index of the same name. The delay outlasts any batch (the setting's contract).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any

from celery import Task
from elastic_transport import ConnectionError as ESConnectionError
from elastic_transport import ConnectionTimeout
from elasticsearch import ApiError, BadRequestError, Elasticsearch, NotFoundError

from core.config import Settings, get_settings
from core.errors import Conflict, MmsearchError, NotFound
from core.es import bulk, engine_of, get_client, scan
from encoders import Encoder, allowlist, get_encoder
from ingest.lifecycle import PENDING, cap_error, now_iso, requeued
from mappings import collections, index_body, metastore
from mappings.collections import CollectionError, physical_index, status_counts
from workers.celery_app import app
from workers.tasks import enqueue

log = logging.getLogger(__name__)

POLL_S = 3.0
SWITCH_GRACE_S = 3 * collections.CACHE.ttl
# Replays look back this far before the copy's start: unrefreshed writes, API/worker clock skew.
LOOKBACK = timedelta(seconds=60)
# Copies written this close to the switch are not checked for deletion (a direct write to the new
# index, stamped by a clock running behind, must not be mistaken for a deleted original).
CLOCK_SKEW = timedelta(seconds=5)
BEFORE_SWITCH = ("copying", "encoding")
ACTIVE = (*BEFORE_SWITCH, "switched")
KEEP_FINISHED_JOBS = 20
CHUNK = 500
EPOCH = datetime.min.replace(tzinfo=UTC)


class ReencodeError(MmsearchError):
    """A re-encode request the client can fix (unknown encoder, model path, unloadable model)."""


class ReencodeConflict(Conflict):
    """Another job is running, or the job is past the point the request needs."""


class JobNotFound(NotFound):
    """No job of that id in the collection's records."""


# --- starting -------------------------------------------------------------------------------------


def start_reencode(
    es: Elasticsearch, settings: Settings, collection_name: str, models: dict[str, str]
) -> dict[str, Any]:
    """Create the next generation for `models` (encoder name -> model) and queue the copy."""
    coll = collections.for_update(es, settings, collection_name)  # profiles left in `_meta` move first
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
        "status": "copying",
        "source_index": coll.index,
        "target_index": target,
        "models": {enc.name: enc.version for enc in encoders},
        "total": es.count(index=coll.index)["count"],
        "started_at": now_iso(),
    }
    metastore.create(es, settings, collection_name, metastore.JOB, job["id"], job)
    reencode_copy.apply_async((collection_name, job["id"]))
    return job


def generation(index: str) -> int:
    return int(index.rsplit("-", 1)[1])


def _free_index(es: Elasticsearch, settings: Settings, name: str, start: int) -> str:
    """The first generation from `start` with no index (a retired one may still await deletion)."""
    while es.indices.exists(index=physical_index(settings, name, start)):
        start += 1
    return physical_index(settings, name, start)


def carried_meta(meta: dict[str, Any]) -> dict[str, Any]:
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


def _check_request(settings: Settings, coll: collections.Collection, models: dict[str, str]) -> None:
    active = [job["id"] for job in coll.jobs.values() if job.get("status") in ACTIVE]
    if active:
        raise ReencodeConflict(f"collection {coll.name!r} has a re-encode job running: {active[0]}")
    unknown = sorted(set(models) - set(coll.encoders))
    if unknown:
        raise ReencodeError(
            f"collection {coll.name!r} has no encoders {unknown}; it has {sorted(coll.encoders)}"
        )
    for encoder, ref in models.items():
        check_model_ref(settings, ref, encoder=encoder)


def _load_encoders(coll: collections.Collection, models: dict[str, str]) -> list[Encoder]:
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


# --- job records ----------------------------------------------------------------------------------


def find_job(es: Elasticsearch, settings: Settings, name: str, job_id: str) -> dict[str, Any]:
    job = collections.get(es, settings, name).jobs.get(job_id)
    if job is None:
        raise JobNotFound(f"collection {name!r} has no job {job_id!r}")
    return job


def update_job(
    es: Elasticsearch,
    settings: Settings,
    name: str,
    job_id: str,
    expected: tuple[str, ...],
    change: Callable[[dict[str, Any]], None],
) -> dict[str, Any] | None:
    """Apply `change` to the stored job if its status is one of `expected`, read-modify-write under
    optimistic concurrency (retried on a conflict); returns the job written, or None when it had moved
    on (another step, a cancel) or is gone."""
    collections.for_update(es, settings, name)  # a job still in `_meta` moves to the state index first

    def apply(job: dict[str, Any]) -> bool:
        if job.get("status") not in expected:
            return False
        change(job)
        return True

    return metastore.update(es, settings, name, metastore.JOB, job_id, apply)


def trim_jobs(es: Elasticsearch, settings: Settings, name: str) -> None:
    """Forget all but the last `KEEP_FINISHED_JOBS` finished jobs."""
    jobs = metastore.read(es, settings, name)[metastore.JOB].values()
    finished = sorted((j for j in jobs if j.get("status") not in ACTIVE), key=lambda j: j["started_at"])
    for old in finished[:-KEEP_FINISHED_JOBS]:
        metastore.delete(es, settings, name, metastore.JOB, old["id"])


def list_jobs(es: Elasticsearch, settings: Settings, name: str) -> list[dict[str, Any]]:
    jobs = collections.get(es, settings, name).jobs
    return sorted(jobs.values(), key=lambda j: j["started_at"], reverse=True)


def job_view(es: Elasticsearch, settings: Settings, name: str, job_id: str) -> dict[str, Any]:
    """The record plus live progress from the target's status counts."""
    job = find_job(es, settings, name, job_id)
    view = dict(job)
    if job["status"] == "done":
        view["progress"] = 1.0
    if job["status"] in ACTIVE:
        counts = status_counts(es, job["target_index"])
        view["documents"] = counts
        finished = counts.get("encoded", 0) + counts.get("failed", 0)
        view["progress"] = round(min(1.0, finished / max(1, job["total"], counts["total"])), 4)
    return view


def cancel_job(es: Elasticsearch, settings: Settings, name: str, job_id: str) -> dict[str, Any]:
    job = find_job(es, settings, name, job_id)
    stopped = None
    if job["status"] in BEFORE_SWITCH:
        stopped = _stop(es, settings, name, job_id, "cancelled", "cancelled by request", BEFORE_SWITCH)
    if stopped is None:  # past its switch, or it got there while we asked
        job = find_job(es, settings, name, job_id)
        raise ReencodeConflict(
            f"job {job_id} is {job['status']}; only a job before its switch can be cancelled"
        )
    return stopped


def stop_job(
    es: Elasticsearch, settings: Settings, name: str, job_id: str, status: str, reason: str
) -> dict[str, Any]:
    """End a job as failed or cancelled (a finished one is left as it is)."""
    find_job(es, settings, name, job_id)  # 404s
    return _stop(es, settings, name, job_id, status, reason, ACTIVE) or find_job(es, settings, name, job_id)


def _stop(
    es: Elasticsearch,
    settings: Settings,
    name: str,
    job_id: str,
    status: str,
    reason: str,
    expected: tuple[str, ...],
) -> dict[str, Any] | None:
    """The status change first (so a switch racing it cannot go ahead), then, when it came before the
    switch, the half-built index is retired."""
    was: dict[str, str] = {}

    def change(job: dict[str, Any]) -> None:
        was["status"] = job["status"]
        job.update(status=status, error=cap_error(reason), finished_at=now_iso())

    job = update_job(es, settings, name, job_id, expected, change)
    if job is None:
        return None
    if was["status"] in BEFORE_SWITCH:
        retire_index(es, settings, job["target_index"])
    trim_jobs(es, settings, name)
    return job


# --- copying and catching up ----------------------------------------------------------------------


def copy_documents(es: Elasticsearch, source: str, target: str, query: dict[str, Any]) -> int:
    """Write the `query` documents of `source` that `target` lacks or holds older into `target` as
    `pending`, and queue their encoding; returns how many. Safe to repeat."""
    hits = scan(es, index=source, query={"query": query}, size=CHUNK, source_excludes=["vectors", "passages"])
    copied = 0
    for chunk in _chunks(hits, CHUNK):
        held = _timestamps(es, target, [hit["_id"] for hit in chunk])
        newer = [hit for hit in chunk if _stamp(hit["_source"]) > held.get(hit["_id"], EPOCH)]
        if newer:
            bulk(es, (_pending_action(target, hit) for hit in newer))
            enqueue(target, [(hit["_id"], hit["_source"].get("modality", "text")) for hit in newer])
            copied += len(newer)
    return copied


def delete_removed(es: Elasticsearch, source: str, target: str, before: str) -> int:
    """Delete from `target` the copies (written before `before`) whose original left `source`."""
    query = {"range": {"@timestamp": {"lt": before}}}
    hits = scan(es, index=target, query={"query": query}, size=CHUNK, source=False)
    removed = 0
    for chunk in _chunks(hits, CHUNK):
        ids = [hit["_id"] for hit in chunk]
        docs = es.mget(index=source, ids=ids, source=False)["docs"]
        gone = [doc["_id"] for doc in docs if not doc.get("found")]
        if gone:
            bulk(es, ({"_op_type": "delete", "_index": target, "_id": i} for i in gone))
            removed += len(gone)
    return removed


def _pending_action(target: str, hit: dict[str, Any]) -> dict[str, Any]:
    return {"_op_type": "index", "_index": target, "_id": hit["_id"], "_source": requeued(hit["_source"])}


def _timestamps(es: Elasticsearch, index: str, ids: list[str]) -> dict[str, datetime]:
    docs = es.mget(index=index, ids=ids, source_includes=["@timestamp"])["docs"]
    return {doc["_id"]: _stamp(doc["_source"]) for doc in docs if doc.get("found")}


def _stamp(source: dict[str, Any]) -> datetime:
    value = source.get("@timestamp")
    if not value:
        return EPOCH
    stamp = datetime.fromisoformat(value)
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def _since(moment: str) -> dict[str, Any]:
    return {"range": {"@timestamp": {"gte": moment}}}


def _ago(delta: timedelta) -> str:
    return (datetime.now(UTC) - delta).isoformat(timespec="milliseconds")


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


# --- the steps the tasks run ----------------------------------------------------------------------


def run_copy(es: Elasticsearch, settings: Settings, name: str, job_id: str) -> bool:
    """The bulk copy; returns whether the job goes on (a duplicate delivery or a cancel stops it)."""
    job = find_job(es, settings, name, job_id)
    if job["status"] != "copying":
        return False
    sync_from = _ago(LOOKBACK)
    copied = copy_documents(es, job["source_index"], job["target_index"], {"match_all": {}})

    def encoding(job: dict[str, Any]) -> None:
        job.update(status="encoding", copied=copied, copied_at=now_iso(), sync_from=sync_from)

    return update_job(es, settings, name, job_id, ("copying",), encoding) is not None


def advance(es: Elasticsearch, settings: Settings, name: str, job_id: str) -> float | None:
    """One step after the copy; returns seconds until the next step, or None when the job is over."""
    job = find_job(es, settings, name, job_id)
    if job["status"] == "encoding":
        return _switch_when_encoded(es, settings, name, job)
    if job["status"] == "switched":
        _point_alias(es, settings, name, job)  # again, when the switch failed after its record
        waited = (datetime.now(UTC) - datetime.fromisoformat(job["switched_at"])).total_seconds()
        if waited < SWITCH_GRACE_S:
            return SWITCH_GRACE_S - waited
        _retire_source(es, settings, name, job)
    return None


def _switch_when_encoded(
    es: Elasticsearch, settings: Settings, name: str, job: dict[str, Any]
) -> float | None:
    source, target = job["source_index"], job["target_index"]
    es.indices.refresh(index=target)
    if status_counts(es, target).get(PENDING, 0):
        return POLL_S
    sync_from = _ago(LOOKBACK)
    caught_up = copy_documents(es, source, target, _since(job["sync_from"]))

    def switched(job: dict[str, Any]) -> None:
        job.update(status="switched", switched_at=now_iso(), sync_from=sync_from, caught_up=caught_up)

    # The record first: a cancel that got in before it wins, and the alias is left alone.
    job = update_job(es, settings, name, job["id"], ("encoding",), switched)
    if job is None:
        return None
    _point_alias(es, settings, name, job)
    return SWITCH_GRACE_S


def _point_alias(es: Elasticsearch, settings: Settings, name: str, job: dict[str, Any]) -> None:
    """Move the alias from the job's source to its target in one call, unless it is there already."""
    source, target = job["source_index"], job["target_index"]
    alias = collections.alias_for(settings, name)
    if es.indices.exists_alias(name=alias, index=target):
        return
    es.indices.update_aliases(
        actions=[
            {"remove": {"index": source, "alias": alias}},
            {"add": {"index": target, "alias": alias, "is_write_index": True}},
        ]
    )
    collections.CACHE.invalidate(name)
    log.info("re-encode %s: %s now serves %s", job["id"], target, alias)


def _retire_source(es: Elasticsearch, settings: Settings, name: str, job: dict[str, Any]) -> None:
    """Replay what reached the old index after the last catch-up, then retire it."""
    source, target = job["source_index"], job["target_index"]
    es.indices.put_settings(index=source, settings={"index.blocks.write": True})
    es.indices.refresh(index=source)  # the replay's scan sees only refreshed writes
    caught_up = copy_documents(es, source, target, _since(job["sync_from"]))
    before = (datetime.fromisoformat(job["switched_at"]) - CLOCK_SKEW).isoformat(timespec="milliseconds")
    removed = delete_removed(es, source, target, before)
    retired = retire_index(es, settings, source)

    def done(job: dict[str, Any]) -> None:
        job["caught_up"] = job.get("caught_up", 0) + caught_up
        job.update(removed=removed, status="done", finished_at=now_iso(), retired=retired)

    if update_job(es, settings, name, job["id"], ("switched",), done) is not None:
        trim_jobs(es, settings, name)
        log.info("re-encode %s done; %s retired", job["id"], source)


def retire_index(es: Elasticsearch, settings: Settings, index: str) -> dict[str, str]:
    """Close `index` now and delete it after the visibility timeout (see the module's docstring)."""
    es.indices.close(index=index, ignore_unavailable=True)
    drop_index.apply_async((index,), countdown=settings.visibility_timeout)
    delete_at = datetime.now(UTC) + timedelta(seconds=settings.visibility_timeout)
    return {"index": index, "closed_at": now_iso(), "delete_at": delete_at.isoformat(timespec="seconds")}


# --- Celery tasks ---------------------------------------------------------------------------------


class JobTask(Task):
    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:  # noqa: ANN001 - Celery's signature
        name, job_id = args[0], args[1]
        log.error("re-encode job %s of %s failed: %s", job_id, name, exc)
        try:
            stop_job(get_client(), get_settings(), name, job_id, "failed", f"{type(exc).__name__}: {exc}")
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
    "max_retries": get_settings().task_max_retries,
}


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
    max_retries=get_settings().task_max_retries,
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
