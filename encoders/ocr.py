"""OCR with RapidOCR (PP-OCR detection + recognition on onnxruntime, models inside the wheel)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from importlib.metadata import version
from typing import Any

import numpy as np

from core.config import Settings
from encoders.extractor import Extraction, Extractor, check_images, register_extractor

SAME_LINE_OVERLAP = 0.5  # boxes whose vertical overlap exceeds this share of the smaller height share a line


@register_extractor
class OcrExtractor(Extractor):
    """Image -> text in reading order: boxes grouped into lines top to bottom, left to right within a line.

    Segments are the lines, with their pixel `bbox` and mean recognition `confidence`. Columns side by side
    are read across, line by line, which keeps words of one line together but interleaves columns.
    """

    name = "ocr"
    input_kind = "image"

    def __init__(self, model: str | None = None, settings: Settings | None = None) -> None:
        super().__init__(model=model, settings=settings)
        self._run_lock = threading.Lock()  # one image at a time: onnxruntime already uses every core

    def default_model(self) -> str:
        return f"rapidocr-onnxruntime-{version('rapidocr-onnxruntime')}"

    def _load(self) -> Any:
        from rapidocr_onnxruntime import RapidOCR

        return RapidOCR()

    def _extract(self, items: Sequence[Any]) -> list[Extraction]:
        engine = self.model
        out = []
        for image in check_images(items, self.name):
            with self._run_lock:
                result, _ = engine(image)
            out.append(_reading_order(result or []))
        return out


def _reading_order(result: list[Any]) -> Extraction:
    """Join RapidOCR's `[points, text, score]` boxes into lines."""
    boxes = []
    for points, text, score in result:
        xy = np.asarray(points, dtype=np.float32)
        boxes.append((*xy.min(axis=0), *xy.max(axis=0), str(text), float(score)))
    boxes.sort(key=lambda box: box[1])
    lines: list[list[tuple[Any, ...]]] = []
    for box in boxes:
        line = lines[-1] if lines else None
        if line is not None:
            top, bottom = min(b[1] for b in line), max(b[3] for b in line)
            overlap = min(bottom, box[3]) - max(top, box[1])
            if overlap >= SAME_LINE_OVERLAP * min(bottom - top, box[3] - box[1]):
                line.append(box)
                continue
        lines.append([box])
    segments = []
    for line in lines:
        line.sort(key=lambda box: box[0])
        segments.append(
            {
                "text": " ".join(box[4] for box in line),
                "bbox": [
                    round(float(min(b[0] for b in line))),
                    round(float(min(b[1] for b in line))),
                    round(float(max(b[2] for b in line))),
                    round(float(max(b[3] for b in line))),
                ],
                "confidence": round(float(np.mean([box[5] for box in line])), 4),
            }
        )
    confidence = round(float(np.mean([box[5] for box in boxes])), 4) if boxes else None
    return Extraction(
        text="\n".join(segment["text"] for segment in segments),
        segments=segments,
        metadata={"boxes": len(boxes), "confidence": confidence},
    )
