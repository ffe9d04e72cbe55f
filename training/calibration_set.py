"""The labelled crops an export calibrates on: the validation split, optionally with self-blends.

A model trained only on self-blended pseudo-fakes may score the dataset's own fakes barely above
its real faces; fitted on those alone, the calibration flattens every score towards 0.5 and the
inconclusive band swallows the whole scale. Adding one self-blend of each held-out REAL face
gives the fit a FAKE class the model was trained to see, while the REAL faces stay the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.config import CALIBRATION_SETS
from training.data import rng_for
from training.datasets import CropSet
from training.errors import TrainingError
from training.sbi import self_blend

__all__ = ["CalibrationSet", "build_calibration_set"]

# The stream of ``rng_for`` that draws the calibration self-blends (other numbers seed training).
_STREAM = 9


@dataclass
class CalibrationSet:
    """The validation crops first, in their order, then the self-blends (labelled FAKE)."""

    images: np.ndarray  # (N, S, S, 3) uint8
    labels: np.ndarray  # int64 (N,)
    name: str  # one of ``CALIBRATION_SETS``
    counts: dict[str, int]  # "real", "fake" (validation crops) and "self_blends"


def build_calibration_set(val_set: CropSet, choice: str, *, seed: int) -> CalibrationSet:
    """``val_set`` as it is ("val"), or with one self-blend of each of its REAL crops appended
    ("val+self-blends"). Each blend is drawn from its own generator, seeded by ``seed`` and the
    crop's row, so the set is the same on every export of the same run."""
    if choice not in CALIBRATION_SETS:
        raise TrainingError(
            f"--calibration must be one of {', '.join(CALIBRATION_SETS)}, got {choice!r}",
            code="invalid_arguments",
        )
    labels = np.asarray(val_set.labels, dtype=np.int64)
    real_rows = np.flatnonzero(labels == 0)
    counts = {"real": int(real_rows.size), "fake": int((labels == 1).sum()), "self_blends": 0}
    if choice == "val" or real_rows.size == 0:
        return CalibrationSet(images=val_set.images, labels=labels, name=choice, counts=counts)
    blends = np.stack(
        [
            self_blend(
                val_set.images[row], rng=rng_for(seed, _STREAM, int(row)), landmarks=None, region="face"
            ).image
            for row in real_rows
        ]
    )
    counts["self_blends"] = int(blends.shape[0])
    return CalibrationSet(
        images=np.concatenate([val_set.images, blends]),
        labels=np.concatenate([labels, np.ones(blends.shape[0], dtype=np.int64)]),
        name=choice,
        counts=counts,
    )
