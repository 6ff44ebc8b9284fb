"""Check the CUDA path of the encoders where a GPU exists: fp16 on the GPU vs fp32 on the CPU.

Run `python -m bench.cuda_check` on a GPU host. Prints a table and writes data/bench/cuda_check.json:
device, batch throughput on each device, and the cosine agreement between GPU and CPU vectors.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from core.config import ModelSettings, Settings
from encoders.text import TextEncoder
from encoders.timm_cnn import TimmEncoder

# Beside the other benchmarks' results, under the data directory; read from the environment alone.
OUT = Path(os.environ.get("MMSEARCH_DATA_DIR", "data")) / "bench" / "cuda_check.json"


def _timed(encoder, items, kind):  # noqa: ANN001, ANN202
    encoder.encode(items[:2], kind=kind)  # load and warm up
    started = time.perf_counter()
    vectors = encoder.encode(items, kind=kind)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return vectors, len(items) / (time.perf_counter() - started)


def main() -> None:
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: nothing to check (this script is for GPU hosts)")
    from PIL import Image

    texts = [f"sentence number {i} about proteins, cells and clinical trials" for i in range(512)]
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (224, 224, 3), dtype=np.uint8)) for _ in range(64)]
    rows = []
    for name, make, items, kind in [
        ("text", lambda s: TextEncoder(settings=s), texts, "text"),
        ("timm (random weights)", lambda s: TimmEncoder(settings=s, pretrained=False), images, "image"),
    ]:
        gpu_vectors, gpu_rate = _timed(make(Settings(models=ModelSettings(device="cuda"))), items, kind)
        cpu_vectors, cpu_rate = _timed(make(Settings(models=ModelSettings(device="cpu"))), items[:64], kind)
        cosine = np.sum(gpu_vectors[:64] * cpu_vectors, axis=1) / (
            np.linalg.norm(gpu_vectors[:64], axis=1) * np.linalg.norm(cpu_vectors, axis=1)
        )
        rows.append(
            {
                "encoder": name,
                "gpu_items_per_s": gpu_rate,
                "cpu_items_per_s": cpu_rate,
                "speedup": gpu_rate / cpu_rate,
                "min_cosine_gpu_vs_cpu": float(cosine.min()),
            }
        )
    table = Table(
        "encoder",
        "GPU items/s (fp16)",
        "CPU items/s",
        "speedup",
        "min cosine GPU vs CPU",
        title=torch.cuda.get_device_name(0),
    )
    for r in rows:
        table.add_row(
            r["encoder"],
            f"{r['gpu_items_per_s']:.0f}",
            f"{r['cpu_items_per_s']:.1f}",
            f"{r['speedup']:.1f}x",
            f"{r['min_cosine_gpu_vs_cpu']:.4f}",
        )
    Console().print(table)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"device": torch.cuda.get_device_name(0), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
