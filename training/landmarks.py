"""Five facial landmarks for pre-cut face crops, found once by the pipeline's MTCNN and cached.

Self-blending (``training.sbi``) draws its blending hull from the landmarks when it has them, so
the hull follows each face's pose instead of an ellipse placed from the crop geometry.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

__all__ = ["LANDMARKS_VERSION", "cached_crop_landmarks", "crop_landmarks", "load_cached", "save_cached"]

LANDMARKS_VERSION = 2
# Each crop is framed in a canvas this many times its side (borders replicated) so that MTCNN,
# which is trained on whole frames, sees a face with context around it.
_CANVAS_SCALE = 2.0


def crop_landmarks(
    images: np.ndarray,
    detector: Any,
    *,
    batch_size: int = 32,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """(N, 5, 2) float32 landmarks in crop pixels for uint8 crops (N, S, S, 3); NaN where none.

    Of the faces whose box centre lies inside the crop, the largest is kept (another face at
    the border of a crop is not the one it was cut for).
    """
    count, size = len(images), images.shape[1]
    pad = round(size * (_CANVAS_SCALE - 1.0) / 2.0)
    out = np.full((count, 5, 2), np.nan, dtype=np.float32)

    def inside(box: tuple[float, float, float, float]) -> bool:
        centre_x, centre_y = (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0
        return pad <= centre_x < pad + size and pad <= centre_y < pad + size

    for start in range(0, count, batch_size):
        chunk = images[start : start + batch_size]
        canvases = np.stack(
            [cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REPLICATE) for img in chunk]
        )
        for offset, detections in enumerate(detector.detect(canvases)):
            candidates = [d for d in detections if inside(d.box)]
            if candidates:
                best = max(candidates, key=lambda d: d.size)
                out[start + offset] = np.asarray(best.landmarks, dtype=np.float32) - pad
        if progress:
            progress(min(start + batch_size, count), count)
    return out


def cached_crop_landmarks(
    images: np.ndarray,
    *,
    cache_dir: str | Path | None,
    detector_factory: Callable[[], Any],
    say: Callable[[str], None] | None = None,
) -> np.ndarray:
    """``crop_landmarks`` keyed by the crops' own bytes, computed once per set of crops."""
    digest = hashlib.sha256()
    digest.update(str(images.shape).encode())
    # Hashing a strided sample keeps the key cheap for gigabytes of crops yet sensitive to any
    # change of data, size or framing.
    digest.update(np.ascontiguousarray(images[:: max(1, len(images) // 512)]).tobytes())
    key = f"landmarks-{digest.hexdigest()[:20]}-v{LANDMARKS_VERSION}"
    path = Path(cache_dir) / f"{key}.npy" if cache_dir is not None else None
    cached = load_cached(path, (len(images), 5, 2))
    if cached is not None:
        return cached
    if say:
        say(f"finding landmarks in {len(images)} face crops (once; cached)")
    marks = crop_landmarks(images, detector_factory())
    found = int(np.isfinite(marks[:, 0, 0]).sum())
    if say:
        say(f"landmarks found in {found} of {len(images)} crops")
    save_cached(path, marks, {"crops": len(images), "found": found, "version": LANDMARKS_VERSION})
    return marks


def load_cached(path: Path | None, shape: tuple[int, ...]) -> np.ndarray | None:
    """A cached landmark array of ``shape``, or None when absent, damaged or of another shape."""
    if path is None or not path.is_file():
        return None
    try:
        cached = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None  # a damaged cache is rebuilt
    return cached if cached.shape == shape else None


def save_cached(path: Path | None, array: np.ndarray, meta: dict[str, Any]) -> None:
    """Write ``array`` atomically (a reader never sees half a file) with a JSON note beside it."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npy")
    np.save(tmp, array, allow_pickle=False)
    tmp.replace(path)
    path.with_suffix(".json").write_text(json.dumps(meta), encoding="utf-8")
