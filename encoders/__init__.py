"""Encoders (vectors) and extractors (text from media): one class per model, registered by name.

Importing the package registers them all; models load lazily on first use.
"""

from encoders import asr, clap, clip, mfcc, ocr, phash, text, timm_cnn  # noqa: F401  (registers)
from encoders.base import Encoder, EncoderError
from encoders.extractor import Extraction, Extractor, available_extractors, get_extractor
from encoders.registry import available, encoder_class, get_encoder, register

__all__ = [
    "Encoder",
    "EncoderError",
    "Extraction",
    "Extractor",
    "available",
    "available_extractors",
    "encoder_class",
    "get_encoder",
    "get_extractor",
    "register",
]
