"""Faces followed through a segment's frames: whole-frame detection only when needed.

``FaceFollower`` runs MTCNN on the whole frame on only some frames and, in between, re-detects
each face in a small square around where it was (``FaceDetector.detect_near``), which costs a few
percent of a whole frame. A scene cut or something moving elsewhere brings the next whole-frame
detection forward.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.faces import Detection, FaceDetector, box_iou, largest_faces, search_square

__all__ = ["FaceFollower", "FollowStats", "scene_changed"]

# Two followed faces re-detected this much on top of each other are one face.
DUPLICATE_IOU = 0.5
# Scene cuts: colours quantised to 4 levels a channel (64 bins) on every 8th pixel each way; a
# total-variation distance above this between consecutive samples is a cut. A face moving over
# a still background changes a few percent of the histogram, a cut to another shot most of it.
_SCENE_LEVELS = 4
_SCENE_STEP = 8
SCENE_CUT_DISTANCE = 0.3
# Something new moving: a face walking in between whole-frame detections. Outside the squares
# searched for the followed faces, more than this share of the same sparse grid's pixels changed
# brightness by more than MOTION_LEVELS since the previous sample. A still camera leaves video
# noise well below both; a moving one makes whole-frame detection run on every such frame, as
# it did before faces were followed.
MOTION_LEVELS = 24
MOTION_SHARE = 0.01


def _scene_signature(frame: np.ndarray) -> np.ndarray:
    """A 64-bin colour histogram of a sparse grid of the frame's pixels, summing to 1."""
    sparse = frame[::_SCENE_STEP, ::_SCENE_STEP]
    levels = (sparse // (256 // _SCENE_LEVELS)).astype(np.int32)
    codes = (levels[..., 0] * _SCENE_LEVELS + levels[..., 1]) * _SCENE_LEVELS + levels[..., 2]
    counts = np.bincount(codes.ravel(), minlength=_SCENE_LEVELS**3).astype(np.float64)
    return counts / max(counts.sum(), 1.0)


def scene_changed(previous: np.ndarray, current: np.ndarray, threshold: float = SCENE_CUT_DISTANCE) -> bool:
    """Whether two frames (H×W×3 uint8) look like different shots: their colour histograms differ
    by more than ``threshold`` (total variation, 0 … 1)."""
    return _scene_distance(_scene_signature(previous), _scene_signature(current)) > threshold


def _scene_distance(a: np.ndarray, b: np.ndarray) -> float:
    return 0.5 * float(np.abs(a - b).sum())


def _sparse_grey(frame: np.ndarray) -> np.ndarray:
    """Brightness of every ``_SCENE_STEP``-th pixel each way (int16, so differences don't wrap)."""
    return frame[::_SCENE_STEP, ::_SCENE_STEP].mean(axis=2, dtype=np.float32).astype(np.int16)


def _moved_elsewhere(previous: np.ndarray, current: np.ndarray, followed: Sequence[Detection]) -> bool:
    """Whether more than MOTION_SHARE of the sparse grid changed by MOTION_LEVELS outside the
    squares searched for the ``followed`` faces."""
    changed = np.abs(current - previous) > MOTION_LEVELS
    outside = np.ones(changed.shape, dtype=bool)
    for detection in followed:
        left, top, side = search_square(detection.box)
        x1, y1 = max(0, int(left // _SCENE_STEP)), max(0, int(top // _SCENE_STEP))
        x2, y2 = math.ceil((left + side) / _SCENE_STEP), math.ceil((top + side) / _SCENE_STEP)
        outside[y1:y2, x1:x2] = False
    count = int(outside.sum())
    return count > 0 and int((changed & outside).sum()) > MOTION_SHARE * changed.size



@dataclass
class FollowStats:
    """What ``FaceFollower`` did: frames detected whole, frames where faces were followed, and why
    whole-frame detections ran early."""

    full: int = 0
    followed: int = 0
    scene_cuts: int = 0
    motion: int = 0
    lost: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"full": self.full, "followed": self.followed, "scene_cuts": self.scene_cuts,
                "motion": self.motion, "lost": self.lost}


class FaceFollower:
    """Faces of one segment's frames, in order, with whole-frame detection only when needed.

    MTCNN searches the whole frame on the first frame, then every ``detect_interval``-th frame, on
    a scene cut (``scene_changed``), when something moves outside the followed faces (a face
    walking in) and on any frame where a face it follows is not found again. On the other frames
    each face of the previous frame is re-detected near where it was
    (``FaceDetector.detect_near``), so every face returned is a detection of its own frame, with
    its own box and probability. A face that appears without moving (faded in, turned towards
    the camera) is found at the next whole-frame detection, at most ``detect_interval - 1``
    frames late. ``detect_interval`` 1: every frame is searched whole, exactly as
    ``FaceDetector.detect`` does.

    Call ``detect`` with consecutive chunks of the same segment's frames.
    """

    def __init__(
        self,
        detector: FaceDetector,
        *,
        detect_interval: int = 4,
        max_faces: int | None = None,
        smallest_face: float = 0.0,
    ) -> None:
        self.detector = detector
        self.detect_interval = max(1, detect_interval)
        self.max_faces = max_faces
        self.smallest_face = smallest_face
        self.stats = FollowStats()
        self._followed: list[Detection] = []
        self._since_full: int | None = None  # frames since the last whole-frame detection
        self._previous: np.ndarray | None = None  # the previous frame's scene signature
        self._previous_grey: np.ndarray | None = None  # and its sparse grid's brightness

    def detect(self, frames: np.ndarray) -> list[list[Detection]]:
        """Faces in each of ``frames`` (N×H×W×3 uint8 RGB), in the frames' own pixels."""
        if self.detect_interval <= 1:
            self.stats.full += len(frames)
            return self.detector.detect(frames, max_faces=self.max_faces, smallest_face=self.smallest_face)
        return [self._one(frame) for frame in frames]

    def _one(self, frame: np.ndarray) -> list[Detection]:
        signature = _scene_signature(frame)
        cut = self._previous is not None and _scene_distance(self._previous, signature) > SCENE_CUT_DISTANCE
        self._previous = signature
        grey = _sparse_grey(frame)
        previous_grey, self._previous_grey = self._previous_grey, grey
        due = self._since_full is None or self._since_full + 1 >= self.detect_interval
        found: list[Detection] | None = None
        if due:
            pass
        elif cut:
            self.stats.scene_cuts += 1
        elif previous_grey is not None and _moved_elsewhere(previous_grey, grey, self._followed):
            self.stats.motion += 1
        else:
            found = self._follow(frame)
        if found is None:
            found = self.detector.detect(
                frame[None], max_faces=self.max_faces, smallest_face=self.smallest_face
            )[0]
            self.stats.full += 1
            self._since_full = 0
        else:
            self.stats.followed += 1
            self._since_full = (self._since_full or 0) + 1
        self._followed = found
        return found

    def _follow(self, frame: np.ndarray) -> list[Detection] | None:
        """The followed faces re-detected in ``frame``; None when any of them was not found."""
        if not self._followed:
            return []
        again = self.detector.detect_near(
            frame, [d.box for d in self._followed], smallest_face=self.smallest_face
        )
        if any(d is None for d in again):
            self.stats.lost += 1
            return None
        kept: list[Detection] = []
        for detection in sorted((d for d in again if d is not None), key=lambda d: -d.score):
            # Two faces that came together are found twice in their overlapping squares: one face.
            if all(box_iou(detection.box, other.box) < DUPLICATE_IOU for other in kept):
                kept.append(detection)
        limit = self.detector.max_faces if self.max_faces is None else max(1, self.max_faces)
        return largest_faces(kept, limit)
