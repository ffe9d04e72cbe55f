"""Aggregation rules, one by one: frame max, mean, the confident strategy, tracks, verdicts."""

from __future__ import annotations

import math

import pytest

from pipeline import aggregate
from pipeline.aggregate import ConfidentRule
from pipeline.types import FaceResult, FrameResult, SegmentResult


def test_frame_score_is_the_most_suspicious_face() -> None:
    assert aggregate.frame_score([0.1, 0.9, 0.4]) == 0.9
    assert aggregate.frame_score([]) is None
    assert aggregate.frame_score([None, float("nan")]) is None


def test_mean_ignores_frames_without_faces() -> None:
    assert aggregate.mean_score([0.2, None, 0.4]) == pytest.approx(0.3)
    assert aggregate.mean_score([]) is None


def test_confident_strategy_averages_only_confident_fakes_when_there_are_many() -> None:
    # 12 of 20 frames above 0.8: more than 40 % (8) and more than 11.
    scores = [0.9] * 12 + [0.1] * 8
    assert aggregate.confident_score(scores) == pytest.approx(0.9)
    assert aggregate.mean_score(scores) == pytest.approx(0.58)


def test_confident_strategy_needs_more_than_eleven_confident_fakes() -> None:
    # Exactly 11 fakes, even though they are 11 of 12 frames: the plain mean.
    scores = [0.9] * 11 + [0.5]
    assert aggregate.confident_score(scores) == pytest.approx(sum(scores) / 12)


def test_confident_strategy_needs_more_than_two_fifths_of_the_frames() -> None:
    # 12 fakes of 30 frames: 12 is not more than floor(30 × 0.4) = 12.
    scores = [0.95] * 12 + [0.5] * 18
    assert aggregate.confident_score(scores) == pytest.approx(sum(scores) / 30)
    # 13 of 30 is.
    scores = [0.95] * 13 + [0.5] * 17
    assert aggregate.confident_score(scores) == pytest.approx(0.95)


def test_confident_strategy_averages_confident_reals_when_nearly_all_are() -> None:
    scores = [0.05] * 19 + [0.7]  # 95 % below 0.2
    assert aggregate.confident_score(scores) == pytest.approx(0.05)
    scores = [0.05] * 9 + [0.7]  # exactly 90 %: not more than 90 %
    assert aggregate.confident_score(scores) == pytest.approx((0.45 + 0.7) / 10)


def test_confident_strategy_is_the_mean_otherwise_and_none_when_empty() -> None:
    assert aggregate.confident_score([0.3, 0.5, 0.6]) == pytest.approx(1.4 / 3)
    assert aggregate.confident_score([]) is None
    assert aggregate.confident_score([0.9] * 5, ConfidentRule(min_fake_count=2)) == pytest.approx(0.9)


def test_combine_dispatches_and_rejects_unknown_methods() -> None:
    scores = [0.9] * 12 + [0.1] * 8
    assert aggregate.combine(scores, "mean") == pytest.approx(0.58)
    assert aggregate.combine(scores, "confident") == pytest.approx(0.9)
    with pytest.raises(ValueError, match="unknown aggregation"):
        aggregate.combine(scores, "median")  # type: ignore[arg-type]


def _frame(t: float, scores: list[float], tracks: list[int] | None = None) -> FrameResult:
    tracks = tracks or list(range(1, len(scores) + 1))
    faces = [
        FaceResult(box=(0, 0, 10, 10), det_score=0.99, track=k, score=s)
        for s, k in zip(scores, tracks, strict=True)
    ]
    return FrameResult(index=round(t * 30), t=t, score=aggregate.frame_score(scores), faces=faces)


def _segment(index: int, frames: list[FrameResult]) -> SegmentResult:
    return SegmentResult(index=index, start_s=index * 10.0, end_s=index * 10.0 + 10, frames=frames,
                         score=aggregate.segment_score(frames), tracks=aggregate.track_results(frames))


def test_segment_and_video_scores_weigh_every_frame_equally() -> None:
    long = _segment(0, [_frame(t, [0.2]) for t in range(4)])
    short = _segment(1, [_frame(10.0, [0.8])])
    empty = _segment(2, [_frame(20.0, [])])
    assert long.score == pytest.approx(0.2)
    assert short.score == pytest.approx(0.8)
    assert empty.score is None
    # Four frames at 0.2 and one at 0.8: 0.32, not the 0.5 a mean of segment scores would give.
    assert aggregate.video_score([long, short, empty]) == pytest.approx(0.32)
    assert aggregate.video_score([empty]) is None


def test_track_results_span_and_mean() -> None:
    frames = [_frame(0.0, [0.2, 0.9], [1, 2]), _frame(0.5, [0.4], [1]), _frame(1.0, [0.7], [2])]
    tracks = aggregate.track_results(frames)
    assert [(t.id, t.first_t, t.last_t, t.faces) for t in tracks] == [(1, 0.0, 0.5, 2), (2, 0.0, 1.0, 2)]
    assert tracks[0].score == pytest.approx(0.3)
    assert tracks[1].score == pytest.approx(0.8)
    assert not any(math.isnan(t.score) for t in tracks)


def test_track_top_takes_the_most_suspicious_long_track_by_its_top_half() -> None:
    # Track 1 (real person, 4 faces), track 2 (swapped, 4 faces), track 3 (a one-frame spike).
    frames = [
        _frame(0.0, [0.1, 0.7, 0.99], [1, 2, 3]),
        _frame(0.5, [0.2, 0.9], [1, 2]),
        _frame(1.0, [0.1, 0.3], [1, 2]),
        _frame(1.5, [0.2, 0.8], [1, 2]),
    ]
    segment = _segment(0, frames)
    # Track 2's faces 0.9, 0.8, 0.7, 0.3: the top half averages 0.85; track 3 is too short to count.
    assert aggregate.video_score([segment], "track_top") == pytest.approx(0.85)
    assert aggregate.segment_score(frames, "track_top") == pytest.approx(0.85)
    # The frame mean is pulled up by the spike and down by the real person's low frames alike.
    assert aggregate.video_score([segment], "mean") == pytest.approx((0.99 + 0.9 + 0.3 + 0.8) / 4)
    # With only short tracks, every track counts.
    assert aggregate.track_top_score([_frame(0.0, [0.4, 0.6], [1, 2])]) == pytest.approx(0.6)
    assert aggregate.track_top_score([_frame(0.0, [])]) is None
    assert aggregate.combine([0.2, 0.4, 0.9], "track_top") == pytest.approx(0.65)


def test_verdict_at_the_threshold() -> None:
    assert aggregate.verdict(0.5, 0.5) == "fake"
    assert aggregate.verdict(0.4999, 0.5) == "real"
    assert aggregate.verdict(0.2, 0.1) == "fake"
    assert aggregate.verdict(None, 0.5) == "no_face"


def test_verdict_inside_the_band_is_inconclusive() -> None:
    band = (0.4, 0.6)
    assert aggregate.verdict(0.4, 0.5, band) == "inconclusive"  # the band's low end is inside
    assert aggregate.verdict(0.55, 0.5, band) == "inconclusive"
    assert aggregate.verdict(0.6, 0.5, band) == "fake"  # its high end is not
    assert aggregate.verdict(0.3999, 0.5, band) == "real"
    assert aggregate.verdict(None, 0.5, band) == "no_face"
    # Without a band, the threshold alone decides, as before.
    assert aggregate.verdict(0.55, 0.5, None) == "fake"
