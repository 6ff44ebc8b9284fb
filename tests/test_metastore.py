"""Collection state (search profiles, re-encode jobs) under concurrent writers, on the real engine.

Profiles and jobs used to live in the physical index's mapping `_meta`, which the engine replaces as a
whole: two writers reading the same `_meta` lost one of their writes.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from click.testing import CliRunner

from client.api import ApiClient, ApiClientError
from core.config import Settings
from core.es import Client
from mappings import catalog, metastore
from mmsearch.cli import main
from workers import reencode_job
from workers.migrate import migrate

pytestmark = pytest.mark.integration
WRITERS = 8


@pytest.fixture
def light(api: ApiClient) -> Iterator[str]:
    """A collection whose only encoder needs no model (profiles and jobs do not care)."""
    name = f"t-meta-{uuid.uuid4().hex[:8]}"
    api.create_collection(name, encoders=["phash"])
    yield name
    if api.collection_exists(name):
        api.delete_collection(name)


def profile_body(i: int) -> dict:
    return {"fusion": {"method": "rrf", "k": 10 + i}}


def test_concurrent_puts_of_different_profiles_all_land(api: ApiClient, api_url: str, light: str) -> None:
    start = threading.Barrier(WRITERS)

    def put(i: int) -> None:
        client = ApiClient(api_url)  # its own session: requests sessions are not thread-safe
        start.wait()
        client.request("PUT", f"/v1/collections/{light}/profiles/p{i}", json=profile_body(i))

    with ThreadPoolExecutor(WRITERS) as pool:
        list(pool.map(put, range(WRITERS)))
    stored = api.request("GET", f"/v1/collections/{light}/profiles")["profiles"]
    lost = sorted({f"p{i}" for i in range(WRITERS)} - set(stored))
    assert not lost, f"{len(lost)} of {WRITERS} concurrent profile PUTs lost: {lost}"
    assert all(stored[f"p{i}"]["fusion"]["k"] == 10 + i for i in range(WRITERS))
    names = api.request("GET", "/v1/collections")["collections"]
    assert light in names and not [n for n in names if "." in n]  # the state index is no collection


def stored_items(es: Client, settings: Settings, name: str) -> int:
    index = metastore.index_name(settings)
    es.indices.refresh(index=index, ignore_unavailable=True)
    return es.count(index=index, query={"term": {"collection": name}}, ignore_unavailable=True)["count"]


def fake_job(job_id: str, status: str = "encoding") -> dict[str, Any]:
    return {"id": job_id, "kind": "reencode", "status": status, "started_at": "2024-01-01T00:00:00+00:00"}


def test_concurrent_updates_of_one_job_all_land(es: Client, settings: Settings, light: str) -> None:
    """Two writers each bump their own counter of the same job record: no increment is lost."""
    metastore.create(
        es, settings, light, kind=metastore.JOB, name="j1", body={**fake_job("j1"), "a": 0, "b": 0}
    )
    rounds = 12

    def bump(key: str) -> None:
        for _ in range(rounds):
            changed = reencode_job.update_job(
                es, settings, light, "j1", expected={"encoding"}, change=lambda job: {key: job[key] + 1}
            )
            assert changed is not None

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(bump, ["a", "b"]))
    job = reencode_job.find_job(es, settings, light, "j1")
    assert (job["a"], job["b"]) == (rounds, rounds)


def test_a_cancel_racing_the_switch_leaves_one_outcome(es: Client, settings: Settings, light: str) -> None:
    """Both steps change the record only from `encoding`: exactly one of them happens."""
    for attempt in range(4):
        job_id = f"race{attempt}"
        metastore.create(es, settings, light, kind=metastore.JOB, name=job_id, body=fake_job(job_id))
        start = threading.Barrier(2)

        def move(status: str, job_id: str = job_id, start: threading.Barrier = start) -> bool:
            start.wait()
            moved = reencode_job.update_job(
                es, settings, light, job_id, expected={"encoding"}, change=lambda _: {"status": status}
            )
            return moved is not None

        with ThreadPoolExecutor(2) as pool:
            outcomes = dict(
                zip(["switched", "cancelled"], pool.map(move, ["switched", "cancelled"]), strict=True)
            )
        assert sum(outcomes.values()) == 1, outcomes
        winner = next(status for status, won in outcomes.items() if won)
        assert reencode_job.find_job(es, settings, light, job_id)["status"] == winner


def test_a_collection_made_before_the_state_index_keeps_its_profiles_and_jobs(
    api: ApiClient, es: Client, settings: Settings, light: str
) -> None:
    """Profiles and jobs in `_meta` (as older versions wrote them) are read from there until the one-off
    migration (run at worker start-up) moves them; one deleted afterwards does not come back from
    `_meta`, and a second run moves nothing."""
    index = api.collection(light)["index"]
    old = {"fusion": {"method": "rrf", "k": 7}}
    catalog.update_meta(es, index, profiles={"old": old, "gone": old}, jobs={"j0": fake_job("j0", "done")})
    assert api.request("GET", f"/v1/collections/{light}/profiles")["profiles"] == {"old": old, "gone": old}
    assert [job["id"] for job in api.request("GET", f"/v1/collections/{light}/jobs")["jobs"]] == ["j0"]
    assert stored_items(es, settings, light) == 0  # reads do not migrate

    assert migrate(settings, threading.Event())  # what a starting worker runs
    assert stored_items(es, settings, light) == 3  # old, gone, j0
    meta = catalog.index_meta(es, index)
    assert not meta.get("profiles") and not meta.get("jobs")
    assert catalog.migrate_legacy_state(es, settings).get(light) is None  # nothing left to move

    api.request("PUT", f"/v1/collections/{light}/profiles/new", json=profile_body(1))
    api.request("DELETE", f"/v1/collections/{light}/profiles/gone")
    assert sorted(api.request("GET", f"/v1/collections/{light}/profiles")["profiles"]) == ["new", "old"]
    assert api.collection(light)["jobs"]["j0"]["status"] == "done"
    assert stored_items(es, settings, light) == 3  # old, new, j0


def test_the_migration_keeps_an_item_written_since(
    api: ApiClient, es: Client, settings: Settings, light: str
) -> None:
    """A profile PUT before the migration ran is newer than the `_meta` one of the same name: it wins,
    and the other `_meta` items still move (here by `mmsearch migrate`)."""
    index = api.collection(light)["index"]
    catalog.update_meta(es, index, profiles={"p": profile_body(1), "q": profile_body(2)})
    api.request("PUT", f"/v1/collections/{light}/profiles/p", json=profile_body(5))
    ran = CliRunner().invoke(main, ["migrate"])  # `mmsearch migrate`, the by-hand way
    assert ran.exit_code == 0, ran.output
    assert f"{light}: 2 profiles/jobs moved" in ran.output
    stored = api.request("GET", f"/v1/collections/{light}/profiles")["profiles"]
    assert stored["p"]["fusion"]["k"] == 15 and stored["q"]["fusion"]["k"] == 12


def test_deleting_a_collection_deletes_its_state(
    api: ApiClient, es: Client, settings: Settings, light: str
) -> None:
    api.request("PUT", f"/v1/collections/{light}/profiles/default", json=profile_body(0))
    metastore.create(es, settings, light, kind=metastore.JOB, name="j1", body=fake_job("j1", "done"))
    assert stored_items(es, settings, light) == 2
    api.delete_collection(light)
    assert stored_items(es, settings, light) == 0
    with pytest.raises(ApiClientError) as err:
        api.request("PUT", f"/v1/collections/{light}/profiles/default", json=profile_body(0))
    assert err.value.status == 404
    assert stored_items(es, settings, light) == 0


@pytest.mark.slow
def test_profiles_survive_a_reencode_alias_switch(api: ApiClient, es: Client, settings: Settings) -> None:
    name = f"t-meta-re-{uuid.uuid4().hex[:8]}"
    api.create_collection(name, encoders=["text"])
    try:
        docs = [{"id": str(i), "text": f"Note {i} about the tides of the northern sea."} for i in range(3)]
        api.add_documents(name, docs, refresh=True)
        api.wait_encoded(name, timeout=120)
        api.request("PUT", f"/v1/collections/{name}/profiles/default", json=profile_body(3))
        before = api.collection(name)["index"]
        job = api.request(
            "POST", f"/v1/collections/{name}/reencode", json={"models": {"text": settings.models.text_model}}
        )
        path = f"/v1/collections/{name}/jobs/{job['id']}"
        api.request("PUT", f"/v1/collections/{name}/profiles/during", json=profile_body(4))  # mid-job
        deadline = time.monotonic() + 180
        while (job := api.request("GET", path))["status"] not in ("done", "failed", "cancelled"):
            assert time.monotonic() < deadline, job
            time.sleep(0.5)
        assert job["status"] == "done", job
        after = api.collection(name)
        assert after["index"] == job["target_index"] != before
        assert after["profiles"] == ["default", "during"]
        assert after["jobs"][job["id"]]["status"] == "done"
        assert not catalog.index_meta(es, after["index"]).get("profiles")  # nothing copied there
        assert api.search(name, "tides", profile="during")["fusion"]["k"] == 14
    finally:
        api.delete_collection(name)
    assert stored_items(es, settings, name) == 0
