"""timm CNN features (global-pooled penultimate layer): query-by-image similarity, no text side."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from core.config import Settings
from encoders.base import Encoder
from encoders.device import pick_device, use_fp16
from encoders.extractor import check_images
from encoders.registry import register

RANDOM_INIT_SEED = 0
CHECKPOINT_FILES = ("model.safetensors", "pytorch_model.bin")
CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".bin")


def local_checkpoint(name: str, models_dir: Path | None) -> Path | None:
    """`MODELS_DIR/<name>/model.safetensors` (hub layout) or `MODELS_DIR/<name>.safetensors|.pth|.bin`."""
    if not models_dir:
        return None
    folder = models_dir / name
    candidates = [folder / file for file in CHECKPOINT_FILES]
    candidates += [models_dir / f"{name}{suffix}" for suffix in CHECKPOINT_SUFFIXES]
    return next((path for path in candidates if path.is_file()), None)


class _Loaded(NamedTuple):
    model: Any  # torch.nn.Module with num_classes=0: forward gives pooled features
    transform: Any  # timm eval transform: PIL image -> normalised tensor
    device: str
    dtype: Any


@register
class TimmEncoder(Encoder):
    """`timm.create_model(name, pretrained=True, num_classes=0)` with the model's own eval preprocessing.

    Weights come from `MODELS_DIR` when a checkpoint for the name lies there, else from the hub.
    `pretrained=False` builds the same architecture with weights drawn from a fixed seed, so every process
    computes identical (if meaningless) vectors; the version says so, so they are never mixed with real ones.
    """

    name = "timm"
    input_kind = "image"
    query_kinds = frozenset({"image"})

    def __init__(
        self, model: str | None = None, settings: Settings | None = None, pretrained: bool | None = None
    ) -> None:
        super().__init__(model=model, settings=settings)
        self.pretrained = self.settings.models.timm_pretrained if pretrained is None else pretrained

    def default_model(self) -> str:
        return self.settings.models.timm_model

    @property
    def version(self) -> str:
        suffix = "" if self.pretrained else f":random-seed{RANDOM_INIT_SEED}"
        return f"{self.name}@{self.model_ref}{suffix}"

    @property
    def dims(self) -> int:
        return int(self.model.model.num_features)

    def _load(self) -> _Loaded:
        import timm
        import torch
        from timm.data import create_transform, resolve_data_config

        device = pick_device(self.settings.models.device)
        if self.pretrained:
            checkpoint = local_checkpoint(self.model_ref, self.settings.models.models_dir)
            overlay = {"file": str(checkpoint)} if checkpoint else None
            model = timm.create_model(
                self.model_ref, pretrained=True, num_classes=0, pretrained_cfg_overlay=overlay
            )
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(RANDOM_INIT_SEED)
                model = timm.create_model(self.model_ref, pretrained=False, num_classes=0)
        config = resolve_data_config({}, model=model)
        transform = create_transform(**config, is_training=False)
        dtype = torch.float16 if use_fp16(device) else torch.float32
        return _Loaded(model.to(device, dtype).eval(), transform, device, dtype)

    def _encode(self, items: Sequence[Any], kind: str) -> np.ndarray:
        import torch

        model, transform, device, dtype = self.model
        images = check_images(items, self.name)
        out = []
        batch = self.settings.models.encode_batch_size
        for start in range(0, len(images), batch):
            pixels = torch.stack([transform(image) for image in images[start : start + batch]])
            with torch.inference_mode():
                features = model(pixels.to(device, dtype)).float()
            out.append(torch.nn.functional.normalize(features, dim=1).cpu().numpy())
        return np.concatenate(out).astype(np.float32)
