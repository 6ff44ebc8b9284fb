"""Encoders (vectors) and extractors (text from media): one class per model, registered by name.

Importing the package registers them all; models load lazily on first use.
"""

from encoders import asr, clap, clip, mfcc, ocr, phash, text, timm_cnn  # noqa: F401  (registers)
from encoders.base import Encoder, EncoderError
from encoders.extractor import available_extractors
from encoders.registry import available, get_encoder

__all__ = ["Encoder", "EncoderError", "available", "available_extractors", "get_encoder"]
