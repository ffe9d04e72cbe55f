"""Faces: MTCNN detection on downscaled frames, IoU tracks within a segment, and global track ids.

Detection runs on a copy of each frame scaled so its long side is ``detect_long_side`` (MTCNN's
cost grows with pixels, while a face worth classifying stays findable at that size); boxes and
landmarks are mapped back to the frame's own pixels. At most ``max_faces`` faces are kept per
frame, the largest first, so a crowd costs no more to classify than a few faces.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.types import FrameResult

__all__ = [
    "Detection",
    "FaceDetector",
    "box_iou",
    "largest_faces",
    "link_segment_tracks",
    "link_tracks",
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

    def detect(self, frames: np.ndarray, *, max_faces: int | None = None) -> list[list[Detection]]:
        """Faces in each of ``frames`` (N×H×W×3 uint8 RGB), boxes in the frames' own pixels.

        Faces smaller than ``min_face_size`` pixels in the detection copy, or less likely than
        ``det_threshold``, are dropped; of the rest, the ``max_faces`` largest are kept (the
        detector's own unless given), largest first.
        """
        limit = self.max_faces if max_faces is None else max(1, max_faces)
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"expected frames (N, H, W, 3), got shape {frames.shape}")
        if len(frames) == 0:
            return []
        height, width = frames.shape[1:3]
        scale = min(1.0, self.detect_long_side / max(height, width)) if self.detect_long_side > 0 else 1.0
        small_w, small_h = max(1, round(width * scale)), max(1, round(height * scale))
        mtcnn_min = max(MTCNN_SMALLEST_FACE, self.min_face_size)
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
                found_here = self._frame_detections(boxes.numpy(), probs.numpy(), marks.numpy(), sx, sy)
                results.append(largest_faces(found_here, limit))
        return results

    def _frame_detections(
        self, boxes: np.ndarray, probs: np.ndarray, points: np.ndarray, sx: float, sy: float
    ) -> list[Detection]:
        detections = []
        for box, prob, marks in zip(boxes, probs, points, strict=True):
            if not math.isfinite(prob) or prob < self.det_threshold:
                continue
            if max(box[2] - box[0], box[3] - box[1]) < self.min_face_size:
                continue
            x1, y1, x2, y2 = box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy
            landmarks = tuple((float(x * sx), float(y * sy)) for x, y in marks)
            detections.append(Detection((float(x1), float(y1), float(x2), float(y2)), float(prob), landmarks))
        return detections
