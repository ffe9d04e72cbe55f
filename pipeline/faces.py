"""Faces: MTCNN detection on downscaled frames, faces followed between detections, IoU tracks
within a segment, and global track ids.

Detection runs on a copy of each frame scaled so its long side is ``detect_long_side`` (MTCNN's
cost grows with pixels, while a face worth classifying stays findable at that size); boxes and
landmarks are mapped back to the frame's own pixels. At most ``max_faces`` faces are kept per
frame, the largest first, so a crowd costs no more to classify than a few faces.

Faces too small to tell the classifier anything (``smallest_face_to_score``) are not looked for:
the image pyramid starts at the scale where they are MTCNN's 12-pixel window. ``FaceFollower``
runs the whole-frame detection on only some frames and, in between, re-detects each face in a
small square around where it was, which costs a few percent of a whole frame.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from pipeline.types import FrameResult

__all__ = [
    "Detection",
    "FaceDetector",
    "FaceFollower",
    "FollowStats",
    "box_iou",
    "crop_growth",
    "largest_faces",
    "link_segment_tracks",
    "link_tracks",
    "scene_changed",
    "smallest_face_to_score",
]

Box = tuple[float, float, float, float]

# MTCNN's first network sees 12×12 windows: faces smaller than this in the detection copy are
# invisible to it whatever min_face_size says.
MTCNN_SMALLEST_FACE = 12.0
# Second chance for sparse sampling: at 3 frames per second a walking face can move more than its
# own width between samples, so its IoU with the previous box drops to zero. A detection whose
# centre lies within this many face sizes of the track's last box, at a similar size, continues it.
MAX_CENTER_SHIFT = 1.0
MAX_SIZE_RATIO = 1.6
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


def _box_affinity(previous: Sequence[float], current: Sequence[float], iou_threshold: float) -> float:
    """How well ``current`` continues ``previous``: IoU when it passes, else a smaller score for a
    nearby box of similar size, else 0 (no link)."""
    iou = box_iou(previous, current)
    if iou >= iou_threshold:
        return 1.0 + iou  # any overlap match beats any proximity match
    size_prev = math.sqrt(max(previous[2] - previous[0], 1e-6) * max(previous[3] - previous[1], 1e-6))
    size_cur = math.sqrt(max(current[2] - current[0], 1e-6) * max(current[3] - current[1], 1e-6))
    ratio = max(size_prev, size_cur) / min(size_prev, size_cur)
    if ratio > MAX_SIZE_RATIO:
        return 0.0
    dx = (previous[0] + previous[2] - current[0] - current[2]) / 2.0
    dy = (previous[1] + previous[3] - current[1] - current[3]) / 2.0
    shift = math.hypot(dx, dy) / ((size_prev + size_cur) / 2.0)
    if shift > MAX_CENTER_SHIFT:
        return 0.0
    return 1.0 - shift / MAX_CENTER_SHIFT * 0.999  # in (0, 1]: closer is better


def _greedy_match(
    previous: Sequence[Sequence[float]], current: Sequence[Sequence[float]], iou_threshold: float
) -> dict[int, int]:
    """current index → previous index, best affinity first, each used at most once."""
    pairs = []
    for i, prev_box in enumerate(previous):
        for j, cur_box in enumerate(current):
            affinity = _box_affinity(prev_box, cur_box, iou_threshold)
            if affinity > 0:
                pairs.append((affinity, i, j))
    pairs.sort(key=lambda p: (-p[0], p[1], p[2]))
    used_prev: set[int] = set()
    matched: dict[int, int] = {}
    for _, i, j in pairs:
        if i in used_prev or j in matched:
            continue
        used_prev.add(i)
        matched[j] = i
    return matched


def link_tracks(
    frames: Sequence[Sequence[Sequence[float]]], *, iou_threshold: float = 0.3, max_gap: int = 2
) -> list[list[int]]:
    """Give every box a track id (1, 2, … in order of first appearance).

    ``frames`` holds, per sampled frame in time order, that frame's boxes. A box continues the
    track whose last box (seen at most ``max_gap`` frames earlier, so one missed detection does
    not split a track) it overlaps best (IoU ≥ ``iou_threshold``) or, failing any overlap, lies
    closest to at a similar size; otherwise it starts a new track. Greedy, best pair first.
    """
    ids: list[list[int]] = []
    # track id → (last box, index of the frame it was seen in)
    active: dict[int, tuple[Sequence[float], int]] = {}
    next_id = 1
    for frame_index, boxes in enumerate(frames):
        candidates = [tid for tid, (_, seen) in active.items() if frame_index - seen <= max_gap + 1]
        matched = _greedy_match([active[tid][0] for tid in candidates], boxes, iou_threshold)
        frame_ids = []
        for j, box in enumerate(boxes):
            if j in matched:
                track_id = candidates[matched[j]]
            else:
                track_id, next_id = next_id, next_id + 1
            active[track_id] = (box, frame_index)
            frame_ids.append(track_id)
        ids.append(frame_ids)
    return ids


_TrackEnds = dict[int, tuple[float, Box]]


def _track_ends(frames: Sequence[FrameResult]) -> tuple[_TrackEnds, _TrackEnds]:
    """Per local track: (time, box) of its first and of its last detection."""
    first: dict[int, tuple[float, Box]] = {}
    last: dict[int, tuple[float, Box]] = {}
    for frame in sorted(frames, key=lambda f: f.t):
        for face in frame.faces:
            first.setdefault(face.track, (frame.t, face.box))
            last[face.track] = (frame.t, face.box)
    return first, last


def link_segment_tracks(
    segments: Sequence[Sequence[FrameResult]], *, iou_threshold: float = 0.3, max_gap_s: float = 1.0
) -> list[dict[int, int]]:
    """Map each segment's local track ids to video-wide ids (1, 2, … in order of first appearance).

    A track of a segment continues a track that was open at the end of the previous segment when
    it begins at most ``max_gap_s`` after that track's last face and its first box continues the
    other's last box (the same affinity as ``link_tracks``). Returns, per segment, local → global.
    """
    mappings: list[dict[int, int]] = []
    next_id = 1
    open_tracks: dict[int, tuple[float, Box]] = {}  # global id → (time, box) of its last face
    for frames in segments:
        first, last = _track_ends(frames)
        local_ids = sorted(first, key=lambda tid: (first[tid][0], tid))
        pairs = []
        for gid, (end_t, end_box) in open_tracks.items():
            for tid in local_ids:
                start_t, start_box = first[tid]
                if 0.0 <= start_t - end_t <= max_gap_s:
                    affinity = _box_affinity(end_box, start_box, iou_threshold)
                    if affinity > 0:
                        pairs.append((affinity, gid, tid))
        pairs.sort(key=lambda p: (-p[0], p[1], p[2]))
        mapping: dict[int, int] = {}
        taken: set[int] = set()
        for _, gid, tid in pairs:
            if gid in taken or tid in mapping:
                continue
            taken.add(gid)
            mapping[tid] = gid
        for tid in local_ids:
            if tid not in mapping:
                mapping[tid], next_id = next_id, next_id + 1
        mappings.append(mapping)
        open_tracks = {mapping[tid]: last[tid] for tid in local_ids}
    return mappings


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
        left, top, side = _search_square(detection.box)
        x1, y1 = max(0, int(left // _SCENE_STEP)), max(0, int(top // _SCENE_STEP))
        x2, y2 = math.ceil((left + side) / _SCENE_STEP), math.ceil((top + side) / _SCENE_STEP)
        outside[y1:y2, x1:x2] = False
    count = int(outside.sum())
    return count > 0 and int((changed & outside).sum()) > MOTION_SHARE * changed.size


def _search_square(box: Sequence[float]) -> tuple[float, float, float]:
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
        squares = [_search_square(box) for box in boxes]
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
