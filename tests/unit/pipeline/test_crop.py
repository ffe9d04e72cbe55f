"""Face crops: margins, isotropic resize (aspect kept) and square padding."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.crop import crop_face, isotropic_resize, margin_box, pad_to_square, square_box


def test_margin_box_grows_half_the_margin_on_each_side() -> None:
    assert margin_box((100, 100, 200, 150), 0.3, 1000, 1000) == (85, 92, 215, 158)


def test_margin_box_is_clipped_to_the_frame() -> None:
    assert margin_box((-20, 5, 50, 60), 0.5, 40, 40) == (0, 0, 40, 40)


@pytest.mark.parametrize(("height", "width"), [(100, 50), (50, 100), (300, 300), (20, 7)])
def test_isotropic_resize_keeps_the_aspect_ratio(height: int, width: int) -> None:
    image = np.zeros((height, width, 3), dtype=np.uint8)
    out = isotropic_resize(image, 64)
    assert max(out.shape[:2]) == 64
    assert out.shape[0] / out.shape[1] == pytest.approx(height / width, rel=0.1)


def test_pad_to_square_centres_the_image_on_black() -> None:
    image = np.full((10, 4, 3), 200, dtype=np.uint8)
    out = pad_to_square(image, 10)
    assert out.shape == (10, 10, 3)
    assert (out[:, 3:7] == 200).all()
    assert (out[:, :3] == 0).all() and (out[:, 7:] == 0).all()


def test_pad_to_square_refuses_an_image_too_large() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        pad_to_square(np.zeros((12, 4, 3), dtype=np.uint8), 10)


def test_crop_face_never_stretches_a_tall_face() -> None:
    frame = np.zeros((400, 400, 3), dtype=np.uint8)
    frame[100:300, 150:250] = 255  # a white box twice as tall as wide
    crop = crop_face(frame, (150, 100, 250, 300), margin=0.0, size=64)
    assert crop.shape == (64, 64, 3)
    white_columns = np.nonzero(crop[32, :, 0] > 128)[0]
    white_rows = np.nonzero(crop[:, 32, 0] > 128)[0]
    assert len(white_rows) == 64
    assert 30 <= len(white_columns) <= 34  # half as wide: aspect kept, padded left and right
    assert crop[32, 0, 0] == 0 and crop[32, 63, 0] == 0


def test_crop_face_with_margin_includes_context() -> None:
    frame = np.zeros((200, 200, 3), dtype=np.uint8)
    frame[50:150, 50:150] = 255
    tight = crop_face(frame, (50, 50, 150, 150), margin=0.0, size=50)
    loose = crop_face(frame, (50, 50, 150, 150), margin=1.0, size=50)
    assert tight.mean() > 250  # all face
    assert 0.2 < loose.mean() / 255 < 0.3  # the face covers a quarter of a box twice as wide


def test_crop_face_rejects_a_box_outside_the_frame_and_a_bad_frame() -> None:
    frame = np.zeros((100, 100, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="outside"):
        crop_face(frame, (150, 150, 180, 180), margin=0.0, size=32)
    with pytest.raises(ValueError, match="RGB frame"):
        crop_face(np.zeros((100, 100), dtype=np.uint8), (0, 0, 10, 10), margin=0.0, size=32)


def test_square_box_is_scaled_from_the_width_and_moved_down() -> None:
    # Box 100 wide, 140 tall, centre (150, 170): side 120, centre moved down by 0.1 × 120.
    assert square_box((100, 100, 200, 240), 1.2, 0.1) == (90, 122, 210, 242)
    assert square_box((100, 100, 200, 240), 1.0, 0.0) == (100, 120, 200, 220)
    assert square_box((100, 100, 200, 240), 1.0, -0.2) == (100, 100, 200, 200)


def test_square_crop_cuts_exactly_that_square() -> None:
    frame = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    box = (100, 100, 200, 240)
    crop = crop_face(frame, box, margin=0.7, size=120, square_scale=1.2, shift_y=0.1)
    left, top, right, bottom = square_box(box, 1.2, 0.1)
    assert crop.shape == (120, 120, 3)
    np.testing.assert_array_equal(crop, frame[top:bottom, left:right])  # margin is unused


def test_square_crop_pads_what_lies_outside_the_frame_with_black() -> None:
    frame = np.full((100, 100, 3), 255, dtype=np.uint8)
    crop = crop_face(frame, (-20, 10, 40, 70), margin=0.0, size=60, square_scale=1.0, shift_y=0.0)
    assert crop.shape == (60, 60, 3)
    assert (crop[:, :20] == 0).all() and (crop[:, 20:] == 255).all()
    with pytest.raises(ValueError, match="outside"):
        crop_face(frame, (300, 300, 340, 340), margin=0.0, size=32, square_scale=1.0)


def test_square_crop_resizes_to_the_model_input() -> None:
    frame = np.zeros((400, 400, 3), dtype=np.uint8)
    frame[100:300, 100:300] = 200
    crop = crop_face(frame, (100, 100, 300, 300), margin=0.0, size=50, square_scale=1.0)
    assert crop.shape == (50, 50, 3) and (crop == 200).all()
