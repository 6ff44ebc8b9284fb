"""Encoders: one class per model, registered by name. Importing the package registers them all."""

from encoders import text  # noqa: F401  (registers)
from encoders.base import Encoder, EncoderError
from encoders.registry import available, encoder_class, get_encoder, register

__all__ = ["Encoder", "EncoderError", "available", "encoder_class", "get_encoder", "register"]
