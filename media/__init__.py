"""Bytes to media: file type detection and decoding of images and audio into arrays (no models, no index)."""
