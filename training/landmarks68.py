"""68-point facial landmarks for face crops (dlib's shape predictor), placed from MTCNN's five.

Self-blending draws its blending hull from these points, so the hull follows the jaw line and
brows of each face as in the paper. A training-only dependency: the ``train`` extra installs
``dlib-bin`` and ``face-recognition-models`` (whose 68-point model was trained on iBUG 300-W,
non-commercial terms); inference never imports this module.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Callable
from pathlib import Path

import numpy as np

from training.errors import TrainingError
from training.landmarks import load_cached, save_cached

__all__ = [
    "JAW",
    "LANDMARKS68_VERSION",
    "MOUTH",
    "NOSE_BOTTOM",
    "box_from_five",
    "cached_crop_landmarks68",
    "crop_landmarks68",
    "predictor_path",
]

LANDMARKS68_VERSION = 1
# Index ranges of the iBUG 300-W annotation.
JAW = tuple(range(0, 17))
NOSE_BOTTOM = tuple(range(31, 36))
MOUTH = tuple(range(48, 68))


def predictor_path() -> Path:
    """The 68-point model inside the ``face-recognition-models`` wheel.

    Found through the import system without importing the package: its ``__init__`` needs
    ``pkg_resources``, which current setuptools no longer ships.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise TrainingError(
            "68-point landmarks need the face-recognition-models package (pip install '.[train]')",
            code="missing_dependency",
        )
    package = Path(next(iter(spec.submodule_search_locations)))
    path = package / "models" / "shape_predictor_68_face_landmarks.dat"
    if not path.is_file():
        raise TrainingError(f"the 68-point landmark model is missing: {path}", code="missing_dependency")
    return path


def box_from_five(five: np.ndarray) -> tuple[float, float, float, float]:
    """A face box (left, top, right, bottom) like dlib's detector gives, from MTCNN's five points.

    dlib's boxes span roughly brow to chin and cheek to cheek: about 2.2 eye distances wide,
    centred a little below the midpoint of eyes and mouth.
    """
    points = np.asarray(five, dtype=np.float64).reshape(5, 2)
    eyes_mid = (points[0] + points[1]) / 2.0
    mouth_mid = (points[3] + points[4]) / 2.0
    eye_distance = float(np.linalg.norm(points[1] - points[0]))
    eye_to_mouth = float(np.linalg.norm(mouth_mid - eyes_mid))
    side = max(2.2 * eye_distance, 2.0 * eye_to_mouth)
    centre = (eyes_mid + mouth_mid) / 2.0 + (mouth_mid - eyes_mid) * 0.15
    half = side / 2.0
    return (centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half)


def crop_landmarks68(
    images: np.ndarray,
    five_points: np.ndarray,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """(N, 68, 2) float32 landmarks for uint8 crops (N, S, S, 3); NaN where ``five_points`` is NaN."""
    try:
        import dlib
    except ImportError as exc:
        raise TrainingError(
            "68-point landmarks need the dlib-bin package (pip install '.[train]')", code="missing_dependency"
        ) from exc
    predictor = dlib.shape_predictor(str(predictor_path()))
    count = len(images)
    out = np.full((count, 68, 2), np.nan, dtype=np.float32)
    for index in range(count):
        five = five_points[index]
        if not np.isfinite(five).all():
            continue
        left, top, right, bottom = box_from_five(five)
        rect = dlib.rectangle(round(left), round(top), round(right), round(bottom))
        shape = predictor(np.ascontiguousarray(images[index]), rect)
        out[index] = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
        if progress and (index + 1) % 1000 == 0:
            progress(index + 1, count)
    return out


def cached_crop_landmarks68(
    images: np.ndarray,
    five_points: np.ndarray,
    *,
    cache_dir: str | Path | None,
    say: Callable[[str], None] | None = None,
) -> np.ndarray:
    """``crop_landmarks68`` keyed by the crops' bytes and their five points, computed once."""
    digest = hashlib.sha256()
    digest.update(str(images.shape).encode())
    digest.update(np.ascontiguousarray(images[:: max(1, len(images) // 512)]).tobytes())
    digest.update(np.nan_to_num(five_points).tobytes())
    path = (
        Path(cache_dir) / f"landmarks68-{digest.hexdigest()[:20]}-v{LANDMARKS68_VERSION}.npy"
        if cache_dir is not None
        else None
    )
    cached = load_cached(path, (len(images), 68, 2))
    if cached is not None:
        return cached
    if say:
        say(f"placing 68 landmarks on {len(images)} face crops (once; cached)")
    marks = crop_landmarks68(images, five_points, progress=(lambda d, n: say(f"  {d}/{n}")) if say else None)
    found = int(np.isfinite(marks[:, 0, 0]).sum())
    save_cached(path, marks, {"crops": len(images), "found": found, "version": LANDMARKS68_VERSION})
    return marks
