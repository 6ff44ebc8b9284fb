"""A re-encode job's state machine without services: the table every step's record change is checked
against (the record store itself is exercised on the real engine in tests/test_metastore.py)."""

from __future__ import annotations

import pytest

from ingest.lifecycle import IllegalTransition
from workers.reencode_job import (
    ACTIVE,
    BEFORE_SWITCH,
    TRANSITIONS,
    JobState,
    active_jobs,
    check_transition,
)

LIFE = [JobState.COPYING, JobState.ENCODING, JobState.SWITCHED, JobState.DONE]


def test_states_are_stored_as_the_strings_records_already_hold() -> None:
    assert [s.value for s in JobState] == ["copying", "encoding", "switched", "done", "cancelled", "failed"]
    assert set(TRANSITIONS) == set(JobState)


def test_a_job_goes_forward_one_step_at_a_time() -> None:
    for old, new in zip(LIFE, LIFE[1:], strict=False):
        assert check_transition(old, new) is new
    with pytest.raises(IllegalTransition):
        check_transition("copying", "switched")  # the alias never moves before the encoding
    with pytest.raises(IllegalTransition):
        check_transition("switched", "encoding")


def test_a_cancel_only_before_the_switch_and_a_failure_any_time_before_the_end() -> None:
    for state in BEFORE_SWITCH:
        assert check_transition(state, "cancelled") is JobState.CANCELLED
    with pytest.raises(IllegalTransition):
        check_transition("switched", "cancelled")
    for state in ACTIVE:
        assert check_transition(state, "failed") is JobState.FAILED


@pytest.mark.parametrize("final", ["done", "cancelled", "failed"])
def test_final_states_are_final(final: str) -> None:
    assert check_transition(final, final) == final  # a step updating its own record, no transition
    for other in set(JobState) - {JobState(final)}:
        with pytest.raises(IllegalTransition):
            check_transition(final, other)


def test_an_unknown_state_is_refused() -> None:
    with pytest.raises(ValueError):
        check_transition("copying", "paused")


def test_active_jobs_are_those_not_finished() -> None:
    jobs = {
        "a": {"id": "a", "status": "done"},
        "b": {"id": "b", "status": "switched"},
        "c": {"id": "c", "status": "cancelled"},
    }
    assert active_jobs(jobs) == ["b"]
