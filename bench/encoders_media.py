"""Throughput of the media encoders and extractors on this machine: a table, and JSON for the record.

    python -m bench.encoders_media [--repeat 2] [--images 32] [--pipeline]
                                   # -> data/bench/encoders_media.json (+ media_search.json)

Images/s for image models, audio-seconds/s for audio models, after one warm-up call (load time is reported
apart). Batched encoders are also timed one item per call, side by side, so the batching gain is a ratio
from the same run. With `--pipeline` (needs the running stack: `mmsearch up`) the same items also go
through the whole path, upload -> blob store -> Client -> Celery worker -> vectors back, one fresh
collection per encoder, and a mixed collection times cross-modal searches. CLIP and CLAP run the tests'
tiny random-weight models (their real weights cannot be had here): their numbers measure the plumbing
(preprocessing, batching), not the real models' cost.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import soundfile as sf
from rich.console import Console

from bench import media_fixtures as mf
from bench.common import Report, latency_row, save, show, timed_calls
from client.api import ApiClient, ApiClientError
from encoders.asr import AsrExtractor
from encoders.clap import ClapEncoder
from encoders.clip import ClipEncoder
from encoders.mfcc import MfccEncoder
from encoders.ocr import OcrExtractor
from encoders.phash import PhashEncoder
from encoders.timm_cnn import TimmEncoder
from media.decode import Audio

PIPELINE_REPEAT = 4  # the pipeline gets 4x the items, so its fixed ~1 s (queue, refresh, poll) amortises
SENTENCES = [
    "the weather forecast predicts heavy rain tomorrow",
    "please review the annual budget report",
    "open the door and turn on the lights",
    "seven eight nine ten",
]


def best_of(repeat: int, run: Callable[[], Any]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(
    name: str,
    model: str,
    unit: str,
    items: Sequence[Any],
    *,
    amount: float,
    call: Callable[[Sequence[Any]], Any],
    repeat: int,
    per_item: bool,
) -> dict[str, Any]:
    start = time.perf_counter()
    call(items[:1])  # loads the model, compiles numba/onnx kernels
    load_s = time.perf_counter() - start
    row = {
        "encoder": name,
        "model": model,
        "unit": unit,
        "items": len(items),
        "amount": round(amount, 2),
        "load_s": round(load_s, 2),
    }
    row["batched"] = round(amount / best_of(repeat, lambda: call(items)), 2)
    one_by_one = best_of(repeat, lambda: [call([item]) for item in items]) if per_item else None
    row["per_item"] = round(amount / one_by_one, 2) if one_by_one else ""  # "": not a batching encoder
    return row


def speech_clips(folder: Path) -> list[Audio]:
    if mf.missing_speech_tools():
        return [mf.tone(200 + 100 * i, 3.0, noise=0.05, seed=i) for i in range(4)]
    return [mf.speech(text, folder) for text in SENTENCES]


def write_files(folder: Path, photos: list, pages: list, speech: list[Audio]) -> dict[str, list[Path]]:
    """The bench's items as upload files: JPEG photos, PNG pages, WAV clips."""
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, list[Path]] = {"photos": [], "pages": [], "speech": []}
    for i, photo in enumerate(photos):
        files["photos"].append(folder / f"photo-{i}.jpg")
        files["photos"][-1].write_bytes(mf.jpeg_bytes(photo))
    for i, page in enumerate(pages):
        files["pages"].append(folder / f"page-{i}.png")
        page.save(files["pages"][-1])
    for i, clip in enumerate(speech):
        files["speech"].append(folder / f"speech-{i}.wav")
        sf.write(files["speech"][-1], clip.samples, clip.sample_rate)
    return files


def through_pipeline(client: ApiClient, paths: list[Path], **collection: Any) -> float:
    """Seconds from the upload until no document is pending, in a fresh collection (duplicates allowed,
    so repeated items are all encoded)."""
    name = f"bench-media-{uuid.uuid4().hex[:8]}"
    client.create_collection(name, **collection)
    try:
        started = time.perf_counter()
        client.add_files(name, paths, refresh=True, allow_duplicates=True)
        counts = client.wait_encoded(name, timeout=1800, poll=0.2)
        elapsed = time.perf_counter() - started
        if counts.get("encoded", 0) != len(paths):
            raise RuntimeError(f"{name}: expected {len(paths)} encoded documents, got {counts}")
        return elapsed
    finally:
        client.delete_collection(name)


def add_pipeline_rates(
    client: ApiClient, rows: list[dict[str, Any]], files: dict[str, list[Path]], models: dict[str, str]
) -> list[str]:
    """Adds each row's rate through the whole pipeline; returns why any encoder could not run there."""
    uploads = {"clip": "photos", "timm": "photos", "phash": "photos", "ocr": "pages",
               "mfcc": "speech4", "clap": "speech", "asr": "speech"}  # fmt: skip
    skipped = []
    for row in rows:
        name = row["encoder"]
        setup: dict[str, Any] = {"encoders": [name]}
        if name in ("ocr", "asr"):
            setup = {"encoders": ["text"], "extractors": [name]}
        elif name in models:
            setup["models"] = {name: models[name]}
        try:
            seconds = through_pipeline(client, files[uploads[name]] * PIPELINE_REPEAT, **setup)
        except ApiClientError as exc:  # e.g. timm's pretrained weights are not to be had here
            row["pipeline"] = row["pipeline/batched"] = ""
            skipped.append(f"{name}: {exc}"[:160])
            continue
        row["pipeline"] = round(PIPELINE_REPEAT * row["amount"] / seconds, 2)
        row["pipeline/batched"] = round(row["pipeline"] / row["batched"], 3)
    return skipped


def cross_modal_search(client: ApiClient, files: dict[str, list[Path]], models: dict[str, str]) -> Report:
    """Latency of text and query-by-example searches over one collection holding images and audio."""
    name = f"bench-media-{uuid.uuid4().hex[:8]}"
    client.create_collection(
        name,
        encoders=["text", "clip", "phash", "mfcc", "clap"],
        extractors=["ocr", "asr"],
        models=models,
    )
    try:
        client.add_files(name, files["photos"][:8] + files["pages"][:1] + files["speech"], refresh=True)
        client.wait_encoded(name, timeout=1800, poll=0.5)
        texts = [*SENTENCES, "astronaut in a space suit", "invoice number", "a cup of coffee"] * 5
        cases = {
            "text, hybrid (BM25 + text, CLIP and CLAP towers)": lambda q: client.search(name, q),
            "text, lexical": lambda q: client.search(name, q, mode="lexical"),
            "image example (CLIP + pHash)": lambda p: client.search_by_example(name, p),
            "audio example (MFCC + CLAP)": lambda p: client.search_by_example(name, p),
        }
        inputs = [texts, texts, files["photos"][:8] * 4, files["speech"] * 8]
        rows = []
        for (case, call), items in zip(cases.items(), inputs, strict=True):
            call(items[0])  # query encoders load once per API process
            latencies, wall = timed_calls(call, items, threads=1)
            rows.append({"query": case, "n": len(items), **latency_row(latencies, wall)})
    finally:
        client.delete_collection(name)
    return Report(
        "media_search",
        "Cross-modal search latency through the API (one client)",
        rows,
        [
            "collection: 8 photos, 1 text page, speech clips; text, clip, phash, mfcc, clap; ocr, asr",
            "text queries: 7 texts x 5, so repeats hit the query-vector cache (as repeated user queries do)",
            "CLIP and CLAP are tiny random-weight stand-ins: the latency of the real towers is higher",
        ],
    )


def run(repeat: int = 2, images: int = 32, client: ApiClient | None = None) -> list[Report]:
    import torch

    load_before = os.getloadavg()
    names = ["astronaut", "camera", "chelsea", "coffee", "coins", "horse", "rocket", "page"]
    photos = [mf.skimage_image(names[i % len(names)]) for i in range(images)]
    pages = [mf.text_image(["Quarterly revenue report", "Invoice number 4711"])] * 4
    rows, reports, skipped = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        speech = speech_clips(folder)
        speech_s = sum(clip.duration for clip in speech)
        clip_dir, clap_dir = mf.tiny_clip_dir(folder / "clip"), mf.tiny_clap_dir(folder / "clap")
        clip_encoder = ClipEncoder(model=str(clip_dir))
        timm_encoder = TimmEncoder(pretrained=False)
        clap_encoder = ClapEncoder(model=str(clap_dir))
        ocr, asr = OcrExtractor(), AsrExtractor()
        n = len(photos)
        specs = (
            ("clip", "tiny random CLIP", "images/s", photos, n, clip_encoder.encode, repeat, True),
            ("timm", timm_encoder.version, "images/s", photos, n, timm_encoder.encode, repeat, True),
            ("phash", "imagehash", "images/s", photos, n, PhashEncoder().encode, repeat, False),
            ("ocr", ocr.model_ref, "images/s", pages, len(pages), ocr.extract, 1, False),
            ("mfcc", "librosa", "audio-s/s", speech * 4, 4 * speech_s, MfccEncoder().encode, repeat, False),
            ("clap", "tiny random CLAP", "audio-s/s", speech, speech_s, clap_encoder.encode, repeat, True),
            ("asr", asr.version, "audio-s/s", speech, speech_s, asr.extract, 1, False),
        )
        for spec in specs:
            keywords = dict(zip(("amount", "call", "repeat", "per_item"), spec[4:], strict=True))
            rows.append(measure(*spec[:4], **keywords))
        if client is not None:
            files = write_files(folder / "files", photos, pages, speech)
            files["speech4"] = files["speech"] * 4
            models = {"clip": str(clip_dir), "clap": str(clap_dir)}
            skipped = add_pipeline_rates(client, rows, files, models)
            reports.append(cross_modal_search(client, files, models))
    speech_source = "tones (espeak-ng/sox missing)" if mf.missing_speech_tools() else "espeak-ng sentences"
    notes = [
        f"images: {n} skimage photos (OCR: {len(pages)} rendered text pages); audio: {len(speech)} "
        f"{speech_source}, {speech_s:.1f} s in all",
        "batched = one encode call for all items; per_item = one call per item; best of the repeats, "
        "after a warm-up call whose time (model load included) is load_s",
        "clip and clap run tiny random-weight models: their rows measure preprocessing and plumbing, "
        "not the cost of the real ViT-B/32 or HTSAT",
        f"load average before/after: {[round(x, 2) for x in load_before]} / "
        f"{[round(x, 2) for x in os.getloadavg()]} (a shared machine slows every row alike)",
    ]
    if client is not None:
        notes += [f"not through the pipeline: {reason}" for reason in skipped]
        notes.append(
            f"pipeline = {PIPELINE_REPEAT}x the items uploaded (one multipart request) until every document "
            "is encoded, fresh collection per encoder (ocr/asr: with the text encoder), decoding, blob reads "
            "and a fixed ~1 s of queueing and polling included; the stack's worker(s) do the work"
        )
    title = (
        f"Media encoders on this machine ({os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, "
        f"CUDA {torch.cuda.is_available()})"
    )
    return [Report("encoders_media", title, rows, notes), *reports]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--pipeline", action="store_true", help="also through the running stack")
    args = parser.parse_args()
    console = Console(width=None if sys.stdout.isatty() else 160)  # whole tables in logs too
    for report in run(args.repeat, args.images, ApiClient.from_settings() if args.pipeline else None):
        show(report, console)
        print(f"wrote {save(report)}")


if __name__ == "__main__":
    main()
