"""Perceptual hash (DCT pHash, 64 bits): near-duplicate images (resized, recompressed) by Hamming distance."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from encoders.base import Encoder
from encoders.extractor import check_images
from encoders.registry import register

HASH_SIZE = 8  # 8x8 = 64 bits


@register
class PhashEncoder(Encoder):
    """64-bit pHash in a bit vector field (`dims` counts bits; similarity is Hamming on both engines).

    `encode` returns an (n, 8) int8 array: the 64 bits packed most significant first, each byte as a signed
    integer; `field_value` sends `row.tolist()`, the byte form Elasticsearch and OpenSearch both accept
    (Elasticsearch also takes the hex string `row.view(np.uint8).tobytes().hex()`, OpenSearch does not).
    Hamming distance between two rows: `np.unpackbits(a.view(np.uint8) ^ b.view(np.uint8)).sum()`.
    """

    name = "phash"
    input_kind = "image"
    query_kinds = frozenset({"image"})
    similarity = "l2_norm"  # on bit vectors Elasticsearch scores l2_norm by Hamming distance
    element_type = "bit"

    def default_model(self) -> str:
        return f"imagehash-dct{HASH_SIZE}x{HASH_SIZE}"

    @property
    def dims(self) -> int:
        return HASH_SIZE * HASH_SIZE

    def _load(self) -> Any:
        import imagehash

        return imagehash

    def _encode(self, items: Sequence[Any], kind: str) -> np.ndarray:
        imagehash = self.model
        bits = [
            imagehash.phash(image, hash_size=HASH_SIZE).hash.ravel()
            for image in check_images(items, self.name)
        ]
        return np.packbits(np.stack(bits), axis=1).view(np.int8)
