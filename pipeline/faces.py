"""Face detection: MTCNN on downscaled frames, and on small squares around faces already seen.

Detection runs on a copy of each frame scaled so its long side is ``detect_long_side`` (MTCNN's
cost grows with pixels, while a face worth classifying stays findable at that size); boxes and
landmarks are mapped back to the frame's own pixels. At most ``max_faces`` faces are kept per
frame, the largest first, so a crowd costs no more to classify than a few faces.

Faces too small to tell the classifier anything (``smallest_face_to_score``) are not looked for:
the image pyramid starts at the scale where they are MTCNN's 12-pixel window. Following faces
between whole-frame detections is ``pipeline.following``; tracks are ``pipeline.tracking``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

__all__ = [
    "Box",
    "Detection",
    "FaceDetector",
    "box_iou",
    "crop_growth",
    "largest_faces",
    "search_square",
    "smallest_face_to_score",
]

Box = tuple[float, float, float, float]

# MTCNN's first network sees 12×12 windows: faces smaller than this in the detection copy are
# invisible to it whatever min_face_size says.
MTCNN_SMALLEST_FACE = 12.0
# Re-detection near a followed face: a square SEARCH_SPAN times the face's size around its last
# box (its centre may move a face size either way between samples), scaled so the face is
# SEARCH_FACE_PX pixels there. Faces at most SEARCH_GROWTH times larger or smaller are looked
# for: one that changed more is another face or a zoom, which a whole-frame detection confirms.
SEARCH_SPAN = 3.0
SEARCH_FACE_PX = 48.0
SEARCH_GROWTH = 1.6
SEARCH_SIZE = round(SEARCH_SPAN * SEARCH_FACE_PX)
# A search square holds the followed face and seldom another: O-net, the cascade's costliest
# stage, checks only this many of R-net's likeliest boxes in it.
SEARCH_REFINED = 4


@dataclass(frozen=True)
class Detection:
    """One face MTCNN found: box (x1, y1, x2, y2), probability, five landmarks (x, y)."""

    box: Box
    score: float
    landmarks: tuple[tuple[float, float], ...]

    @property
    def size(self) -> float:
        return max(self.box[2] - self.box[0], self.box[3] - self.box[1])


def largest_faces(detections: Sequence[Detection], limit: int) -> list[Detection]:
    """The ``limit`` largest detections (by box area; the likelier first among equals), largest
    first. The largest faces are the ones a viewer sees and the ones with pixels enough to judge."""
    ranked = sorted(
        detections,
        key=lambda d: (-max(d.box[2] - d.box[0], 0.0) * max(d.box[3] - d.box[1], 0.0), -d.score),
    )
    return ranked[: max(0, limit)]


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes; 0 when either is empty."""
    ix1, iy1 = max(a[0], b[0]), max(a[1], b[1])
    ix2, iy2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, ix2 - ix1) * max(0.0, iy2 - iy1)
    area_a = max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1])
    area_b = max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])
    union = area_a + area_b - inter
    return inter / union if union > 0 else 0.0


def crop_growth(framing: dict[str, Any]) -> float:
    """How many times a face box's size the classifier's crop is (``crop_face``'s framing)."""
    square_scale = framing.get("square_scale")
    if square_scale is not None:
        return float(square_scale)
    return 1.0 + float(framing.get("margin", 0.0))


def smallest_face_to_score(
    width: int, height: int, *, input_size: int, growth: float, max_upscale: float, frame_fraction: float
) -> float:
    """The smallest face (box side, in the frame's pixels) worth finding for a classifier that sees
    ``input_size`` pixels of a crop ``growth`` times the face: one its crop enlarges at most
    ``max_upscale`` times. A 20-pixel face blown up to 224 pixels tells the classifier little, and
    every pyramid scale spent on such faces costs MTCNN more than the larger ones together.

    In a frame too small for any face to pass that, a face ``frame_fraction`` of its short side
    is one of the video's main subjects and is scored anyway: the smaller of the two is returned.
    0 when ``max_upscale`` is 0 or less (no limit from the classifier).
    """
    if max_upscale <= 0 or input_size <= 0:
        return 0.0
    worth = input_size / (max_upscale * max(growth, 1e-6))
    if frame_fraction > 0:
        worth = min(worth, frame_fraction * min(width, height))
    return worth



def search_square(box: Sequence[float]) -> tuple[float, float, float]:
    """(left, top, side) of the square searched for a face last seen in ``box``."""
    side = max(box[2] - box[0], box[3] - box[1], 1.0) * SEARCH_SPAN
    cx, cy = (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0
    return cx - side / 2.0, cy - side / 2.0, side


def _cut_square(frame: np.ndarray, left: float, top: float, side: float, size: int) -> np.ndarray:
    """size×size picture of the square (left, top, side) of ``frame``, black outside the frame.

    Only the part inside the frame is resized (a view, never a copy of the frame); the padding is
    added at the output's scale.
    """
    height, width = frame.shape[:2]
    scale = size / side
    out = np.zeros((size, size, 3), dtype=np.uint8)
    x1, y1 = max(0, math.floor(left)), max(0, math.floor(top))
    x2, y2 = min(width, math.ceil(left + side)), min(height, math.ceil(top + side))
    if x2 <= x1 or y2 <= y1:
        return out
    ox1 = min(size - 1, max(0, round((x1 - left) * scale)))
    oy1 = min(size - 1, max(0, round((y1 - top) * scale)))
    ox2 = max(ox1 + 1, min(size, round((x2 - left) * scale)))
    oy2 = max(oy1 + 1, min(size, round((y2 - top) * scale)))
    region = frame[y1:y2, x1:x2]
    shrinking = region.shape[0] > oy2 - oy1 or region.shape[1] > ox2 - ox1
    out[oy1:oy2, ox1:ox2] = cv2.resize(
        region, (ox2 - ox1, oy2 - oy1), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    )
    return out


def _continuation(previous: Sequence[float], candidates: Sequence[Detection]) -> Detection | None:
    """The candidate that continues a face last seen in ``previous``: of those at most
    SEARCH_GROWTH times larger or smaller, the one that overlaps it most or, when none overlaps,
    the nearest; None when there is none."""
    size = max(previous[2] - previous[0], previous[3] - previous[1], 1e-6)
    cx, cy = (previous[0] + previous[2]) / 2.0, (previous[1] + previous[3]) / 2.0
    best: tuple[float, float] | None = None
    chosen = None
    for candidate in candidates:
        ratio = candidate.size / size
        if not 1.0 / SEARCH_GROWTH <= ratio <= SEARCH_GROWTH:
            continue
        ccx, ccy = (candidate.box[0] + candidate.box[2]) / 2.0, (candidate.box[1] + candidate.box[3]) / 2.0
        key = (box_iou(previous, candidate.box), -math.hypot(ccx - cx, ccy - cy))
        if best is None or key > best:
            best, chosen = key, candidate
    return chosen


class FaceDetector:
    """facenet-pytorch MTCNN, loaded once, run in batches on downscaled copies of the frames."""

    def __init__(
        self,
        *,
        device: str = "cpu",
        detect_long_side: int = 640,
        min_face_size: float = 20.0,
        det_threshold: float = 0.95,
        batch_size: int = 32,
        max_faces: int = 16,
    ) -> None:
        import torch
        from facenet_pytorch import ONet, PNet, RNet

        from pipeline._mtcnn import Cascade

        self.device = torch.device(device)
        self.detect_long_side = detect_long_side
        self.min_face_size = float(min_face_size)
        self.det_threshold = float(det_threshold)
        self.batch_size = max(1, batch_size)
        self.max_faces = max(1, max_faces)
        # facenet-pytorch's trained nets (their weights ship inside the wheel), run by our batched
        # cascade; on CUDA in half precision like the classifier.
        nets = [net.to(self.device) for net in (PNet(), RNet(), ONet())]
        self._dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        if self._dtype == torch.float16:
            nets = [net.half() for net in nets]
        self._cascade = Cascade(*nets)

    def _detect_scale(self, height: int, width: int) -> float:
        """Size of the detection copy relative to the frame."""
        if self.detect_long_side <= 0:
            return 1.0
        return min(1.0, self.detect_long_side / max(height, width))

    def smallest_face(self, height: int, width: int, smallest_face: float = 0.0) -> float:
        """The smallest face looked for in a frame of this size, in its own pixels: ``smallest_face``
        or, when larger, ``min_face_size`` (and MTCNN's 12-pixel window) in the detection copy."""
        floor = max(MTCNN_SMALLEST_FACE, self.min_face_size) / self._detect_scale(height, width)
        return max(floor, float(smallest_face))

    def detect(
        self, frames: np.ndarray, *, max_faces: int | None = None, smallest_face: float = 0.0
    ) -> list[list[Detection]]:
        """Faces in each of ``frames`` (N×H×W×3 uint8 RGB), boxes in the frames' own pixels.

        Faces smaller than ``min_face_size`` pixels in the detection copy or ``smallest_face``
        pixels in the frame (the pyramid skips the scales that would find only those), or less
        likely than ``det_threshold``, are dropped; of the rest, the ``max_faces`` largest are kept
        (the detector's own unless given), largest first.
        """
        limit = self.max_faces if max_faces is None else max(1, max_faces)
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"expected frames (N, H, W, 3), got shape {frames.shape}")
        if len(frames) == 0:
            return []
        height, width = frames.shape[1:3]
        scale = self._detect_scale(height, width)
        small_w, small_h = max(1, round(width * scale)), max(1, round(height * scale))
        smallest = self.smallest_face(height, width, smallest_face)
        mtcnn_min = smallest * scale
        results: list[list[Detection]] = []
        for start in range(0, len(frames), self.batch_size):
            chunk = frames[start : start + self.batch_size]
            if scale < 1.0:
                small = np.stack([
                    cv2.resize(frame, (small_w, small_h), interpolation=cv2.INTER_AREA) for frame in chunk
                ])
            else:
                small = np.ascontiguousarray(chunk)
            found = self._cascade(small, min_face_size=mtcnn_min, device=self.device, dtype=self._dtype)
            sx, sy = width / small_w, height / small_h
            for boxes, probs, marks in zip(found.boxes, found.probs, found.landmarks, strict=True):
                found_here = self._frame_detections(
                    boxes.numpy(), probs.numpy(), marks.numpy(), sx, sy, (0.0, 0.0), smallest
                )
                results.append(largest_faces(found_here, limit))
        return results

    def detect_near(
        self, frame: np.ndarray, boxes: Sequence[Box], *, smallest_face: float = 0.0
    ) -> list[Detection | None]:
        """Re-detect, in one frame (H×W×3 uint8 RGB), each face last seen in ``boxes``.

        Each face is looked for in a square ``SEARCH_SPAN`` times its size around its last box,
        scaled so the face is ``SEARCH_FACE_PX`` pixels there: one small picture per face, all
        through the cascade at once. Per box: the detection in its square that continues it best
        (``_continuation``), or None when none does. The same thresholds and smallest face as
        ``detect`` apply.
        """
        if frame.ndim != 3 or frame.shape[-1] != 3:
            raise ValueError(f"expected a frame (H, W, 3), got shape {frame.shape}")
        if not boxes:
            return []
        height, width = frame.shape[:2]
        smallest = self.smallest_face(height, width, smallest_face)
        squares = [search_square(box) for box in boxes]
        pictures = np.stack([_cut_square(frame, left, top, side, SEARCH_SIZE) for left, top, side in squares])
        # Only the scales of faces the followed one may have become: a few tiny P-net passes.
        found = self._cascade(
            pictures,
            min_face_size=max(MTCNN_SMALLEST_FACE, SEARCH_FACE_PX / SEARCH_GROWTH),
            max_face_size=SEARCH_FACE_PX * SEARCH_GROWTH,
            refined_per_frame=SEARCH_REFINED,
            device=self.device,
            dtype=self._dtype,
        )
        results: list[Detection | None] = []
        for box, (left, top, side), found_boxes, probs, marks in zip(
            boxes, squares, found.boxes, found.probs, found.landmarks, strict=True
        ):
            per_pixel = side / SEARCH_SIZE
            candidates = self._frame_detections(
                found_boxes.numpy(), probs.numpy(), marks.numpy(), per_pixel, per_pixel, (left, top), smallest
            )
            results.append(_continuation(box, candidates))
        return results

    def _frame_detections(
        self,
        boxes: np.ndarray,
        probs: np.ndarray,
        points: np.ndarray,
        sx: float,
        sy: float,
        origin: tuple[float, float],
        smallest: float,
    ) -> list[Detection]:
        """Detections that pass the thresholds, mapped to the frame: x · sx + origin x."""
        ox, oy = origin
        detections = []
        for box, prob, marks in zip(boxes, probs, points, strict=True):
            if not math.isfinite(prob) or prob < self.det_threshold:
                continue
            x1, y1, x2, y2 = box[0] * sx + ox, box[1] * sy + oy, box[2] * sx + ox, box[3] * sy + oy
            if max(x2 - x1, y2 - y1) < smallest:
                continue
            landmarks = tuple((float(x * sx + ox), float(y * sy + oy)) for x, y in marks)
            detections.append(Detection((float(x1), float(y1), float(x2), float(y2)), float(prob), landmarks))
        return detections
