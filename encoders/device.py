"""Device policy: CUDA with fp16 when there is a GPU, the CPU otherwise."""

from __future__ import annotations


def pick_device(preference: str = "auto") -> str:
    import torch

    if preference != "auto":
        return preference
    return "cuda" if torch.cuda.is_available() else "cpu"


def use_fp16(device: str) -> bool:
    return device.startswith("cuda")
