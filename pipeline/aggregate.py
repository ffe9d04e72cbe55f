"""From face scores to a verdict: face → frame → segment → video, per-track scores, the decision.

Pure functions over plain numbers and ``pipeline.types`` records, so each rule is tested alone and
the worker can re-run them on rows read back from the database.

- A frame's score is the highest of its faces' scores: one swapped face makes the frame fake.
- A segment's score combines its frames' scores; the video's combines every frame's score of
  every segment (so a short last segment weighs by its frames, not as much as a full one).
- ``mean`` is the plain average. ``confident`` is the rule the DFDC winner (Seferbekov, 2020)
  used over the frames of a video: when many frames are confidently fake, average only those;
  when nearly all are confidently real, average only those; otherwise the plain average. It
  keeps a few confident fake frames from being washed out by uncertain ones.
- ``track_top`` follows faces instead of frames: each track's score is the mean of its most
  suspicious half of faces, and the video's is the highest track score among tracks seen in at
  least ``TRACK_MIN_FACES`` frames (or among all tracks when none is that long). One swapped
  person among several real ones is not averaged away, and a one-frame spike is not enough.
- The verdict is ``inconclusive`` when the video score lies inside the checkpoint's band around
  the threshold (``[low, high)``, chosen on validation where calls stop being reliable); outside
  it ``fake`` when the score reaches the threshold, ``real`` below it; ``no_face`` when no face
  was found anywhere (no score at all). The rule itself is ``core.verdicts.decide``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from core.verdicts import decide
from pipeline.types import FrameResult, SegmentResult, TrackResult, Verdict

__all__ = [
    "METHODS",
    "TRACK_MIN_FACES",
    "ConfidentRule",
    "Method",
    "combine",
    "confident_score",
    "frame_score",
    "mean_score",
    "segment_score",
    "top_half_mean",
    "track_results",
    "track_top_score",
    "verdict",
    "video_score",
]

Method = Literal["mean", "confident", "track_top"]
METHODS: tuple[Method, ...] = ("mean", "confident", "track_top")
TRACK_MIN_FACES = 3


@dataclass(frozen=True)
class ConfidentRule:
    """The parameters of the confident strategy, with the values the DFDC winner used.

    With n scores: if more than ``fake_fraction``·n (rounded down) and more than
    ``min_fake_count`` of them exceed ``fake_above``, the result is the mean of those; else if
    more than ``real_fraction``·n are below ``real_below``, the mean of those; else the mean.
    """

    fake_above: float = 0.8
    fake_fraction: float = 0.4  # "n // 2.5" in the original
    min_fake_count: int = 11
    real_below: float = 0.2
    real_fraction: float = 0.9


def _finite(scores: Iterable[float | None]) -> list[float]:
    return [float(s) for s in scores if s is not None and math.isfinite(s)]


def frame_score(face_scores: Iterable[float | None]) -> float | None:
    """The frame is as fake as its most suspicious face; None when it has no face."""
    values = _finite(face_scores)
    return max(values) if values else None


def mean_score(scores: Iterable[float | None]) -> float | None:
    values = _finite(scores)
    return sum(values) / len(values) if values else None


def confident_score(scores: Iterable[float | None], rule: ConfidentRule | None = None) -> float | None:
    rule = rule or ConfidentRule()
    values = _finite(scores)
    if not values:
        return None
    count = len(values)
    fakes = [v for v in values if v > rule.fake_above]
    if len(fakes) > math.floor(count * rule.fake_fraction) and len(fakes) > rule.min_fake_count:
        return sum(fakes) / len(fakes)
    reals = [v for v in values if v < rule.real_below]
    if len(reals) > rule.real_fraction * count:
        return sum(reals) / len(reals)
    return sum(values) / count


def combine(scores: Iterable[float | None], method: Method = "mean") -> float | None:
    """Frame scores → one score by ``method``; frames without a face (None) are left out.

    ``track_top`` needs the faces, not frame scores: over plain scores it is the mean of the top
    half (one track)."""
    if method == "mean":
        return mean_score(scores)
    if method == "confident":
        return confident_score(scores)
    if method == "track_top":
        return top_half_mean(scores)
    raise ValueError(f"unknown aggregation {method!r}; use mean, confident or track_top")


def top_half_mean(scores: Iterable[float | None]) -> float | None:
    values = sorted(_finite(scores), reverse=True)
    if not values:
        return None
    top = values[: max(1, math.ceil(len(values) / 2))]
    return sum(top) / len(top)


def track_top_score(frames: Sequence[FrameResult]) -> float | None:
    """The highest track score, each the mean of that track's most suspicious half of faces."""
    by_track: dict[int, list[float]] = {}
    for frame in frames:
        for face in frame.faces:
            if math.isfinite(face.score):
                by_track.setdefault(face.track, []).append(float(face.score))
    if not by_track:
        return None
    long_tracks = [s for s in by_track.values() if len(s) >= TRACK_MIN_FACES] or list(by_track.values())
    return max(score for scores in long_tracks if (score := top_half_mean(scores)) is not None)


def segment_score(frames: Sequence[FrameResult], method: Method = "mean") -> float | None:
    if method == "track_top":
        return track_top_score(frames)
    return combine((f.score for f in frames), method)


def video_score(segments: Sequence[SegmentResult], method: Method = "mean") -> float | None:
    if method == "track_top":
        return track_top_score([f for s in segments for f in s.frames])
    return combine((f.score for s in segments for f in s.frames), method)


def track_results(frames: Sequence[FrameResult]) -> list[TrackResult]:
    """One record per track id found in ``frames``: when it was seen and its mean face score."""
    seen: dict[int, list[tuple[float, float]]] = {}
    for frame in frames:
        for face in frame.faces:
            seen.setdefault(face.track, []).append((frame.t, face.score))
    tracks = []
    for track_id, items in seen.items():
        times = [t for t, _ in items]
        score = mean_score(s for _, s in items)
        tracks.append(
            TrackResult(
                id=track_id,
                first_t=min(times),
                last_t=max(times),
                score=score if score is not None else float("nan"),
                faces=len(items),
            )
        )
    return sorted(tracks, key=lambda t: (t.first_t, t.id))


def verdict(score: float | None, threshold: float, band: tuple[float, float] | None = None) -> Verdict:
    return decide(score, threshold, band).value
