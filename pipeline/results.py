"""Assembling the analysis's results: a segment's frames from its raw detections and scores, and
the video's result from its segments (video-wide track ids, summed stage times, the verdict).

Plain functions over plain data, so ``Analyzer`` keeps only the steps that need the networks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from pipeline import aggregate
from pipeline.faces import Detection
from pipeline.tracking import link_segment_tracks
from pipeline.types import (
    AnalysisConfig,
    FaceExplanation,
    FaceResult,
    FrameResult,
    SegmentResult,
    VideoInfo,
    VideoResult,
    suspicion_order,
)

__all__ = ["STAGE_KEYS", "frame_results", "video_result"]

# The per-segment stage times that add up into the video's timings.
STAGE_KEYS = ("decode_s", "detect_s", "classify_s")


def frame_results(
    times: Sequence[float],
    numbers: Sequence[int],
    detections: Sequence[Sequence[Detection]],
    track_ids: Sequence[Sequence[int]],
    scores: np.ndarray,
    explained: Mapping[int, tuple[bytes, bytes]],
    scale: tuple[float, float],
) -> tuple[list[FrameResult], list[FaceExplanation]]:
    """The frames of one segment, and the explanations of its most suspicious faces.

    ``scores`` holds one score per detection, in frame order; ``explained`` maps a detection's
    position in that order to its (overlay, crop) JPEGs; ``scale`` maps the decoded frames'
    pixels to the video's (frames may be decoded downscaled).
    """
    scale_x, scale_y = scale
    frames: list[FrameResult] = []
    explanations: list[FaceExplanation] = []
    position = 0
    for t, number, dets, ids in zip(times, numbers, detections, track_ids, strict=True):
        faces = []
        for det, track_id in zip(dets, ids, strict=True):
            x1, y1, x2, y2 = det.box
            faces.append(
                FaceResult(
                    box=(x1 * scale_x, y1 * scale_y, x2 * scale_x, y2 * scale_y),
                    det_score=det.score,
                    track=track_id,
                    score=float(scores[position]),
                )
            )
            if position in explained:
                heatmap_jpeg, crop_jpeg = explained[position]
                face = faces[-1]
                explanations.append(
                    FaceExplanation(
                        frame_index=number,
                        t=t,
                        face=len(faces) - 1,
                        track=track_id,
                        score=face.score,
                        box=face.box,
                        heatmap_jpeg=heatmap_jpeg,
                        crop_jpeg=crop_jpeg,
                    )
                )
            position += 1
        frames.append(
            FrameResult(index=number, t=t, score=aggregate.frame_score(f.score for f in faces), faces=faces)
        )
    explanations.sort(key=suspicion_order)
    return frames, explanations


def video_result(
    info: VideoInfo,
    segments: Sequence[SegmentResult],
    *,
    config: AnalysisConfig,
    threshold: float,
    inconclusive_band: tuple[float, float] | None,
    model_info: Mapping[str, Any],
    caveat: str | None,
    timings: Mapping[str, float] | None = None,
) -> VideoResult:
    """Give tracks video-wide ids, score the video and decide the verdict.

    ``timings`` may carry ``probe_s`` and ``total_s``; the stage times are summed from the
    segments, and ``total_s`` defaults to probe plus the segments' wall times.
    """
    ordered = sorted(segments, key=lambda s: s.index)
    max_gap_s = max(1.0, 2.5 / config.sample_fps)
    mappings = link_segment_tracks(
        [s.frames for s in ordered], iou_threshold=config.track_iou, max_gap_s=max_gap_s
    )
    linked_segments = []
    for segment, mapping in zip(ordered, mappings, strict=True):
        frames = [
            replace(frame, faces=[replace(face, track=mapping[face.track]) for face in frame.faces])
            for frame in segment.frames
        ]
        linked_segments.append(replace(segment, frames=frames, tracks=aggregate.track_results(frames)))
    all_frames = [f for s in linked_segments for f in s.frames]
    score = aggregate.video_score(linked_segments, config.aggregation)

    totals = {"probe_s": 0.0, **{key: 0.0 for key in STAGE_KEYS}}
    segments_wall = 0.0
    for segment in ordered:
        for key in STAGE_KEYS:
            totals[key] += float(segment.timings.get(key, 0.0))
        # Stages overlap within a segment: its wall time, when recorded, is what it cost.
        segments_wall += float(
            segment.timings.get("wall_s", sum(float(segment.timings.get(key, 0.0)) for key in STAGE_KEYS))
        )
    given = dict(timings or {})
    totals["probe_s"] = float(given.pop("probe_s", 0.0))
    totals["total_s"] = float(given.pop("total_s", totals["probe_s"] + segments_wall))
    verdict = aggregate.verdict(score, threshold, inconclusive_band)
    seen_small = [s.small_faces for s in ordered if s.small_faces is not None]
    return VideoResult(
        verdict=verdict,
        score=score,
        model=dict(model_info),
        video=info,
        segments=linked_segments,
        frames=all_frames,
        tracks=aggregate.track_results(all_frames),
        timings=totals,
        threshold=threshold,
        inconclusive_band=inconclusive_band,
        aggregation=config.aggregation,
        caveat=caveat,
        settings=config.settings_used(),
        small_faces=(
            max(seen_small, key=lambda small: small.faces_seen)
            if verdict == "no_face" and seen_small
            else None
        ),
    )
