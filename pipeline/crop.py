"""Face crops: the one place that decides how a detected face becomes a model input.

Training reads crops made here too, so inference and training see faces framed the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

__all__ = ["crop_face", "isotropic_resize", "margin_box", "pad_to_square", "square_box"]


def margin_box(
    box: Sequence[float], margin: float, frame_width: int, frame_height: int
) -> tuple[int, int, int, int]:
    """Grow ``box`` (x1, y1, x2, y2) by ``margin`` × its width and height (half on each side), clipped."""
    x1, y1, x2, y2 = (float(v) for v in box)
    width, height = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    grow_x, grow_y = width * margin / 2.0, height * margin / 2.0
    left = int(np.floor(max(0.0, x1 - grow_x)))
    top = int(np.floor(max(0.0, y1 - grow_y)))
    right = int(np.ceil(min(float(frame_width), x2 + grow_x)))
    bottom = int(np.ceil(min(float(frame_height), y2 + grow_y)))
    return left, top, max(right, left + 1), max(bottom, top + 1)


def square_box(box: Sequence[float], scale: float, shift_y: float) -> tuple[int, int, int, int]:
    """A square of side ``scale`` × the box's width around the box's centre, moved down by
    ``shift_y`` × its side (up when negative). Not clipped: it may reach outside the frame."""
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(x2 - x1, 1.0) * scale
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0 + shift_y * side
    left, top = round(cx - side / 2.0), round(cy - side / 2.0)
    length = max(1, round(side))
    return left, top, left + length, top + length


def isotropic_resize(image: np.ndarray, size: int) -> np.ndarray:
    """Scale so the longer side is ``size``, keeping the aspect ratio.

    Shrinking uses area interpolation (no aliasing); enlarging uses cubic.
    """
    height, width = image.shape[:2]
    if height == 0 or width == 0:
        raise ValueError("cannot resize an empty image")
    scale = size / max(height, width)
    if scale == 1.0:
        return image
    new_w = max(1, round(width * scale))
    new_h = max(1, round(height * scale))
    interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_CUBIC
    return cv2.resize(image, (new_w, new_h), interpolation=interpolation)


def pad_to_square(image: np.ndarray, size: int) -> np.ndarray:
    """Centre ``image`` (at most size×size) on a black size×size canvas."""
    height, width = image.shape[:2]
    if height > size or width > size:
        raise ValueError(f"image {width}×{height} does not fit in {size}×{size}")
    canvas = np.zeros((size, size, image.shape[2]), dtype=image.dtype)
    top = (size - height) // 2
    left = (size - width) // 2
    canvas[top : top + height, left : left + width] = image
    return canvas


def crop_face(
    frame: np.ndarray,
    box: Sequence[float],
    *,
    margin: float,
    size: int,
    square_scale: float | None = None,
    shift_y: float = 0.0,
) -> np.ndarray:
    """Cut the face in ``box`` out of an RGB uint8 ``frame`` as a size×size model input.

    By default the box grows by ``margin``, is clipped to the frame, resized isotropically so its
    longer side is ``size`` and padded to a square: faces are never stretched. With
    ``square_scale`` the crop is instead the square of ``square_box`` (``margin`` unused), the
    framing of datasets cut as fixed squares around the face; what lies outside the frame is black.
    """
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an RGB frame (H, W, 3), got shape {frame.shape}")
    if square_scale is not None:
        return _square_crop(frame, box, square_scale, shift_y, size)
    left, top, right, bottom = margin_box(box, margin, frame.shape[1], frame.shape[0])
    region = frame[top:bottom, left:right]
    if region.size == 0:
        raise ValueError(f"box {tuple(box)} lies outside the {frame.shape[1]}×{frame.shape[0]} frame")
    return pad_to_square(isotropic_resize(region, size), size)


def _square_crop(
    frame: np.ndarray, box: Sequence[float], scale: float, shift_y: float, size: int
) -> np.ndarray:
    height, width = frame.shape[:2]
    left, top, right, bottom = square_box(box, scale, shift_y)
    x1, y1, x2, y2 = max(left, 0), max(top, 0), min(right, width), min(bottom, height)
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"box {tuple(box)} lies outside the {width}×{height} frame")
    region = frame[y1:y2, x1:x2]
    if (x1, y1, x2, y2) != (left, top, right, bottom):
        region = cv2.copyMakeBorder(
            region, y1 - top, bottom - y2, x1 - left, right - x2, cv2.BORDER_CONSTANT, value=(0, 0, 0)
        )
    side = region.shape[0]
    if side == size:
        return np.ascontiguousarray(region)
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    return cv2.resize(region, (size, size), interpolation=interpolation)
