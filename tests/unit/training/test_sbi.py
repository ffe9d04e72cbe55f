"""Self-blended images change the face only inside the blending mask, reproducibly."""

from __future__ import annotations

import numpy as np
import pytest

from tests.utils.training import source_image
from training.sbi import face_hull_mask, self_blend


def _blends_with_source_perturbed(face: np.ndarray, count: int, **kwargs: object) -> list:
    blends = [self_blend(face, rng=np.random.default_rng(seed), **kwargs) for seed in range(count)]  # type: ignore[arg-type]
    return [b for b in blends if b.perturbed == "source"]


@pytest.mark.parametrize("seed", range(8))
def test_output_differs_from_source_only_inside_the_mask(seed: int) -> None:
    face = source_image(96)
    result = self_blend(face, rng=np.random.default_rng(seed))
    assert result.image.shape == face.shape and result.image.dtype == np.uint8
    assert result.mask.shape == face.shape[:2] and result.mask.dtype == np.float32
    changed = np.any(result.image != face, axis=2)
    assert changed.any(), "a self-blend must change something"
    if result.perturbed == "source":
        assert not np.any(changed & (result.mask == 0)), "pixels outside the mask must be untouched"
    else:
        # The surroundings were perturbed instead: the boundary is there all the same.
        assert result.perturbed == "target"
        assert np.any(changed & (result.mask == 0))
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
    for result in _blends_with_source_perturbed(face, 4, landmarks=landmarks):
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
    with pytest.raises(ValueError, match="68 landmarks"):
        self_blend(face, rng=np.random.default_rng(0), region="lower")
    with pytest.raises(ValueError, match="region"):
        face_hull_mask((64, 64), rng=np.random.default_rng(0), region="eyes")


def test_either_copy_can_be_the_perturbed_one() -> None:
    face = source_image(64)
    roles = {self_blend(face, rng=np.random.default_rng(seed)).perturbed for seed in range(16)}
    assert roles == {"source", "target"}


def _landmarks68(size: int) -> np.ndarray:
    """A plausible frontal 68-point layout for a face filling a ``size`` crop."""
    s = size / 96.0
    jaw = [(14 + 68 * t, 40 + 40 * np.sin(np.pi * t)) for t in np.linspace(0, 1, 17)]
    brows = [(22 + 5 * i, 30 - (2 if i in (2, 7) else 0)) for i in range(10)]
    nose = [(48, 36 + 4 * i) for i in range(4)] + [(40 + 4 * i, 56) for i in range(5)]
    eyes = [(30 + 3 * i, 40) for i in range(6)] + [(56 + 3 * i, 40) for i in range(6)]
    mouth = [(36 + 24 * t, 68 + 4 * np.sin(np.pi * t)) for t in np.linspace(0, 1, 20)]
    points = np.array(jaw + brows + nose + eyes + mouth, dtype=np.float32) * s
    assert points.shape == (68, 2)
    return points


def test_68_point_hull_follows_the_jaw_and_stays_inside_the_face() -> None:
    face = source_image(96)
    marks = _landmarks68(96)
    mask = face_hull_mask((96, 96), rng=np.random.default_rng(0), landmarks=marks)
    assert mask[60, 48] > 0.9, "the face centre is blended"
    assert mask[2, 2] == 0 and mask[93, 2] == 0, "the corners outside the jaw line are not"
    for result in _blends_with_source_perturbed(face, 6, landmarks=marks):
        assert not np.any(np.any(result.image != face, axis=2) & (result.mask == 0))


def test_lower_face_blend_changes_the_mouth_not_the_eyes() -> None:
    face = source_image(96)
    marks = _landmarks68(96)
    for seed in range(6):
        result = self_blend(face, rng=np.random.default_rng(seed), landmarks=marks, region="lower")
        assert result.perturbed == "source"
        assert result.mask[70, 48] > 0, "the mouth lies inside the blended region"
        assert result.mask[:36].max() == 0, "the eyes and brows stay untouched"
        assert np.array_equal(result.image[:36], face[:36])
        assert np.any(result.image[60:80] != face[60:80])


def _high_frequency_energy(image: np.ndarray) -> float:
    grey = image.astype(np.float64).mean(axis=2)
    return float(np.abs(np.diff(grey, axis=0)).mean() + np.abs(np.diff(grey, axis=1)).mean())


def test_generated_face_loses_the_camera_noise_and_is_reproducible() -> None:
    from training.sbi import generated_face_source

    noisy = np.clip(
        source_image(96).astype(np.int16) + np.random.default_rng(0).integers(-25, 26, (96, 96, 3)), 0, 255
    ).astype(np.uint8)
    for seed in range(6):
        rendered = generated_face_source(noisy, rng=np.random.default_rng(seed))
        assert rendered.shape == noisy.shape and rendered.dtype == np.uint8
        assert _high_frequency_energy(rendered) < 0.7 * _high_frequency_energy(noisy)
        # The face is still the same face: only detail is lost, not the picture.
        assert np.abs(rendered.astype(int) - noisy.astype(int)).mean() < 25
        again = generated_face_source(noisy, rng=np.random.default_rng(seed))
        assert np.array_equal(rendered, again)


def test_generated_region_repaints_the_whole_crop_or_the_face_hull() -> None:
    face = source_image(96)
    whole = hull = 0
    for seed in range(16):
        marks = _landmarks68(96)
        result = self_blend(face, rng=np.random.default_rng(seed), landmarks=marks, region="generated")
        assert result.perturbed == "source"
        assert np.any(result.image != face)
        if result.mask.min() == 1.0:
            whole += 1
        else:
            hull += 1
            assert result.mask[2, 2] == 0 and np.array_equal(result.image[2, 2], face[2, 2])
            assert result.mask[60, 48] > 0.9, "the face itself is repainted at full strength"
    assert whole > 0 and hull > 0
