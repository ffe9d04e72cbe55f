"""Self-blended images change the face only inside the blending mask, reproducibly."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.sbi import face_hull_mask, self_blend
from tests.utils.training import source_image


@pytest.mark.parametrize("seed", range(8))
def test_output_differs_from_source_only_inside_the_mask(seed: int) -> None:
    face = source_image(96)
    result = self_blend(face, rng=np.random.default_rng(seed))
    assert result.image.shape == face.shape and result.image.dtype == np.uint8
    assert result.mask.shape == face.shape[:2] and result.mask.dtype == np.float32
    changed = np.any(result.image != face, axis=2)
    assert changed.any(), "a self-blend must change something"
    assert not np.any(changed & (result.mask == 0)), "pixels outside the mask must be untouched"
    outside = result.mask == 0
    assert outside.any() and outside[0, 0] and outside[0, -1], "the crop's corners lie outside the face hull"


def test_mask_is_soft_bounded_and_centred_on_the_face() -> None:
    mask = face_hull_mask((96, 96), rng=np.random.default_rng(3))
    assert mask.min() >= 0.0 and mask.max() <= 1.0
    assert np.any((mask > 0) & (mask < 1)), "the boundary is blurred"
    ys, xs = np.nonzero(mask > 0.5)
    assert abs(xs.mean() - 48) < 12 and abs(ys.mean() - 52) < 12


def test_landmark_hull_covers_the_landmarks() -> None:
    face = source_image(96)
    landmarks = np.array([[34, 40], [62, 40], [48, 55], [37, 70], [59, 70]], dtype=np.float32)
    result = self_blend(face, rng=np.random.default_rng(0), landmarks=landmarks)
    assert not np.any(np.any(result.image != face, axis=2) & (result.mask == 0))
    mask = face_hull_mask((96, 96), rng=np.random.default_rng(0), landmarks=landmarks)
    for x, y in landmarks.astype(int):
        assert mask[y, x] > 0, (x, y)


def test_same_seed_same_output_other_seed_other_output() -> None:
    face = source_image(64)
    a = self_blend(face, rng=np.random.default_rng(11)).image
    b = self_blend(face, rng=np.random.default_rng(11)).image
    c = self_blend(face, rng=np.random.default_rng(12)).image
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_bad_inputs_are_refused() -> None:
    face = source_image(64)
    with pytest.raises(ValueError, match="RGB uint8"):
        self_blend(face.astype(np.float32), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="five"):
        self_blend(face, rng=np.random.default_rng(0), landmarks=np.zeros((3, 2)))
