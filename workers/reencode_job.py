"""A re-encode job's record: its states, the transitions between them, and its store.

    copying --> encoding --> switched --> done
       |           |            |
       +-----------+------------+--> failed          (copying | encoding) --> cancelled

`copying`: the old generation's documents are written into the new one as `pending`. `encoding`: the
workers encode them; the alias has not moved. `switched`: the alias points at the new generation; the old
one is retired after a grace. A job failed or cancelled before its switch leaves the collection as it was.
`done`, `failed` and `cancelled` are final.

The record is a document of the state index (`mappings.metastore`) keyed by the collection's name, so the
alias switch moves nothing and `GET /v1/collections/<c>` shows it. Every change is read-modify-write under
`if_seq_no`/`if_primary_term` and only from the states the step expects: a cancel racing the switch
leaves exactly one of them done. A change that would break the table above raises `IllegalTransition`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from enum import StrEnum
from typing import Any

from core.config import Settings
from core.errors import Conflict, MmsearchError, NotFound
from core.es import Client
from ingest.lifecycle import IllegalTransition, cap_error, now_iso
from mappings import catalog, metastore
from mappings.catalog import status_counts


class JobState(StrEnum):
    """A job's `status` as stored (str-valued: records written before this enum read the same)."""

    COPYING = "copying"
    ENCODING = "encoding"
    SWITCHED = "switched"
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"


TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.COPYING: frozenset({JobState.ENCODING, JobState.CANCELLED, JobState.FAILED}),
    JobState.ENCODING: frozenset({JobState.SWITCHED, JobState.CANCELLED, JobState.FAILED}),
    JobState.SWITCHED: frozenset({JobState.DONE, JobState.FAILED}),
    JobState.DONE: frozenset(),
    JobState.CANCELLED: frozenset(),
    JobState.FAILED: frozenset(),
}
BEFORE_SWITCH = frozenset({JobState.COPYING, JobState.ENCODING})
ACTIVE = frozenset({*BEFORE_SWITCH, JobState.SWITCHED})
KEEP_FINISHED_JOBS = 20


def check_transition(old: JobState | str, new: JobState | str) -> JobState:
    """`new` as a state, or IllegalTransition when the table has no edge from `old` to it (staying in a
    state is no transition: a step may update its own counters)."""
    old_state, new_state = JobState(old), JobState(new)
    if new_state != old_state and new_state not in TRANSITIONS[old_state]:
        raise IllegalTransition(f"a re-encode job cannot go from {old_state} to {new_state}")
    return new_state


def state_of(job: Mapping[str, Any]) -> JobState:
    return JobState(job["status"])


class ReencodeError(MmsearchError):
    """A re-encode request the client can fix (unknown encoder, model path, unloadable model)."""


class ReencodeConflict(Conflict):
    """Another job is running, or the job is past the point the request needs."""


class JobNotFound(NotFound):
    """No job of that id in the collection's records."""


# --- the store ------------------------------------------------------------------------------------


def create_job(es: Client, settings: Settings, name: str, job: Mapping[str, Any]) -> bool:
    """Store a new job record (it starts `copying`); returns whether it was written."""
    if state_of(job) != JobState.COPYING:
        raise IllegalTransition(f"a re-encode job starts {JobState.COPYING}, not {job['status']}")
    return metastore.create(es, settings, name, kind=metastore.JOB, name=job["id"], body=dict(job))


def find_job(es: Client, settings: Settings, name: str, job_id: str) -> dict[str, Any]:
    job = catalog.get(es, settings, name).jobs.get(job_id)
    if job is None:
        raise JobNotFound(f"collection {name!r} has no job {job_id!r}")
    return job


Change = Callable[[Mapping[str, Any]], Mapping[str, Any]]  # the stored job -> the fields to set


def update_job(
    es: Client,
    settings: Settings,
    name: str,
    job_id: str,
    *,
    expected: Collection[str],
    change: Change,
) -> dict[str, Any] | None:
    """Set the fields `change` returns on the stored job if its status is one of `expected`,
    read-modify-write under optimistic concurrency (retried on a conflict); returns the job written, or
    None when it had moved on (another step, a cancel) or is gone."""

    def apply(job: Mapping[str, Any]) -> dict[str, Any] | None:
        if job.get("status") not in expected:
            return None
        updated = {**job, **change(job)}
        check_transition(state_of(job), state_of(updated))
        return updated

    return metastore.update(es, settings, name, kind=metastore.JOB, name=job_id, change=apply)


def finish(
    es: Client, settings: Settings, name: str, job_id: str, *, state: JobState, reason: str
) -> tuple[JobState, dict[str, Any]] | None:
    """End a job as failed or cancelled (a cancel only before the switch): (the state it left, the
    record written), or None when it was not in a state that can end so any more."""
    left: list[JobState] = []  # the state the winning read found (the last `change` call)

    def change(job: Mapping[str, Any]) -> dict[str, Any]:
        left.append(state_of(job))
        return {"status": state, "error": cap_error(reason), "finished_at": now_iso()}

    expected = BEFORE_SWITCH if state == JobState.CANCELLED else ACTIVE
    job = update_job(es, settings, name, job_id, expected=expected, change=change)
    return None if job is None else (left[-1], job)


def trim_jobs(es: Client, settings: Settings, name: str) -> None:
    """Forget all but the last `KEEP_FINISHED_JOBS` finished jobs."""
    jobs = metastore.read(es, settings, name)[metastore.JOB].values()
    finished = sorted((j for j in jobs if j.get("status") not in ACTIVE), key=lambda j: j["started_at"])
    for old in finished[:-KEEP_FINISHED_JOBS]:
        metastore.delete(es, settings, name, kind=metastore.JOB, name=old["id"])


def list_jobs(es: Client, settings: Settings, name: str) -> list[dict[str, Any]]:
    jobs = catalog.get(es, settings, name).jobs
    return sorted(jobs.values(), key=lambda j: j["started_at"], reverse=True)


def active_jobs(jobs: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The ids of the jobs not finished yet (a collection runs one at a time)."""
    return [job["id"] for job in jobs.values() if job.get("status") in ACTIVE]


def job_view(es: Client, settings: Settings, name: str, job_id: str) -> dict[str, Any]:
    """The record plus live progress from the target's status counts."""
    job = find_job(es, settings, name, job_id)
    view = dict(job)
    if state_of(job) == JobState.DONE:
        view["progress"] = 1.0
    if state_of(job) in ACTIVE:
        counts = status_counts(es, job["target_index"])
        view["documents"] = counts
        finished = counts.get("encoded", 0) + counts.get("failed", 0)
        view["progress"] = round(min(1.0, finished / max(1, job["total"], counts["total"])), 4)
    return view
