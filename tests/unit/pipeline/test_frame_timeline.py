"""Plans made from the probe's frame timeline (no ffmpeg): real frame times, keyframe leads, face caps."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from pipeline import errors
from pipeline.faces import Detection, largest_faces
from pipeline.plan import plan_segments, sample_numbers
from pipeline.types import AnalysisConfig, FrameTimeline, SegmentPlan, VideoInfo


def _info(times: list[float] | np.ndarray, keyframes: list[float] | np.ndarray, duration: float) -> VideoInfo:
    times = np.asarray(times, dtype=np.float64)
    timeline = FrameTimeline(times=times, numbers=np.arange(len(times), dtype=np.int64),
                             keyframes=np.asarray(keyframes, dtype=np.float64))
    return VideoInfo(duration_s=duration, fps=len(times) / duration, width=640, height=360, codec="h264",
                     timeline=timeline)


def _thirty_then_fifteen() -> list[float]:
    return [n / 30 for n in range(60)] + [2.0 + n / 15 for n in range(30)]


def test_samples_are_the_frames_nearest_each_instant_whatever_the_rate() -> None:
    info = _info(_thirty_then_fifteen(), [0.0], 4.0)
    first, second = plan_segments(info, AnalysisConfig(segment_seconds=2.0))
    assert first.frame_numbers == (0, 10, 20, 30, 40, 50)
    # At 15 fps from 2 s: frame 60 + 5k is shown at 2 + k/3 s.
    assert second.frame_numbers == (60, 65, 70, 75, 80, 85)
    assert second.frame_times == pytest.approx((2.0, 2.333333, 2.666667, 3.0, 3.333333, 3.666667))
    # An average rate would have named other frames: 22.5 fps × 2.333 s is frame 52, not 65.
    assert sample_numbers(second, info) == list(second.frame_numbers)


def test_a_window_where_no_frame_starts_samples_nothing() -> None:
    # A screen recording that stood still from 1 s to 9 s: one frame shown all that time.
    times = [n / 10 for n in range(10)] + [9.0 + n / 10 for n in range(10)]
    plans = plan_segments(_info(times, [0.0, 9.0], 10.0), AnalysisConfig(segment_seconds=2.0))
    assert [len(p.frame_times) for p in plans] == [4, 0, 0, 0, 3]
    assert plans[0].frame_numbers == (0, 3, 7, 9)  # 1.333 s and 1.667 s: frame 9 again, sampled once
    assert plans[4].frame_numbers == (10, 13, 17)
    numbers = [n for p in plans for n in p.frame_numbers]
    assert numbers == sorted(set(numbers))  # no frame sampled twice


def test_keyframes_too_far_apart_are_refused_before_any_decoding() -> None:
    times = np.arange(0, 180 * 30) / 30
    with pytest.raises(errors.LimitExceededError, match="keyframes are too far apart") as refused:
        plan_segments(_info(times, [0.0], 180.0), AnalysisConfig())
    assert refused.value.code == "sparse_keyframes"
    assert "segment 7 (70–80 s)" in refused.value.message and "70 s of video" in refused.value.message
    # Every two seconds, or a container that flags no keyframe at all: planned as usual.
    assert len(plan_segments(_info(times, times[::60], 180.0), AnalysisConfig())) == 18
    assert len(plan_segments(_info(times, [], 180.0), AnalysisConfig())) == 18


def test_segments_seek_to_their_keyframe_or_before_it_where_seeking_bisects() -> None:
    times = np.arange(0, 12 * 25) / 25
    keyframes = times[::50]  # every 2 s
    config = AnalysisConfig(segment_seconds=3.0)
    indexed = plan_segments(_info(times, keyframes, 12.0), config)
    # From the start while the first keyframe is the one before, then just past the first sample
    # (the demuxer's index goes back to the keyframe).
    assert [p.seek_s for p in indexed] == [0.0, 3.0001, 6.0001, 9.0001]
    bisected = plan_segments(replace(_info(times, keyframes, 12.0), format_name="mpegts"), config)
    # MPEG-TS has no index: a second before the keyframe, so a seek landing late still finds it.
    assert [p.seek_s for p in bisected] == [0.0, 1.0, 5.0, 7.0]
    # A container that flags no keyframe: the decoder seeks just past the first sample itself.
    assert {p.seek_s for p in plan_segments(_info(times, [], 12.0), config)} == {None}


def test_plans_carry_frame_numbers_and_older_plans_still_read() -> None:
    plan = plan_segments(_info(_thirty_then_fifteen(), [0.0], 4.0), AnalysisConfig(segment_seconds=2.0))[1]
    assert SegmentPlan.from_dict(plan.to_dict()) == plan
    older = {"index": 0, "start_s": 0.0, "end_s": 1.0, "frame_times": [0.0, 0.5]}
    evenly = VideoInfo(duration_s=1.0, fps=30.0, width=640, height=360, codec="h264")
    assert sample_numbers(SegmentPlan.from_dict(older), evenly) == [0, 15]


def test_video_info_is_stored_without_its_timeline() -> None:
    info = _info(_thirty_then_fifteen(), [0.0], 4.0)
    stored = info.to_dict()
    assert "timeline" not in stored
    assert VideoInfo(**stored) == info and VideoInfo(**stored).timeline is None


def _face(x1: float, y1: float, size: float, score: float = 0.99) -> Detection:
    return Detection((x1, y1, x1 + size, y1 + size), score, ())


def test_largest_faces_keeps_the_biggest_first() -> None:
    faces = [_face(0, 0, 30), _face(100, 0, 80), _face(200, 0, 50), _face(300, 0, 80, score=0.999)]
    kept = largest_faces(faces, 3)
    assert [(d.box[2] - d.box[0], d.score) for d in kept] == [(80, 0.999), (80, 0.99), (50, 0.99)]
    assert largest_faces(faces, 10) == sorted(faces, key=lambda d: -(d.box[2] - d.box[0]) - d.score)
