"""Media encoders and extractors on real media and real (or tiny real-architecture) models, no mocks."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from bench import media_fixtures as mf
from core.config import ModelSettings, Settings
from encoders import asr, clap, clip, mfcc, ocr, phash, timm_cnn  # noqa: F401  (registers)
from encoders.base import EncoderError
from encoders.extractor import available_extractors, get_extractor
from encoders.registry import available
from media.decode import Audio

SENTENCE = "the weather forecast predicts heavy rain tomorrow"


def unit_norms(vectors: np.ndarray) -> np.ndarray:
    return np.linalg.norm(vectors, axis=1)


def hamming(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.unpackbits(a.view(np.uint8) ^ b.view(np.uint8)).sum())


@pytest.fixture(scope="module")
def images() -> dict[str, Image.Image]:
    return {name: mf.skimage_image(name) for name in ("astronaut", "camera", "chelsea", "coffee")}


@pytest.fixture(scope="module")
def truncated_jpeg(images: dict[str, Image.Image]) -> Image.Image:
    data = mf.jpeg_bytes(images["astronaut"])
    return Image.open(io.BytesIO(data[: len(data) // 2]))  # opens fine; decoding fails


@pytest.fixture(scope="module")
def spoken(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Audio]:
    if missing := mf.missing_speech_tools():
        pytest.skip(f"needs {' '.join(missing)} (apt-get install espeak-ng sox)")
    folder = tmp_path_factory.mktemp("speech")
    return {
        "take1": mf.speech(SENTENCE, folder),
        "take2": mf.speech(SENTENCE, folder, speed=120, pitch=60),
        "other": mf.speech("seven eight nine ten", folder),
    }


def test_registries() -> None:
    assert {"clip", "clap", "timm", "mfcc", "phash"} <= set(available())
    assert {"ocr", "asr"} <= set(available_extractors())
    assert get_extractor("ocr") is get_extractor("ocr")


# phash -------------------------------------------------------------------------------------------------


def test_phash_near_duplicates_are_close(images: dict[str, Image.Image]) -> None:
    encoder = phash.PhashEncoder()
    original, other = images["astronaut"], images["coffee"]
    copy = mf.resized_jpeg(original, scale=0.5, quality=60)
    vectors = encoder.encode([original, copy, other])
    assert vectors.shape == (3, 8) and vectors.dtype == np.int8
    assert hamming(vectors[0], vectors[1]) <= 10
    assert hamming(vectors[0], vectors[2]) > 20
    assert all(-128 <= b <= 127 for b in vectors[0].tolist())  # the byte form Elasticsearch accepts
    assert encoder.field_value(vectors[0]) == vectors[0].tolist()  # signed bytes: both engines take them
    assert encoder.encode([]).shape == (0, 8)


def test_phash_refuses_broken_images(truncated_jpeg: Image.Image) -> None:
    encoder = phash.PhashEncoder()
    with pytest.raises(EncoderError, match="item 1 cannot be decoded"):
        encoder.encode([mf.skimage_image("camera"), truncated_jpeg])
    with pytest.raises(EncoderError, match="empty image"):
        encoder.encode([Image.new("RGB", (0, 0))])
    with pytest.raises(EncoderError, match="not a PIL image"):
        encoder.encode([b"\x89PNG"])
    with pytest.raises(EncoderError, match="does not accept 'text'"):
        encoder.encode(["a cat"], kind="text")


# mfcc --------------------------------------------------------------------------------------------------


def test_mfcc_another_take_is_closer(spoken: dict[str, Audio]) -> None:
    encoder = mfcc.MfccEncoder()
    clean, noisy, other_tone = mf.tone(440, 2.0), mf.tone(440, 1.5, noise=0.05, seed=3), mf.tone(1500, 2.0)
    vectors = encoder.encode(
        [spoken["take1"], spoken["take2"], spoken["other"], clean, noisy, other_tone, mf.noise(2.0)]
    )
    assert vectors.shape == (7, encoder.dims) == (7, 76)
    np.testing.assert_allclose(unit_norms(vectors), 1.0, atol=1e-5)
    sims = vectors @ vectors.T
    assert sims[0, 1] > max(sims[0, 2], sims[0, 3], sims[0, 6])  # same sentence, slower and higher
    assert sims[3, 4] > max(sims[3, 5], sims[3, 6], sims[3, 0])  # same tone with noise added


def test_mfcc_resamples_and_refuses_bad_audio() -> None:
    encoder = mfcc.MfccEncoder()
    at_16k, at_44k = mf.tone(440, 1.0), mf.tone(440, 1.0, rate=44_100)
    a, b = encoder.encode([at_16k, at_44k])
    assert a @ b > 0.99
    for bad, message in [
        (Audio(np.zeros(0, np.float32), 16_000), "empty audio"),
        (Audio(np.zeros(16_000, np.float32), 16_000), "silent"),
        (Audio(np.full(16_000, np.nan, np.float32), 16_000), "NaN"),
        (Audio(np.zeros((2, 100), np.float32), 16_000), "mono"),
        (Audio(np.ones(100, np.float32), 16_000), "shorter than"),
    ]:
        with pytest.raises(EncoderError, match=message):
            encoder.encode([at_16k, bad])


# clip (tiny random CLIP, real loader) ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("st_layout", [False, True], ids=["transformers-dir", "sentence-transformers-dir"])
def test_clip_tiny_model_loads_and_encodes_both_towers(
    tmp_path, images: dict[str, Image.Image], truncated_jpeg: Image.Image, st_layout: bool
) -> None:
    folder = mf.tiny_clip_dir(tmp_path, sentence_transformers_layout=st_layout)
    encoder = clip.ClipEncoder(model=str(folder))
    assert encoder.dims == 16
    pictures = list(images.values())
    image_vectors = encoder.encode(pictures)
    text_vectors = encoder.encode(["an astronaut", "a cat", "word " * 300], kind="text")
    assert image_vectors.shape == (4, 16) and text_vectors.shape == (3, 16)
    assert image_vectors.dtype == text_vectors.dtype == np.float32
    np.testing.assert_allclose(unit_norms(np.vstack([image_vectors, text_vectors])), 1.0, atol=1e-5)
    np.testing.assert_allclose(encoder.encode(pictures[:1], kind="image"), image_vectors[:1], atol=1e-5)
    again = clip.ClipEncoder(model=str(folder)).encode(["an astronaut"], kind="text")
    np.testing.assert_allclose(again, text_vectors[:1], atol=1e-5)
    with pytest.raises(EncoderError, match="cannot be decoded"):
        encoder.encode([truncated_jpeg])
    with pytest.raises(EncoderError, match="does not accept 'audio'"):
        encoder.encode([mf.tone(440, 1.0)], kind="audio")


# clap (tiny random CLAP, real loader) ------------------------------------------------------------------


@pytest.mark.slow
def test_clap_tiny_model_encodes_audio_and_text(tmp_path) -> None:
    folder = mf.tiny_clap_dir(tmp_path)
    encoder = clap.ClapEncoder(model=str(folder))
    assert encoder.dims == 16
    long_clip = mf.tone(330, 12.0, noise=0.05, rate=22_050)  # resampled, then two windows
    audio_vectors = encoder.encode([mf.tone(440, 1.0), long_clip, mf.noise(3.0)])
    text_vectors = encoder.encode(["a dog barking", "rain on a roof"], kind="text")
    assert audio_vectors.shape == (3, 16) and text_vectors.shape == (2, 16)
    np.testing.assert_allclose(unit_norms(np.vstack([audio_vectors, text_vectors])), 1.0, atol=1e-5)
    np.testing.assert_allclose(encoder.encode([long_clip]), audio_vectors[1:2], atol=1e-5)  # no random crop
    with pytest.raises(EncoderError, match="empty audio"):
        encoder.encode([Audio(np.zeros(0, np.float32), 48_000)])


# timm (random weights from a fixed seed, and a local checkpoint) ---------------------------------------


@pytest.mark.slow
def test_timm_random_init_and_local_checkpoint(tmp_path, images: dict[str, Image.Image]) -> None:
    import safetensors.torch

    random_init = timm_cnn.TimmEncoder(pretrained=False)
    assert random_init.version == "timm@resnet18.a1_in1k:random-seed0"
    pictures = [images["astronaut"], images["chelsea"], Image.new("RGB", (1, 1), "red")]
    vectors = random_init.encode(pictures)
    assert vectors.shape == (3, random_init.dims) == (3, 512)
    np.testing.assert_allclose(unit_norms(vectors), 1.0, atol=1e-5)

    # The pretrained path, offline: a checkpoint under MODELS_DIR is what `pretrained=True` loads.
    checkpoint = tmp_path / random_init.model_ref / "model.safetensors"
    checkpoint.parent.mkdir()
    safetensors.torch.save_file(random_init.model.model.state_dict(), str(checkpoint))
    from_file = timm_cnn.TimmEncoder(settings=Settings(models=ModelSettings(models_dir=tmp_path)))
    assert from_file.pretrained and from_file.version == "timm@resnet18.a1_in1k"
    np.testing.assert_allclose(from_file.encode(pictures), vectors, atol=1e-4)

    again = timm_cnn.TimmEncoder(pretrained=False).encode(pictures[:1])  # same seed, same vectors
    np.testing.assert_allclose(again, vectors[:1], atol=1e-5)


# ocr ---------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_ocr_reads_rendered_text_in_order() -> None:
    extractor = get_extractor("ocr")
    lines = ["Quarterly revenue report", "Invoice number 4711"]
    found, blank = extractor.extract([mf.text_image(lines), Image.new("RGB", (200, 100), "white")])
    squashed = "".join(found.text.lower().split())
    assert "quarterlyrevenuereport" in squashed and "invoicenumber4711" in squashed
    assert squashed.index("quarterly") < squashed.index("invoice")
    assert [s["bbox"][1] for s in found.segments] == sorted(s["bbox"][1] for s in found.segments)
    assert found.metadata["boxes"] >= 2
    assert blank.text == "" and blank.segments == []


# asr ---------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_asr_transcribes_speech_with_timestamps(spoken: dict[str, Audio]) -> None:
    extractor = asr.AsrExtractor(backend="pocketsphinx")
    assert extractor.version == "asr@pocketsphinx:en-us"
    padded = Audio(np.concatenate([np.zeros(8000, np.float32), spoken["take1"].samples]), 16_000)
    cut = Audio(spoken["take1"].samples[: 480 * 80], 16_000)  # ends mid-word, on a VAD frame boundary
    silence = Audio(np.zeros(16_000, np.float32), 16_000)
    speech, cut_short, quiet = extractor.extract([padded, cut, silence])
    words = set(speech.text.split())
    assert len(words & set(SENTENCE.split())) >= 4, speech.text
    starts = [segment["start"] for segment in speech.segments]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    assert all(s["end"] > s["start"] for s in speech.segments)
    assert starts[0] >= 0.4 and speech.segments[-1]["end"] <= padded.duration  # offset by the pause
    assert {"weather", "forecast"} <= set(cut_short.text.split()), cut_short.text
    assert quiet.text == "" and quiet.segments == []
    with pytest.raises(EncoderError, match="empty audio"):
        extractor.extract([Audio(np.zeros(0, np.float32), 16_000)])


def test_asr_backends_are_checked_and_whisper_needs_reachable_weights() -> None:
    with pytest.raises(ValueError, match="unknown ASR backend"):
        asr.AsrExtractor(backend="kaldi")
    whisper = asr.AsrExtractor(backend="whisper", model="no-such-org/no-such-whisper")
    assert whisper.version == "asr@whisper:no-such-org/no-such-whisper"
    with pytest.raises(OSError):
        whisper.extract([mf.tone(440, 1.0)])
