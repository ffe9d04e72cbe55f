"""Face framing of a crop dataset: how its crops sit around the detector's box, so inference cuts alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import TrainingError

__all__ = ["measure_margin", "parse_square"]


def parse_square(text: str) -> tuple[float, float]:
    """``"SCALE"`` or ``"SCALE:SHIFT"`` → (scale, shift) for ``crop_face``'s square framing."""
    parts = text.split(":")
    try:
        scale = float(parts[0])
        shift = float(parts[1]) if len(parts) == 2 else 0.0
    except (ValueError, IndexError):
        scale, shift = float("nan"), 0.0
    if len(parts) > 2 or not 0.5 <= scale <= 4.0 or not -0.5 <= shift <= 0.5:
        raise TrainingError(
            f"--square-crop {text!r}: expected 'auto' or SCALE[:SHIFT] with SCALE in [0.5, 4] "
            "and SHIFT in [-0.5, 0.5]",
            code="invalid_arguments",
        )
    return scale, shift


def measure_margin(folder: str | Path, *, samples: int = 300, seed: int = 0) -> dict[str, Any]:
    """Run the pipeline's face detector on ``samples`` crops of a crop folder (seeded choice, full
    resolution, each padded into a larger canvas) and return the ``face_margin`` that makes
    ``crop_face`` frame a detected face like those crops, with the measurements behind it."""
    import cv2

    from pipeline.datasets import dataset_kind, measure_face_margin, read_entries, resolve_file
    from pipeline.faces import FaceDetector

    root = Path(folder)
    entries = read_entries(root)
    if dataset_kind(entries) != "crops":
        raise TrainingError(f"the face margin is measured on a crop folder; {root} holds videos")
    chosen = np.random.default_rng([seed, 5]).choice(len(entries), min(samples, len(entries)), replace=False)
    images = []
    for index in sorted(chosen):
        image = cv2.imread(str(resolve_file(root, entries[index].file)), cv2.IMREAD_COLOR)
        if image is not None:
            images.append(np.ascontiguousarray(image[:, :, ::-1]))
    sizes = {image.shape for image in images}
    if len(sizes) != 1:
        side = max(max(image.shape[:2]) for image in images)
        images = [cv2.resize(image, (side, side), interpolation=cv2.INTER_CUBIC) for image in images]
    # A slightly lower detection threshold than analysis uses: the canvas border is artificial.
    measurement = measure_face_margin(np.stack(images), FaceDetector(device="cpu", det_threshold=0.9))
    measurement["folder"] = str(root)
    return measurement
