"""Face tracks: IoU tracks within a segment's frames, then one id per face across segments.

Faces of consecutive samples are matched greedily by overlap; at sparse sampling a face may move
more than its own width between samples, so a detection near the track's last box, at a similar
size, continues it too (``MAX_CENTER_SHIFT``, ``MAX_SIZE_RATIO``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pipeline.faces import Box, box_iou
from pipeline.types import FrameResult

__all__ = ["link_segment_tracks", "link_tracks"]

# Second chance for sparse sampling: at 3 frames per second a walking face can move more than its
# own width between samples, so its IoU with the previous box drops to zero. A detection whose
# centre lies within this many face sizes of the track's last box, at a similar size, continues it.
MAX_CENTER_SHIFT = 1.0
MAX_SIZE_RATIO = 1.6


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

