"""Images and audio end to end: upload, worker (OCR, ASR, CLIP, pHash, MFCC), cross-modal search, serving.

CLIP runs as a tiny random-weight model of the real architecture (real weights can't be had here), so only
its plumbing is checked; OCR, speech-to-text, pHash and MFCC are real.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import requests
import soundfile as sf
from PIL import Image

from bench.media_fixtures import (
    jpeg_bytes,
    missing_speech_tools,
    resized_jpeg,
    skimage_image,
    text_image,
    tiny_clip_dir,
    tone,
)
from client.api import ApiClient

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        bool(missing_speech_tools()), reason="needs espeak-ng and sox (.ci/run installs them)"
    ),
]
SENTENCE = "the weather forecast predicts heavy rain tomorrow"


def speak(text: str, path: Path, speed: int = 150) -> Path:
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", "en-us+f2", "-s", str(speed), "-w", str(raw), text], check=True)
    subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", str(path)], check=True)
    return path


def write_wav(audio, path: Path) -> Path:  # noqa: ANN001
    sf.write(path, audio.samples, audio.sample_rate)
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("media")
    files = {
        "astronaut": folder / "astronaut.jpg",
        "coffee": folder / "coffee.png",
        "sign": folder / "sign.png",
        "speech": speak(SENTENCE, folder / "speech.wav"),
        "tone": write_wav(tone(440, 2.0), folder / "tone.wav"),
    }
    files["astronaut"].write_bytes(jpeg_bytes(skimage_image("astronaut")))
    skimage_image("coffee").save(files["coffee"])
    text_image(["INVOICE 2024", "TOTAL DUE"]).save(files["sign"])
    # query examples: another take of each
    files["astronaut_small"] = folder / "astronaut-small.jpg"
    files["astronaut_small"].write_bytes(jpeg_bytes(resized_jpeg(skimage_image("astronaut"), 0.5, 60), 60))
    files["speech_fast"] = speak(SENTENCE, folder / "speech-fast.wav", speed=175)
    return files


@pytest.fixture(scope="module")
def collection(api: ApiClient, worker, media: dict[str, Path], settings) -> str:  # noqa: ANN001
    worker.ensure_running()
    # under the API's models root: a collection may only name registered models or directories there
    clip_dir = tiny_clip_dir(settings.engine.data_dir / "models" / f"tiny-clip-{os.getpid()}")
    name = "t-media"
    if api.collection_exists(name):
        api.delete_collection(name)
    api.create_collection(
        name,
        encoders=["text", "clip", "phash", "mfcc"],
        extractors=["ocr", "asr"],
        models={"clip": str(clip_dir)},
    )
    paths = [media[k] for k in ("astronaut", "coffee", "sign", "speech", "tone")]
    out = api.add_files(
        name, paths, metadata=[{"set": "demo", "n": i} for i in range(len(paths))], refresh=True
    )
    assert [f["status"] for f in out["files"]] == ["pending"] * 5, out
    counts = api.wait_encoded(name, timeout=600)
    assert counts.get("encoded") == 5, counts
    yield name
    api.delete_collection(name)


def doc(api: ApiClient, collection: str, path: Path) -> dict:
    return api.document(collection, hashlib.sha256(path.read_bytes()).hexdigest())["source"]


def test_extraction_and_metadata(api: ApiClient, collection: str, media: dict[str, Path]) -> None:
    sign = doc(api, collection, media["sign"])
    assert sign["modality"] == "image" and sign["source"]["mime"] == "image/png"
    assert "invoice" in sign["content"].lower().replace(" ", "")
    assert sign["metadata"]["width"] > 0 and sign["metadata"]["set"] == "demo"
    assert set(sign["ingest"]["encoders"]) == {"text", "clip", "phash"}

    speech = doc(api, collection, media["speech"])
    assert speech["modality"] == "audio"
    words = set(speech["content"].lower().split())
    assert len(words & set(SENTENCE.split())) >= 3, speech["content"]
    starts = [w["start"] for s in speech["segments"] for w in s["words"]]  # Whisper: phrases of timed words
    assert starts == sorted(starts) and len(starts) >= 4
    assert abs(float(speech["metadata"]["duration"]) - sf.info(media["speech"]).duration) < 0.1
    assert set(speech["ingest"]["encoders"]) == {"text", "mfcc"}


def test_text_finds_ocr_text_and_transcripts(api: ApiClient, collection: str, media: dict[str, Path]) -> None:
    hits = api.search(collection, "invoice total", mode="lexical")["hits"]
    assert hits[0]["source"]["source"]["filename"] == "sign.png"
    hits = api.search(collection, "weather forecast rain", mode="hybrid", explain=True, highlight=True)[
        "hits"
    ]
    assert hits[0]["source"]["source"]["filename"] == "speech.wav"
    assert "<mark>" in " ".join(hits[0]["highlight"]["content"])


def test_text_query_reaches_clip_images(api: ApiClient, collection: str) -> None:
    # the CLIP path itself (all three images reached through `vector:clip`), not where relevance ends
    result = api.search(
        collection,
        "an astronaut in a space suit",
        mode="vector",
        explain=True,
        modalities=["image"],
        cutoff=False,
    )
    assert len(result["hits"]) == 3
    assert all("vector:clip" in h["explanation"]["components"] for h in result["hits"])
    assert all(h["source"]["modality"] == "image" for h in result["hits"])


def test_image_query_by_example_finds_the_near_duplicate(
    api: ApiClient, collection: str, media: dict[str, Path]
) -> None:
    result = api.search_by_example(collection, media["astronaut_small"], explain=True)
    top = result["hits"][0]
    assert top["source"]["source"]["filename"] == "astronaut.jpg"
    assert top["explanation"]["components"]["vector:phash"]["rank"] == 1
    assert set(top["explanation"]["components"]) == {"vector:phash", "vector:clip"}


def test_audio_query_by_example_prefers_the_same_sound(
    api: ApiClient, collection: str, media: dict[str, Path]
) -> None:
    result = api.search_by_example(collection, media["speech_fast"], explain=True)
    assert [h["source"]["source"]["filename"] for h in result["hits"]][:2] == ["speech.wav", "tone.wav"]
    assert result["hits"][0]["explanation"]["components"]["vector:mfcc"]["rank"] == 1


def test_similar_excludes_itself(
    api: ApiClient, api_url: str, collection: str, media: dict[str, Path]
) -> None:
    sha = doc(api, collection, media["astronaut"])["source"]["sha256"]
    resp = requests.get(f"{api_url}/v1/collections/{collection}/documents/{sha}/similar", timeout=60)
    assert resp.status_code == 200
    ids = [h["id"] for h in resp.json()["hits"]]
    assert sha not in ids and len(ids) >= 2


def test_duplicate_upload_is_not_a_second_document(
    api: ApiClient, collection: str, media: dict[str, Path]
) -> None:
    out = api.add_files(collection, [media["coffee"]])
    assert out["files"][0]["status"] == "duplicate"
    assert api.collection(collection)["documents"]["total"] == 5


def test_content_with_ranges_and_thumbnail(api_url: str, api: ApiClient, collection: str, media) -> None:  # noqa: ANN001
    sha = doc(api, collection, media["speech"])["source"]["sha256"]
    url = f"{api_url}/v1/collections/{collection}/documents/{sha}"
    whole = requests.get(f"{url}/content", timeout=30)
    assert whole.status_code == 200 and whole.headers["Content-Type"].startswith("audio/")
    assert whole.content == media["speech"].read_bytes()
    part = requests.get(f"{url}/content", headers={"Range": "bytes=100-199"}, timeout=30)
    assert part.status_code == 206 and part.content == whole.content[100:200]
    assert requests.get(f"{url}/thumbnail", timeout=30).status_code == 404  # audio has none

    image_sha = doc(api, collection, media["astronaut"])["source"]["sha256"]
    thumb = requests.get(f"{api_url}/v1/collections/{collection}/documents/{image_sha}/thumbnail", timeout=30)
    assert thumb.headers["Content-Type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(thumb.content)).size) <= 256


def test_bad_files(api_url: str, api: ApiClient, collection: str, worker, tmp_path: Path) -> None:  # noqa: ANN001
    url = f"{api_url}/v1/collections/{collection}/files"

    def post(name: str, data: bytes) -> requests.Response:
        # refresh: the wait below must see the new document as pending
        return requests.post(url, files={"file": (name, data)}, params={"refresh": "wait_for"}, timeout=60)

    assert post("empty.jpg", b"").status_code == 400
    resp = post("notes.exe", bytes(range(256)) * 4)
    assert resp.status_code == 415 and "unsupported" in resp.json()["error"]["message"].lower()
    bomb = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(bomb, "PNG")
    resp = post("bomb.png", bomb.getvalue())
    assert resp.status_code == 422 and "pixels" in resp.json()["error"]["message"], resp.text
    assert (
        requests.post(url, data={"x": "1"}, timeout=30).status_code == 415
    )  # a form: what any page can post
    assert requests.post(url, files={"x": (None, "1")}, timeout=30).status_code == 400  # no file part
    resp = requests.post(url, files={"file": ("a.png", b"x")}, data={"metadata": "{oops"}, timeout=30)
    assert resp.status_code == 400 and "metadata" in resp.json()["error"]["message"]

    # Visible only when decoding: accepted at upload, then `failed` with a reason; the worker carries on.
    good = jpeg_bytes(skimage_image("camera"))
    truncated = good[: len(good) // 3]
    wav = io.BytesIO()
    sf.write(wav, np.zeros(1600, dtype=np.float32), 16000, format="WAV")
    corrupt_wav = wav.getvalue()[:44] + b"\x00garbage" * 3
    outcome = {}
    for name, data in (("truncated.jpg", truncated), ("corrupt.wav", corrupt_wav)):
        resp = post(name, data)
        assert resp.status_code in (202, 422), resp.text
        outcome[name] = resp
    api.wait_encoded(collection, timeout=300)
    for name, resp in outcome.items():
        if resp.status_code == 202:
            doc_id = resp.json()["files"][0]["id"]
            source = api.document(collection, doc_id)["source"]
            assert source["ingest"]["status"] == "failed", (name, source["ingest"])
            assert source["ingest"]["error"]
    assert worker.process is not None and worker.process.poll() is None  # the worker survived
    for doc_id in [r.json()["files"][0]["id"] for r in outcome.values() if r.status_code == 202]:
        requests.delete(f"{api_url}/v1/collections/{collection}/documents/{doc_id}", timeout=30)


def test_search_rejects_examples_it_cannot_use(api_url: str, collection: str) -> None:
    url = f"{api_url}/v1/collections/{collection}/search"
    resp = requests.post(
        url, files={"file": ("x.txt", b"just some text")}, data={"request": "{}"}, timeout=30
    )
    assert resp.status_code == 415
    resp = requests.post(
        url, files={"file": ("x.png", b"\x89PNG\r\n\x1a\n")}, data={"request": "{}"}, timeout=30
    )
    assert resp.status_code in (400, 422)
    resp = requests.post(url, files={"request": (None, json.dumps({"like": "nope"}))}, timeout=30)
    assert resp.status_code == 404


def test_media_waits_for_a_worker_of_its_queue(api: ApiClient, worker, media: dict[str, Path]) -> None:  # noqa: ANN001
    name = f"t-queues-{uuid.uuid4().hex[:8]}"
    api.create_collection(name, encoders=["text", "phash"])
    worker.kill()
    worker.start(queues="mmsearch,mmsearch.text")  # a CPU worker; nobody serves mmsearch.image yet
    try:
        api.add_documents(name, [{"id": "note", "text": "A note about coffee."}], refresh=True)
        image_id = api.add_files(name, [media["coffee"]], refresh=True)["files"][0]["id"]
        deadline = time.monotonic() + 300
        while api.document(name, "note")["source"]["ingest"]["status"] == "pending":
            assert time.monotonic() < deadline, "the text worker did not encode the note"
            time.sleep(0.5)
        assert api.document(name, image_id)["source"]["ingest"]["status"] == "pending"
    finally:
        worker.kill()
        worker.start()  # all queues again
    assert api.wait_encoded(name, timeout=300) == {"encoded": 2, "total": 2}
    api.delete_collection(name)
