"""The steps of an encode chunk without services: decode and encode return what they made and the
failures they met, and leave their inputs alone; the write's body follows the lifecycle's table. Real
files and a real encoder (pHash needs no model download); the engine-facing steps (claim, write) run in
the integration tests (test_drill, test_api_*)."""

from __future__ import annotations

import copy
import io

import numpy as np
import pytest
from PIL import Image

from encoders import get_encoder
from ingest.blobstore import BlobStore
from ingest.lifecycle import IllegalTransition, pending
from workers.encoding import chunks, update_body
from workers.inference import Decoded, Encoded, Passages, decode, encode, encode_isolating_failures


def png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def stored(doc_id: str, **source: object) -> dict:
    return {"_id": doc_id, "_seq_no": 1, "_primary_term": 1, "_source": {"ingest": pending(), **source}}


def test_decode_fails_a_bad_file_alone_and_keeps_the_rest(tmp_path) -> None:
    store = BlobStore(tmp_path)
    good, bad = store.put(png(1)).sha256, store.put(b"\x89PNG\r\n\x1a\n not really").sha256
    docs = [
        stored("img", modality="image", title="cat", source={"sha256": good}),
        stored("broken", modality="image", source={"sha256": bad}),
        stored("txt", modality="text", title="T", content="body"),
    ]
    before = copy.deepcopy(docs)
    decoded = decode(docs, [], store)
    assert set(decoded.inputs) == {"img", "txt"} and decoded.inputs["txt"] == {"text": "T. body"}
    assert decoded.inputs["img"]["text"] == "cat" and decoded.inputs["img"]["image"] is not None
    assert list(decoded.failures) == ["broken"] and decoded.failures["broken"].startswith("decode: ")
    assert docs == before


def test_a_poison_input_fails_alone_and_nothing_given_is_changed() -> None:
    phash = get_encoder("phash")
    image = Image.open(io.BytesIO(png(2))).convert("RGB")
    todo = [("a", image), ("poison", "not an image"), ("b", image)]
    batch = encode_isolating_failures(phash, todo)
    assert [doc_id for doc_id, _ in batch.vectors] == ["a", "b"]
    assert list(batch.failures) == ["poison"] and batch.failures["poison"].startswith("phash: ")
    assert len(todo) == 3

    decoded = Decoded(
        sources={"a": {}, "poison": {}},
        inputs={"a": {"text": "x", "image": image}, "poison": {"text": "y", "image": "not an image"}},
        extractions={"a": {}, "poison": {}},
    )
    before = copy.deepcopy(decoded)
    encoded = encode([phash], [], decoded)
    assert list(encoded.failures) == ["poison"]
    assert len(encoded.vectors["a"]["phash"]) == 8 and encoded.versions == {"phash": phash.version}
    assert decoded == before and decoded.failures == {}


def test_the_write_body_is_failed_with_the_first_reason_or_encoded() -> None:
    decoded = Decoded(sources={}, inputs={}, extractions={}, failures={"d": "decode: broken"})
    encoded = Encoded(
        vectors={"e": {"text": [0.5]}},
        versions={"text": "text@m1"},
        passages=Passages(),
        failures={"d": "text: later", "x": "text: boom"},
    )
    body = update_body(stored("d"), decoded=decoded, encoded=encoded, attempt=2)
    assert body["ingest"] == {"status": "failed", "error": "decode: broken", "attempts": 2}
    assert update_body(stored("x"), decoded=decoded, encoded=encoded, attempt=1)["ingest"]["error"] == (
        "text: boom"
    )
    body = update_body(stored("e"), decoded=decoded, encoded=encoded, attempt=1)
    assert body["vectors"] == {"text": [0.5]} and body["ingest"]["encoders"] == {"text": "text@m1"}
    # a document no longer pending (encoded by a duplicate run) may not be written again
    done = stored("e")
    done["_source"]["ingest"] = {"status": "encoded"}
    with pytest.raises(IllegalTransition):
        update_body(done, decoded=decoded, encoded=encoded, attempt=1)


def test_chunks_group_by_modality_and_isolate_documents_whose_last_run_died() -> None:
    retried = stored("r", modality="text")
    retried["_source"]["ingest"] = {**pending(), "attempts": 1}
    docs = [stored(f"t{i}", modality="text") for i in range(5)] + [retried, stored("i", modality="image")]
    got = [[d["_id"] for d in chunk] for chunk in chunks(docs, {"text": 2, "image": 8})]
    assert got == [["r"], ["t0", "t1"], ["t2", "t3"], ["t4"], ["i"]]
