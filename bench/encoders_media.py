"""Throughput of the media encoders and extractors on this machine: a table, and JSON for the record.

    python -m bench.encoders_media [--repeat 2] [--images 32]     # -> bench/results/encoders_media.json

Images/s for image models, audio-seconds/s for audio models, after one warm-up call (load time is reported
apart). Batched encoders are also timed one item per call, side by side, so the batching gain is a ratio
from the same run. CLIP and CLAP run the tests' tiny random-weight models (their real weights cannot be had
here): their numbers measure the plumbing (preprocessing, batching), not the real models' cost.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the tests' media and tiny models

import media_fixtures as mf  # noqa: E402
from rich.console import Console  # noqa: E402

from bench.common import Report, save, show  # noqa: E402
from encoders.asr import AsrExtractor  # noqa: E402
from encoders.clap import ClapEncoder  # noqa: E402
from encoders.clip import ClipEncoder  # noqa: E402
from encoders.mfcc import MfccEncoder  # noqa: E402
from encoders.ocr import OcrExtractor  # noqa: E402
from encoders.phash import PhashEncoder  # noqa: E402
from encoders.timm_cnn import TimmEncoder  # noqa: E402
from ingest.media import Audio  # noqa: E402

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


def run(repeat: int = 2, images: int = 32) -> Report:
    import torch

    load_before = os.getloadavg()
    names = ["astronaut", "camera", "chelsea", "coffee", "coins", "horse", "rocket", "page"]
    photos = [mf.skimage_image(names[i % len(names)]) for i in range(images)]
    pages = [mf.text_image(["Quarterly revenue report", "Invoice number 4711"])] * 4
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        speech = speech_clips(folder)
        speech_s = sum(clip.duration for clip in speech)
        clip_encoder = ClipEncoder(model=str(mf.tiny_clip_dir(folder / "clip")))
        timm_encoder = TimmEncoder(pretrained=False)
        clap_encoder = ClapEncoder(model=str(mf.tiny_clap_dir(folder / "clap")))
        ocr, asr = OcrExtractor(), AsrExtractor(backend="pocketsphinx")
        n = len(photos)
        for row in (
            ("clip", "tiny random CLIP", "images/s", photos, n, clip_encoder.encode, repeat, True),
            ("timm", timm_encoder.version, "images/s", photos, n, timm_encoder.encode, repeat, True),
            ("phash", "imagehash", "images/s", photos, n, PhashEncoder().encode, repeat, False),
            ("ocr", ocr.model_ref, "images/s", pages, len(pages), ocr.extract, 1, False),
            ("mfcc", "librosa", "audio-s/s", speech * 4, 4 * speech_s, MfccEncoder().encode, repeat, False),
            ("clap", "tiny random CLAP", "audio-s/s", speech, speech_s, clap_encoder.encode, repeat, True),
            ("asr", asr.version, "audio-s/s", speech, speech_s, asr.extract, 1, False),
        ):
            rows.append(measure(*row))
    speech_source = "tones (espeak-ng/sox missing)" if mf.missing_speech_tools() else "espeak-ng sentences"
    return Report(
        "encoders_media",
        f"Media encoders on this machine ({os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, "
        f"CUDA {torch.cuda.is_available()})",
        rows,
        [
            f"images: {n} skimage photos (OCR: {len(pages)} rendered text pages); audio: {len(speech)} "
            f"{speech_source}, {speech_s:.1f} s in all",
            "batched = one encode call for all items; per_item = one call per item; best of the repeats, "
            "after a warm-up call whose time (model load included) is load_s",
            "clip and clap run tiny random-weight models: their rows measure preprocessing and plumbing, "
            "not the cost of the real ViT-B/32 or HTSAT",
            f"load average before/after: {[round(x, 2) for x in load_before]} / "
            f"{[round(x, 2) for x in os.getloadavg()]} (a shared machine slows every row alike)",
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--images", type=int, default=32)
    args = parser.parse_args()
    report = run(args.repeat, args.images)
    show(report, Console())
    print(f"wrote {save(report)}")


if __name__ == "__main__":
    main()
