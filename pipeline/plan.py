"""Plan a probed video: segments, the frames each samples (by their own timestamps), where to seek."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np

from pipeline.errors import LimitExceededError
from pipeline.types import AnalysisConfig, FrameTimeline, SegmentPlan, VideoInfo

__all__ = [
    "MATCH_BEFORE_S",
    "SEEK_PAST_S",
    "check_sampling",
    "decoded_size",
    "frame_number",
    "plan_segments",
    "sample_numbers",
]

log = logging.getLogger(__name__)

# A sample matches the first frame at or after its time less this (below MIN_FRAME_GAP_S, above
# a millisecond clock's rounding, so plans made from rounded times still find their frame).
MATCH_BEFORE_S = 0.0006
# The decoder seeks this far past the first sample: to the keyframe at or before that frame.
SEEK_PAST_S = 0.0001
# Containers without an index that ffmpeg seeks in by bisecting timestamps (MPEG-TS and -PS): the
# seek may land just past the keyframe asked for, where the frames up to the next keyframe cannot
# be decoded, so they are sought this much before it. The others land on that keyframe.
BISECTED_FORMATS = frozenset({"mpegts", "mpegtsraw", "mpeg", "mpegvideo"})
BISECTED_SEEK_MARGIN_S = 1.0
# A segment tail shorter than this fraction of segment_seconds joins the previous segment, so a
# 10.2 s video is one task, not one task plus a task for a single frame.
MIN_TAIL_FRACTION = 0.2


def _sample_step(duration: float, config: AnalysisConfig) -> tuple[int, float]:
    """How many frames a window of ``duration`` seconds samples, and the time between them."""
    wanted = max(1, math.floor(duration * config.sample_fps + 1e-9))
    if wanted <= config.max_frames:
        return wanted, 1.0 / config.sample_fps
    return config.max_frames, duration / config.max_frames  # capped: spread evenly over the window


def check_sampling(config: AnalysisConfig) -> None:
    """Refuse settings no input can be planned with (a still image's plan checks them too)."""
    if config.segment_seconds <= 0 or config.sample_fps <= 0 or config.max_frames < 1:
        raise ValueError("segment_seconds and sample_fps must be positive and max_frames at least 1")


def plan_segments(info: VideoInfo, config: AnalysisConfig | None = None) -> list[SegmentPlan]:
    """Cut the video into ``segment_seconds`` windows and choose the frames each one samples.

    Frames are sampled every 1/sample_fps seconds from the start of each window; when that is
    more than ``max_frames``, the ``max_frames`` frames are spread evenly over the window instead.
    Each sample is a whole source frame, the one nearest to the sampling instant among those
    shown from within the window: its time and number are that frame's. With the probe's
    timeline these are the frames' own timestamps, whatever the frame rate does; without it
    (plain ``VideoInfo``), frames are taken to be evenly spaced at ``info.fps``.

    Raises LimitExceededError (``sparse_keyframes``) when a segment would decode more than
    ``max_keyframe_lead_s`` of video before its first sample.
    """
    config = config or AnalysisConfig()
    check_sampling(config)
    duration = info.duration_s
    bounds: list[tuple[float, float]] = []
    start = 0.0
    while start < duration - 1e-9:
        end = min(start + config.segment_seconds, duration)
        bounds.append((start, end))
        start = end
    if len(bounds) >= 2 and bounds[-1][1] - bounds[-1][0] < MIN_TAIL_FRACTION * config.segment_seconds:
        tail = bounds.pop()
        bounds[-1] = (bounds[-1][0], tail[1])
    timeline = info.timeline
    plans = []
    for index, (start, end) in enumerate(bounds):
        count, step = _sample_step(end - start, config)
        seek = None
        if timeline is not None:
            first = 0 if index == 0 else None
            last = len(timeline) if index == len(bounds) - 1 else None
            positions = _nearest_frames(timeline.times, start, end, count, step, first=first, last=last)
            times = tuple(round(float(timeline.times[p]), 6) for p in positions)
            numbers = tuple(int(timeline.numbers[p]) for p in positions)
            seek = _seek_point(timeline, times[0], info.format_name) if times else None
        else:
            frames = _frame_numbers(start, end, info.fps, count, step)
            times = tuple(round(n / info.fps, 6) for n in frames)
            numbers = tuple(frames)
        plans.append(
            SegmentPlan(
                index=index,
                start_s=round(start, 6),
                end_s=round(end, 6),
                frame_times=times,
                frame_numbers=numbers,
                seek_s=seek,
            )
        )
    if timeline is not None:
        _check_keyframe_leads(plans, timeline, config)
    return plans


def _keyframe_before(timeline: FrameTimeline, t: float) -> int | None:
    """Position in ``timeline.keyframes`` of the last keyframe at or before ``t``; None if none."""
    before = int(np.searchsorted(timeline.keyframes, t + MATCH_BEFORE_S, side="right")) - 1
    return before if before >= 0 else None


def _seek_point(timeline: FrameTimeline, first: float, format_name: str) -> float | None:
    """Where the decoder of a segment whose first sample is shown at ``first`` seeks to."""
    if len(timeline.keyframes) == 0:
        return None  # unknown: the decoder seeks just past the first sample
    before = _keyframe_before(timeline, first)
    if before is None or before == 0:
        # From the first keyframe: decoding from the start costs the same, and some demuxers
        # (FLV) seek badly to their very beginning.
        return 0.0
    if BISECTED_FORMATS & set(format_name.split(",")):
        return round(max(0.0, float(timeline.keyframes[before]) - BISECTED_SEEK_MARGIN_S), 6)
    return round(first + SEEK_PAST_S, 6)


def _nearest_frames(
    times: np.ndarray,
    start: float,
    end: float,
    count: int,
    step: float,
    *,
    first: int | None = None,
    last: int | None = None,
) -> list[int]:
    """Positions in ``times`` of the frames nearest to ``start + k·step`` (k < count) among those
    shown from [start, end) (``first``/``last`` widen that to the ends of the video); none when
    no frame starts in the window (a still stretch of a variable-rate video)."""
    lo = first if first is not None else int(np.searchsorted(times, start - 1e-6, side="left"))
    hi = last if last is not None else int(np.searchsorted(times, end - 1e-6, side="left"))
    if hi <= lo:
        return []
    window = times[lo:hi]
    instants = start + np.arange(count) * step
    after = np.clip(np.searchsorted(window, instants, side="left"), 0, len(window) - 1)
    before = np.clip(after - 1, 0, len(window) - 1)
    # Ties go to the later frame, as rounding a frame number half up does.
    nearest = np.where(instants - window[before] < window[after] - instants, before, after)
    chosen: list[int] = []
    for position in nearest.tolist():
        if not chosen or position > chosen[-1]:
            chosen.append(position)
    return [lo + position for position in chosen]


def _check_keyframe_leads(
    plans: Sequence[SegmentPlan], timeline: FrameTimeline, config: AnalysisConfig
) -> None:
    """Refuse a file whose segments would each decode from a keyframe far back: without a
    keyframe near each segment, every segment re-decodes the video up to it (quadratic cost)."""
    if len(timeline.keyframes) == 0:
        return  # the container does not flag keyframes: nothing to go by
    for plan in plans:
        if not plan.frame_times:
            continue
        first = plan.frame_times[0]
        before = _keyframe_before(timeline, first)
        lead = first - float(timeline.keyframes[before] if before is not None else timeline.times[0])
        if lead > config.max_keyframe_lead_s:
            raise LimitExceededError(
                f"keyframes are too far apart: segment {plan.index} ({plan.start_s:g}–{plan.end_s:g} s) "
                f"would decode {lead:.0f} s of video before its first frame; the limit is "
                f"{config.max_keyframe_lead_s:g} s (re-encode with a keyframe every few seconds, "
                "e.g. ffmpeg -g 60)",
                code="sparse_keyframes",
            )


def _frame_numbers(start: float, end: float, fps: float, count: int, step: float) -> list[int]:
    """The source frames nearest to ``start + k·step`` (k < count) among those shown in [start, end),
    for frames evenly spaced at ``fps``. When the sampling rate is above the frame rate, the
    repeats are dropped.
    """
    first = math.ceil(start * fps - 1e-6)
    last = max(first, math.ceil(end * fps - 1e-6) - 1)
    chosen: list[int] = []
    for k in range(count):
        number = min(max(math.floor((start + k * step) * fps + 0.5), first), last)
        if not chosen or number > chosen[-1]:
            chosen.append(number)
    return chosen


def frame_number(t: float, fps: float) -> int:
    """The source frame a time stands for in evenly spaced video (plans made without a timeline)."""
    return max(0, math.floor(t * fps + 0.5))


def sample_numbers(plan: SegmentPlan, info: VideoInfo) -> list[int]:
    """The source frame number of each of ``plan``'s samples."""
    if len(plan.frame_numbers) == len(plan.frame_times):
        return list(plan.frame_numbers)
    return [frame_number(t, info.fps) for t in plan.frame_times]


def decoded_size(info: VideoInfo, config: AnalysisConfig) -> tuple[int, int]:
    """Width and height of the frames a decoder returns, video or image (the displayed size, capped)."""
    long_side = max(info.width, info.height)
    limit = config.decode_long_side
    if limit <= 0 or long_side <= limit:
        return info.width, info.height
    scale = limit / long_side
    # Even sizes: yuv420 sources scale cleanly and every encoder accepts them.
    return max(2, round(info.width * scale / 2) * 2), max(2, round(info.height * scale / 2) * 2)
