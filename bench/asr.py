"""Speech recognition backends side by side: word error rate and real-time factor on one spoken test set.

    python -m bench.asr [--sentences 8]      # -> data/bench/asr.json

The clips are espeak-ng sentences (`evaluation.asr.SENTENCES`) in two voices at two speeds, made on the
spot (needs espeak-ng and sox). Both backends hear the same clips after one warm-up call each; the table
gives WER, clips with no word wrong, and seconds of compute per second of audio (RTF, lower is faster).
A last row transcribes all clips of one voice joined into one recording, cut into pieces as a long
recording would be, to show that piecewise transcription keeps its accuracy.
"""

from __future__ import annotations

import argparse
import tempfile
from itertools import product
from pathlib import Path

from rich.console import Console

from bench import media_fixtures as mf
from bench.common import Report, save, show
from encoders.asr import AsrExtractor
from evaluation.asr import SENTENCES, SPEEDS, VOICES, AsrScore, concatenated, score

LONG_PIECE_S = 20.0  # the joined recording is cut into pieces this long (production: 600 s)


def row(result: AsrScore, clips: str) -> dict[str, object]:
    return {
        "backend": result.backend,
        "clips": clips,
        "WER": round(result.wer, 4),
        "exact": f"{result.exact}/{result.clips}",
        "audio_s": round(result.audio_s, 1),
        "RTF": round(result.real_time_factor, 4),
    }


def run(sentences: int = len(SENTENCES)) -> Report:
    texts = SENTENCES[:sentences]
    with tempfile.TemporaryDirectory() as tmp:
        cases = list(product(VOICES, SPEEDS, texts))
        clips = [mf.speech(text, Path(tmp), speed=speed, voice=voice) for voice, speed, text in cases]
    references = [text for _, _, text in cases]
    whisper, sphinx = AsrExtractor(backend="whisper"), AsrExtractor(backend="pocketsphinx")
    scores = {"whisper": score(whisper, clips, references), "pocketsphinx": score(sphinx, clips, references)}
    label = f"{len(clips)} ({len(VOICES)} voices x {len(SPEEDS)} speeds)"
    rows = [row(result, label) for result in scores.values()]

    first_voice = [i for i, (voice, _, _) in enumerate(cases) if voice == VOICES[0]]
    joined = concatenated([clips[i] for i in first_voice])
    whisper.model.piece_s = LONG_PIECE_S
    long = score(whisper, [joined], [" ".join(references[i] for i in first_voice)])
    rows.append(row(long, f"1 joined ({joined.duration:.0f} s, {LONG_PIECE_S:.0f} s pieces)"))

    ratio = scores["pocketsphinx"].wer / max(scores["whisper"].wer, 1e-9)
    speed = scores["pocketsphinx"].real_time_factor / scores["whisper"].real_time_factor
    return Report(
        name="asr",
        title="Speech recognition: WER and real-time factor (RTF) on the same espeak-ng clips",
        rows=rows,
        notes=[
            f"whisper = faster-whisper {whisper.model_ref}, int8 on the CPU; pocketsphinx = bundled en-us",
            f"pocketsphinx makes {ratio:.1f}x the word errors of whisper; its RTF is {speed:.2f}x whisper's",
            "synthetic voices: a floor for clearly spoken English, not a measure on real recordings",
            *(
                f"{name} heard {scores[name].hypotheses[0]!r} for {references[0]!r}"
                for name in ("whisper", "pocketsphinx")
            ),
        ],
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sentences", type=int, default=len(SENTENCES))
    args = parser.parse_args(argv)
    report = run(args.sentences)
    console = Console()
    show(report, console)
    console.print(f"saved {save(report)}")


if __name__ == "__main__":
    main()
