"""Tiny labelled face-crop folders for training and evaluation tests, generated from skimage images."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
from skimage import data as skdata

from training.config import TrainConfig

__all__ = ["make_crop_folder", "source_image", "tiny_run_config"]


def source_image(size: int = 64) -> np.ndarray:
    """The astronaut's head, RGB uint8 size×size: a real face for self-blending tests."""
    head = skdata.astronaut()[20:280, 110:340]
    return cv2.resize(head, (size, size), interpolation=cv2.INTER_AREA)


def _identity_crop(identity: int, rng: np.random.Generator, size: int) -> np.ndarray:
    pictures = (skdata.astronaut(), skdata.chelsea(), skdata.coffee(), skdata.rocket())
    picture = pictures[identity % len(pictures)]
    height, width = picture.shape[:2]
    side = int(min(height, width) * rng.uniform(0.4, 0.6))
    top = int(rng.integers(0, height - side))
    left = int(rng.integers(0, width - side))
    crop = picture[top : top + side, left : left + side]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


def make_crop_folder(
    root: str | Path,
    *,
    identities: int = 12,
    fakes_per_identity: int = 2,
    size: int = 48,
    seed: int = 0,
    fmt: str = "csv",
    only_real: bool = False,
) -> Path:
    """A DFDC-like crop folder: one REAL crop per identity and FAKE derivatives of it.

    The fakes carry an unmistakable manipulation (a strong red cast over a central square), so
    a few training steps are enough for the loss to fall.
    """
    root = Path(root)
    (root / "faces").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows: list[tuple[str, str, str]] = []
    for identity in range(identities):
        real = _identity_crop(identity, rng, size)
        real_name = f"real{identity:03d}.jpg"
        cv2.imwrite(str(root / "faces" / real_name), real[:, :, ::-1])
        rows.append((real_name, "REAL", ""))
        if only_real:
            continue
        for number in range(fakes_per_identity):
            fake = real.copy()
            inner = slice(size // 4, 3 * size // 4)
            region = fake[inner, inner].astype(np.int16)
            region[:, :, 0] += 120
            region[:, :, 1:] -= 60
            fake[inner, inner] = np.clip(region, 0, 255).astype(np.uint8)
            name = f"fake{identity:03d}_{number}.jpg"
            cv2.imwrite(str(root / "faces" / name), fake[:, :, ::-1])
            rows.append((name, "FAKE", f"real{identity:03d}.mp4"))
    if fmt == "csv":
        with open(root / "metadata.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["file", "label", "original"])
            writer.writerows(rows)
    else:
        doc = {
            name: {"label": label, **({"original": original} if original else {})}
            for name, label, original in rows
        }
        (root / "metadata.json").write_text(json.dumps(doc))
    return root


def tiny_run_config(folder: Path, data: Path, **settings: object) -> TrainConfig:
    """A training run of 32 px crops on the CPU, all of it in ``folder``: the checkpoint
    (``model.safetensors``), the run (``run/``) and the crop cache (``cache/``). ``settings``
    override these and set the rest."""
    values: dict[str, object] = {
        "data": [str(data)],
        "out": str(folder / "model.safetensors"),
        "run_dir": str(folder / "run"),
        "cache_dir": str(folder / "cache"),
        "input_size": 32,
        "device": "cpu",
        "progress": False,
    }
    values.update(settings)
    return TrainConfig(**values)  # type: ignore[arg-type]
