"""Segment plans and the pure helpers of the video module (no ffmpeg needed)."""

from __future__ import annotations

import pytest

from pipeline.ffprobe import _rotation_clockwise
from pipeline.plan import decoded_size, frame_number, plan_segments
from pipeline.types import AnalysisConfig, SegmentPlan, VideoInfo


def _info(duration: float, width: int = 1920, height: int = 1080, fps: float = 30.0) -> VideoInfo:
    return VideoInfo(duration_s=duration, fps=fps, width=width, height=height, codec="h264")


def test_ten_second_windows_sampled_at_three_per_second() -> None:
    plans = plan_segments(_info(25.0), AnalysisConfig())
    assert [(p.index, p.start_s, p.end_s) for p in plans] == [
        (0, 0.0, 10.0), (1, 10.0, 20.0), (2, 20.0, 25.0)
    ]
    assert [len(p.frame_times) for p in plans] == [30, 30, 15]
    assert plans[1].frame_times[:3] == pytest.approx((10.0, 10.333333, 10.666667))
    assert all(p.start_s <= t < p.end_s for p in plans for t in p.frame_times)


def test_max_frames_spreads_the_samples_evenly_over_the_window() -> None:
    plans = plan_segments(_info(10.0), AnalysisConfig(sample_fps=10, max_frames=8))
    (plan,) = plans
    assert len(plan.frame_times) == 8
    gaps = [b - a for a, b in zip(plan.frame_times[:-1], plan.frame_times[1:], strict=True)]
    assert all(abs(gap - 1.25) <= 1 / 30 + 1e-6 for gap in gaps)  # the nearest whole frames


def test_a_short_tail_joins_the_previous_segment() -> None:
    plans = plan_segments(_info(21.5), AnalysisConfig())
    assert [(p.start_s, p.end_s) for p in plans] == [(0.0, 10.0), (10.0, 21.5)]
    assert len(plans[1].frame_times) == 32  # 11.5 s × 3 = 34, capped at max_frames


def test_a_very_short_video_still_samples_one_frame() -> None:
    (plan,) = plan_segments(_info(0.1), AnalysisConfig())
    assert plan.frame_times == (0.0,)


def test_plan_rejects_nonsense_settings() -> None:
    with pytest.raises(ValueError):
        plan_segments(_info(5.0), AnalysisConfig(sample_fps=0))


def test_plan_round_trips_through_a_dict() -> None:
    plan = plan_segments(_info(12.0), AnalysisConfig())[0]
    assert SegmentPlan.from_dict(plan.to_dict()) == plan


def test_decoded_size_caps_the_long_side_and_keeps_sizes_even() -> None:
    config = AnalysisConfig(decode_long_side=1920)
    assert decoded_size(_info(1, 1920, 1080), config) == (1920, 1080)
    assert decoded_size(_info(1, 3840, 2160), config) == (1920, 1080)
    assert decoded_size(_info(1, 2160, 3840), config) == (1080, 1920)
    assert decoded_size(_info(1, 4000, 3001), config) == (1920, 1440)
    assert decoded_size(_info(1, 4000, 3000), AnalysisConfig(decode_long_side=0)) == (4000, 3000)


def test_rotation_from_display_matrix_or_tag() -> None:
    assert _rotation_clockwise({"side_data_list": [{"rotation": -90}]}) == 90
    assert _rotation_clockwise({"side_data_list": [{"rotation": 90}]}) == 270
    assert _rotation_clockwise({"side_data_list": [{"rotation": 180}]}) == 180
    assert _rotation_clockwise({"tags": {"rotate": "90"}}) == 90
    assert _rotation_clockwise({}) == 0


def test_samples_are_whole_frames_even_at_ntsc_rates() -> None:
    info = _info(7.3, fps=30000 / 1001)
    for plan in plan_segments(info, AnalysisConfig(segment_seconds=2.5)):
        numbers = [frame_number(t, info.fps) for t in plan.frame_times]
        assert [round(n / info.fps, 6) for n in numbers] == list(plan.frame_times)
        assert numbers == sorted(set(numbers))
        assert all(plan.start_s <= t < plan.end_s for t in plan.frame_times)
    # Segment 2.5–5 s: frames 75 (2.5025 s) onwards, about every 10 frames.
    second = plan_segments(info, AnalysisConfig(segment_seconds=2.5))[1]
    assert [frame_number(t, info.fps) for t in second.frame_times][:3] == [75, 85, 95]


def test_sampling_faster_than_the_video_keeps_each_frame_once() -> None:
    (plan,) = plan_segments(_info(1.0, fps=5.0), AnalysisConfig(sample_fps=12))
    assert [frame_number(t, 5.0) for t in plan.frame_times] == [0, 1, 2, 3, 4]
