"""Where an encode batch goes (interactive queue or its collection's bulk lane) and at which priority, and
which writes are interactive. No services: the routing is pure; tests/test_fairness.py runs it for real."""

from __future__ import annotations

from core.config import Settings, WorkerSettings
from ingest.priority import Priority, priority_for
from workers.queues import BULK_LANES, all_queues, broker_keys, lane_of, route, with_lanes


def test_interactive_batches_go_to_the_modality_queue_at_the_first_priority_step() -> None:
    assert route("mms-a-000001", "text", Priority.INTERACTIVE) == ("mmsearch.text", 0)
    assert route("mms-a-000001", "image", Priority.INTERACTIVE) == ("mmsearch.image", 0)


def test_bulk_batches_go_to_their_collections_lane_at_the_last_priority_step() -> None:
    queue, priority = route("mms-a-000001", "text", Priority.BULK)
    assert queue == f"mmsearch.text.bulk.{lane_of('mms-a-000001')}" and priority == 9
    assert queue in all_queues()


def test_a_collections_generations_share_one_lane_and_collections_spread_over_all_lanes() -> None:
    assert lane_of("mms-docs-000001") == lane_of("mms-docs-000002") == lane_of("mms-docs")
    lanes = {lane_of(f"mms-c{i}-000001") for i in range(200)}
    assert lanes == set(range(BULK_LANES))


def test_unrouted_modalities_fall_back_to_the_default_queue() -> None:
    assert route("mms-a-000001", "hologram", Priority.BULK) == ("mmsearch", 9)


def test_every_priority_step_of_a_queue_is_a_key_the_depth_reads() -> None:
    assert broker_keys("mmsearch.text") == [
        "mmsearch.text",
        "mmsearch.text\x06\x163",
        "mmsearch.text\x06\x166",
        "mmsearch.text\x06\x169",
    ]


def test_naming_a_modality_queue_brings_its_lanes_and_nothing_else() -> None:
    chosen = with_lanes(["mmsearch", "mmsearch.image"])
    assert chosen[:2] == ["mmsearch", "mmsearch.image"]
    assert set(chosen[2:]) == {f"mmsearch.image.bulk.{k}" for k in range(BULK_LANES)}


def test_a_few_documents_are_interactive_many_or_a_crawl_are_bulk() -> None:
    settings = Settings(workers=WorkerSettings(interactive_max_documents=8))
    assert priority_for(1, settings) is Priority.INTERACTIVE
    assert priority_for(8, settings) is Priority.INTERACTIVE
    assert priority_for(9, settings) is Priority.BULK
    assert priority_for(1, settings, bulk=True) is Priority.BULK
