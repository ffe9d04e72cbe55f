"""The face margin measured on tight crops matches how the crops were cut around the detector's box."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from training.framing import measure_margin

pytestmark = pytest.mark.integration

# Where facenet-pytorch's MTCNN finds the astronaut's face in skimage's picture (x1, y1, x2, y2).
ASTRONAUT_BOX = (181.0, 62.0, 268.0, 172.0)


def _square_crops(root: Path, margin: float) -> Path:
    """Square crops centred on the face, side = box height × (1 + margin), at three sizes."""
    image = skdata.astronaut()
    x1, y1, x2, y2 = ASTRONAUT_BOX
    cx, cy, side = (x1 + x2) / 2, (y1 + y2) / 2, (y2 - y1) * (1 + margin)
    top, left = round(cy - side / 2), round(cx - side / 2)
    crop = image[top : top + round(side), left : left + round(side)]
    (root / "faces").mkdir(parents=True)
    with open(root / "metadata.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "label", "original"])
        for number, size in enumerate((160, 192, 224)):
            name = f"r{number}.jpg"
            resized = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
            cv2.imwrite(str(root / "faces" / name), resized[:, :, ::-1])
            writer.writerow([name, "REAL", ""])
    return root


@pytest.mark.parametrize("margin", [0.2, 0.6])
def test_measured_margin_recovers_the_cut(tmp_path: Path, margin: float) -> None:
    measurement = measure_margin(_square_crops(tmp_path / "crops", margin), samples=3)
    assert measurement["detected"] == 3
    assert measurement["face_margin"] == pytest.approx(margin, abs=0.12)
    assert np.isfinite(measurement["crop_over_box_width_median"])
