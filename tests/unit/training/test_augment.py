"""Augmentations keep shape and dtype, are seedable, and do what they say."""

from __future__ import annotations

import numpy as np
import pytest

from tests.utils.training import source_image
from training import augment


@pytest.fixture()
def face() -> np.ndarray:
    return source_image(64)


def _all(face: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "jpeg": augment.jpeg_compress(face, quality=30),
        "h264": augment.h264_like(face, quality=40),
        "blur": augment.gaussian_blur(face, sigma=1.5),
        "noise": augment.gaussian_noise(face, rng=rng, std=8.0),
        "colour": augment.color_jitter(face, brightness=0.1, contrast=1.2, saturation=0.7, hue_shift=10),
        "flip": augment.horizontal_flip(face),
        "downscale": augment.downscale_upscale(face, scale=0.5),
        "cutout": augment.cutout(face, rng=rng, fraction=0.3),
        "affine": augment.shift_scale_rotate(face, shift=(0.05, -0.05), scale=1.05, angle=8),
        "chain": augment.Augmenter(1.0)(face, rng),
    }


def test_augmentations_keep_shape_and_dtype_and_change_pixels(face: np.ndarray) -> None:
    for name, out in _all(face, np.random.default_rng(0)).items():
        assert out.shape == face.shape and out.dtype == np.uint8, name
        if name != "chain":  # the chain may draw the identity
            assert not np.array_equal(out, face), name


def test_flip_mirrors_columns(face: np.ndarray) -> None:
    assert np.array_equal(augment.horizontal_flip(face)[:, 0], face[:, -1])


def test_cutout_greys_exactly_one_rectangle(face: np.ndarray) -> None:
    out = augment.cutout(face, rng=np.random.default_rng(1), fraction=0.25)
    changed = np.any(out != face, axis=2)
    rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
    assert (rows.max() - rows.min() + 1) <= 16 and (cols.max() - cols.min() + 1) <= 16
    assert np.all(out[changed] == 127)


def test_jpeg_quality_orders_the_error(face: np.ndarray) -> None:
    error_low = np.abs(augment.jpeg_compress(face, quality=10).astype(int) - face).mean()
    error_high = np.abs(augment.jpeg_compress(face, quality=95).astype(int) - face).mean()
    assert error_low > error_high


def test_chain_is_reproducible_with_a_seed_and_identity_at_zero_strength(face: np.ndarray) -> None:
    chain = augment.Augmenter(1.0)
    outs = [chain(face, np.random.default_rng(7)) for _ in range(2)]
    assert np.array_equal(outs[0], outs[1])
    assert augment.Augmenter(0.0)(face, np.random.default_rng(7)) is face


def test_wrong_input_is_refused(face: np.ndarray) -> None:
    with pytest.raises(ValueError, match="RGB uint8"):
        augment.gaussian_blur(face.astype(np.float32), sigma=1.0)
    with pytest.raises(ValueError, match="RGB uint8"):
        augment.Augmenter()(face[:, :, 0], np.random.default_rng(0))
