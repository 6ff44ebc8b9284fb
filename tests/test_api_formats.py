"""Documents end to end on real files made here: a mixed PDF (text page + scanned page, OCR'd by the
worker with its page number), PPTX, XLSX, an e-mail with an attachment (a child document), and speech
found by a spoken word at the moment it was said (Whisper's timed segments)."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bench import media_fixtures as mf
from client.api import ApiClient
from tests.test_ingest_files import make_pdf

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        bool(mf.missing_speech_tools()), reason="needs espeak-ng and sox (.ci/run installs them)"
    ),
]
SPOKEN = "the board approved a merger with the logistics company in hamburg"
LEAD_IN_S = 2.0  # silence before the speech: the segment's time must include it


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("formats")
    scanned = mf.scanned_pdf([["Quarterly", "revenue", "statement"]])  # one word a line: OCR spacing varies
    speech = mf.speech(SPOKEN, folder, voice="en-us", speed=160)
    lead_in = np.zeros(int(LEAD_IN_S * speech.sample_rate), np.float32)
    contents = {
        "mixed.pdf": mf.merged_pdf(make_pdf(["Photosynthesis converts light"], "Biology", "Ann"), scanned),
        "deck.pptx": mf.make_pptx(
            [("Roadmap", "Launch in spring", "mention the harbour office"), ("Budget", "x", "")]
        ),
        "book.xlsx": mf.make_xlsx({"Inventory": [["item", "count"], ["lighthouse lenses", 12]]}),
        "mail.eml": mf.make_eml(
            "Merger approved",
            "The board approved the merger yesterday.",
            [("terms.pdf", "application/pdf", make_pdf(["Indemnity clauses signed"], "Terms", "Legal"))],
        ),
    }
    paths = {name: folder / name for name in contents}
    for name, data in contents.items():
        paths[name].write_bytes(data)
    paths["speech.wav"] = folder / "speech.wav"
    sf.write(paths["speech.wav"], np.concatenate([lead_in, speech.samples]), speech.sample_rate)
    return paths


@pytest.fixture(scope="module")
def collection(api: ApiClient, worker, files: dict[str, Path]) -> str:  # noqa: ANN001
    worker.ensure_running()
    name = f"t-formats-{uuid.uuid4().hex[:8]}"
    api.create_collection(name, encoders=["text"], extractors=["ocr", "asr"])
    out = api.add_files(name, list(files.values()), refresh=True)
    assert [f["status"] for f in out["files"]] == ["pending"] * len(files), out
    mail = next(f for f in out["files"] if f["filename"] == "mail.eml")
    assert [(a["filename"], a["status"]) for a in mail["attachments"]] == [("terms.pdf", "pending")]
    counts = api.wait_encoded(name, timeout=600)
    assert counts.get("encoded") == len(files) + 1, counts  # + the attachment
    yield name
    api.delete_collection(name)


def top(api: ApiClient, collection: str, query: str, **options: object) -> dict:
    hits = api.search(collection, query, mode="lexical", **options)["hits"]
    assert hits, query
    return hits[0]


def test_scanned_page_is_read_with_its_page_number(api: ApiClient, collection: str, files) -> None:  # noqa: ANN001
    assert top(api, collection, "quarterly revenue")["source"]["source"]["filename"] == "mixed.pdf"
    doc = api.document(collection, sha(files["mixed.pdf"]))["source"]
    first, second = doc["pages"]
    assert doc["content"][first["start"] : first["end"]] == "Photosynthesis converts light"
    assert second["page"] == 2 and second["ocr"] is True and second["text_layer"] is False
    assert doc["content"][second["start"] : second["end"]].split() == ["Quarterly", "revenue", "statement"]


def test_slides_sheets_and_mail(api: ApiClient, collection: str, files) -> None:  # noqa: ANN001
    assert top(api, collection, "harbour office")["source"]["source"]["filename"] == "deck.pptx"
    assert top(api, collection, "lighthouse lenses")["source"]["source"]["filename"] == "book.xlsx"
    mail = top(api, collection, "board approved merger yesterday")["source"]
    assert mail["source"]["filename"] == "mail.eml" and mail["title"] == "Merger approved"
    assert mail["metadata"]["email_from"] == "Ann Smith <ann@example.com>"
    child = top(api, collection, "indemnity clauses")
    assert child["id"] == f"{sha(files['mail.eml'])}.1"
    assert child["source"]["metadata"]["parent_id"] == sha(files["mail.eml"])
    assert child["source"]["source"]["filename"] == "terms.pdf"


def test_spoken_words_are_found_at_their_time(api: ApiClient, collection: str) -> None:
    hit = top(api, collection, "logistics company", highlight=True)
    assert hit["source"]["source"]["filename"] == "speech.wav"
    assert hit["source"]["ingest"]["encoders"]["text"].startswith("text@")
    [segment, *_] = hit["segments"]
    assert "logistics" in segment["text"].lower()
    assert LEAD_IN_S - 0.5 <= segment["start"] <= LEAD_IN_S + 1.0 and segment["end"] > segment["start"]
    said = {word["word"].lower().strip(".,"): word["start"] for word in segment["words"]}
    # "logistics" is said ~1.8 s into the sentence (espeak-ng en-us, 160 wpm), after the lead-in
    assert LEAD_IN_S + 1.2 <= said["logistics"] <= LEAD_IN_S + 2.4, said
