"""A document's lifecycle without services: the status blocks and bodies each writer sends, and the text
the encoders see (the same string at index time, in training and in the benchmarks)."""

from __future__ import annotations

import copy
import json
from datetime import datetime

import pytest

from encoders.extractor import Extraction
from ingest.documents import from_json, parse_documents
from ingest.lifecycle import (
    MAX_ERROR_CHARS,
    TRANSITIONS,
    DocumentStatus,
    IllegalTransition,
    attempts_of,
    can_transition,
    check_transition,
    claim_update,
    claimed_by_of,
    encoded_update,
    encoder_text,
    encoders_of,
    error_of,
    extracted_fields,
    failed,
    failed_update,
    mime_of,
    next_attempt,
    now_iso,
    pending,
    requeued,
    sha256_of,
    status_of,
)

STAMP = "2024-05-06T07:08:09.123+00:00"


def test_now_iso_is_utc_with_milliseconds() -> None:
    stamp = now_iso()
    assert stamp.endswith("+00:00") and len(stamp.split("T")[1]) == len("07:08:09.123+00:00")
    assert datetime.fromisoformat(stamp).utcoffset().total_seconds() == 0


def test_a_new_document_is_pending_with_one_stamp() -> None:
    doc = from_json(
        "c", parse_documents(b'{"id": "x", "text": "t"}', None, max_docs=1, max_chars=10).docs[0][1]
    )
    stamp = doc["@timestamp"]
    assert doc["ingest"] == pending(stamp)
    assert doc["ingest"] == {
        "status": "pending",
        "error": None,
        "attempts": 0,
        "queued_at": stamp,
        "encoders": {},
    }
    assert doc["updated_at"] == stamp


def test_encoded_counts_the_attempt_names_versions_and_clears_the_error() -> None:
    source = {"title": "T", "content": "c", "ingest": {"status": "failed", "error": "boom", "attempts": 2}}
    body = encoded_update(source, {"text": [0.5]}, {"text": "text@m1", "clip": "clip@m2"}, stamp=STAMP)
    assert body == {
        "vectors": {"text": [0.5]},
        "ingest": {
            "status": "encoded",
            "error": None,
            "attempts": 3,
            "encoded_at": STAMP,
            "encoders": {"text": "text@m1"},  # only the encoders that wrote a vector
        },
        "updated_at": STAMP,
    }


def test_failed_caps_the_reason_and_keeps_unknown_attempts_as_stored() -> None:
    assert failed("x" * 5000, 1) == {"status": "failed", "error": "x" * MAX_ERROR_CHARS, "attempts": 1}
    assert failed_update("gave up", stamp=STAMP) == {
        "ingest": {"status": "failed", "error": "gave up"},  # a partial update: attempts untouched
        "updated_at": STAMP,
    }
    assert next_attempt({}) == 1 and next_attempt({"ingest": {"attempts": 4}}) == 5


def test_requeued_drops_vectors_keeps_the_ingest_time_and_leaves_the_source_alone() -> None:
    source = {
        "@timestamp": "2020-01-01T00:00:00.000+00:00",
        "content": "c",
        "vectors": {"text": [1.0]},
        "ingest": {"status": "encoded", "attempts": 1, "encoders": {"text": "text@m1"}},
    }
    before = copy.deepcopy(source)
    copied = requeued(source, STAMP)
    assert copied == {
        "@timestamp": "2020-01-01T00:00:00.000+00:00",
        "content": "c",
        "ingest": pending(STAMP),
        "updated_at": STAMP,
    }
    assert source == before


def test_encoder_text_is_title_dot_content() -> None:
    assert encoder_text({"title": "Vitamin D", "content": "Bones break."}) == "Vitamin D. Bones break."
    assert encoder_text({"title": "", "content": "only text"}) == "only text"
    assert encoder_text({"title": None, "content": "  kept as stored "}) == "  kept as stored "
    assert encoder_text({"content": ""}) == ""


def test_extracted_text_joins_the_content_once_without_changing_the_source() -> None:
    source = {"title": "Sign", "content": "caption"}
    found = {
        "ocr": Extraction(" STOP \n"),
        "asr": Extraction("caption", segments=[{"text": "caption", "start": 0.0, "end": 1.5, "conf": 0.9}]),
        "empty": Extraction("  "),
    }
    assert encoder_text(source, found) == "Sign. caption\nSTOP"  # "caption" is already in the content
    assert source == {"title": "Sign", "content": "caption"}
    fields = extracted_fields(source, found)
    assert fields == {
        "content": "caption\nSTOP",
        "search_stemmed": {"content": "caption stop"},
        "segments": [{"text": "caption", "start": 0.0, "end": 1.5}],
    }
    # Idempotent: a re-encode of the stored result appends nothing twice.
    assert encoder_text({**source, "content": fields["content"]}, found) == "Sign. caption\nSTOP"
    assert encoded_update(source, {}, {}, found, stamp=STAMP)["content"] == "caption\nSTOP"
    assert extracted_fields(source, None) == {} and encoder_text(source, {}) == "Sign. caption"


def test_an_image_without_text_is_encoded_from_its_ocr_alone() -> None:
    found = {"ocr": Extraction("EXIT", segments=[{"text": "EXIT", "bbox": [0, 0, 9, 9]}])}
    assert encoder_text({"title": "", "content": ""}, found) == "EXIT"
    assert "segments" not in extracted_fields({"content": ""}, found)  # boxes are not timed segments


def test_a_claim_counts_the_attempt_until_the_limit_then_fails() -> None:
    assert claim_update({"ingest": {"attempts": 1}}, 3, STAMP) == {
        "ingest": {"attempts": 2},
        "updated_at": STAMP,
    }
    over = claim_update({"ingest": {"attempts": 3}}, 3, STAMP)["ingest"]
    assert (
        over["status"] == "failed"
        and over["attempts"] == 3
        and "gave up after 3 encode attempts" in over["error"]
    )


def test_a_claim_names_its_worker_and_a_refused_one_does_not() -> None:
    claimed = claim_update({"ingest": {"attempts": 0}}, 3, STAMP, worker="host:42")
    assert claimed == {"ingest": {"attempts": 1, "claimed_by": "host:42"}, "updated_at": STAMP}
    assert claimed_by_of(claimed) == "host:42"
    over = claim_update({"ingest": {"attempts": 3}}, 3, STAMP, worker="host:42")
    assert "claimed_by" not in over["ingest"] and over["ingest"]["status"] == "failed"


def test_statuses_are_stored_as_the_plain_strings_they_always_were() -> None:
    assert [s.value for s in DocumentStatus] == ["pending", "encoded", "failed"]
    assert json.dumps({"status": DocumentStatus.FAILED}) == '{"status": "failed"}'
    assert DocumentStatus.PENDING == "pending" and pending(STAMP)["status"] == "pending"


@pytest.mark.parametrize(
    ("old", "new", "legal"),
    [
        (None, "pending", True),  # a new document
        (None, "encoded", False),
        ("pending", "pending", True),  # a claim, a re-ingest
        ("pending", "encoded", True),
        ("pending", "failed", True),
        ("encoded", "pending", True),  # re-ingest, re-encode copy
        ("failed", "pending", True),  # requeue
        ("encoded", "failed", False),  # a late last resort never fails an encoded document
        ("failed", "encoded", False),  # only a pending (claimed) document is encoded
        ("failed", "failed", False),
        ("pending", "lost", False),
        ("lost", "pending", False),
    ],
)
def test_the_transition_table_decides_every_status_change(old: str | None, new: str, legal: bool) -> None:
    assert can_transition(old, new) is legal
    if legal:
        assert check_transition(old, new) == new
    else:
        with pytest.raises(IllegalTransition) as err:
            check_transition(old, new)
        assert err.value.status == 409 and repr(new) in str(err.value)


def test_every_status_has_a_row_in_the_transition_table() -> None:
    assert set(TRANSITIONS) == {None, *DocumentStatus}


def test_accessors_read_stored_documents_of_any_age() -> None:
    stored = {
        "source": {"sha256": "ab" * 32, "mime": "image/png"},
        "ingest": {"status": "encoded", "attempts": 2, "encoders": {"clip": "clip@v1"}, "error": None},
    }
    assert status_of(stored) is DocumentStatus.ENCODED
    assert sha256_of(stored) == "ab" * 32 and mime_of(stored) == "image/png"
    assert encoders_of(stored) == {"clip": "clip@v1"} and attempts_of(stored) == 2
    assert error_of(failed_update("boom")) == "boom" and status_of(failed_update("boom")) == "failed"
    # text documents have no file; a source fetched without `ingest` (or with null) has no status
    bare = {"source": None, "ingest": None}
    assert sha256_of(bare) is None and status_of(bare) is None and encoders_of(bare) == {}
    assert attempts_of({}) == 0 and status_of({"ingest": {"status": "bogus"}}) is None
    encoders_of(stored)["text"] = "x"  # a copy: the stored document is left alone
    assert stored["ingest"]["encoders"] == {"clip": "clip@v1"}
