"""Face framing of a crop dataset: how its crops sit around the detector's box, so inference cuts alike."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from training.datasets import DatasetError
from training.errors import TrainingError

__all__ = ["measure_face_margin", "measure_margin", "parse_square"]


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

    from pipeline.faces import FaceDetector
    from training.datasets import dataset_kind, read_entries, resolve_file

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


def measure_face_margin(images: np.ndarray, detector: Any, *, canvas_scale: float = 2.5) -> dict[str, Any]:
    """How much larger a dataset's tight face crops are than the detector's box for the same face.

    Each crop (N, S, S, 3) is placed in the middle of a canvas ``canvas_scale`` times its size
    (borders replicated, so the detector sees a plausible frame), the detector runs, and the crop
    is compared with the detected box that overlaps it most. ``crop_face`` grows a box by
    ``margin`` × its width and height, so the margin that reproduces the crop is
    ``crop side / box side − 1``; the height is used because the isotropic resize is scaled by
    the longer side, and MTCNN boxes are taller than wide.
    """
    size = images.shape[1]
    pad = round(size * (canvas_scale - 1.0) / 2.0)
    crop_box = (float(pad), float(pad), float(pad + size), float(pad + size))
    width_ratios, height_ratios, centre_dx, centre_dy = [], [], [], []
    missed = 0
    for image in images:
        canvas = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        detections = detector.detect(canvas[None])[0]
        overlapping = [d for d in detections if _overlap(d.box, crop_box) > 0.3]
        if not overlapping:
            missed += 1
            continue
        best = max(overlapping, key=lambda d: _overlap(d.box, crop_box))
        x1, y1, x2, y2 = best.box
        width_ratios.append(size / (x2 - x1))
        height_ratios.append(size / (y2 - y1))
        centre_dx.append(((x1 + x2) / 2.0 - (pad + size / 2.0)) / size)
        centre_dy.append(((y1 + y2) / 2.0 - (pad + size / 2.0)) / size)
    if not height_ratios:
        raise DatasetError("the detector found no face in any of the sampled crops")
    median_height = float(np.median(height_ratios))
    return {
        "sampled": len(images),
        "detected": len(height_ratios),
        "missed": missed,
        "crop_over_box_width_median": round(float(np.median(width_ratios)), 4),
        "crop_over_box_height_median": round(median_height, 4),
        "crop_over_box_height_p10_p90": [round(float(v), 4) for v in np.percentile(height_ratios, [10, 90])],
        "box_centre_offset_x_median": round(float(np.median(centre_dx)), 4),
        "box_centre_offset_y_median": round(float(np.median(centre_dy)), 4),
        "face_margin": round(max(0.0, median_height - 1.0), 3),
        # crop_face's square framing that reproduces the crops: side from the width (the crops
        # are square, MTCNN boxes are not), centre moved from the box's as measured.
        "square_scale": round(float(np.median(width_ratios)), 3),
        "square_shift_y": round(-float(np.median(centre_dy)), 3),
    }


def _overlap(a: Sequence[float], b: Sequence[float]) -> float:
    from pipeline.faces import box_iou

    return box_iou(a, b)
