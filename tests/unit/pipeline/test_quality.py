"""Input statistics: brightness, luma histogram moments, sharpness and face size, checked by hand."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from pipeline.quality import (
    FACE_MEASURE_SIZE,
    QualityStats,
    RunningStat,
    face_statistics,
    frame_statistics,
    measure_segment,
    video_statistics,
)
from pipeline.types import VideoInfo


def _flat(value: int, height: int = 48, width: int = 64) -> np.ndarray:
    return np.full((height, width, 3), value, dtype=np.uint8)


def test_flat_frame_brightness_and_histogram() -> None:
    stats = frame_statistics(_flat(102))
    assert stats["brightness_pct"] == pytest.approx(40.0)
    assert stats["histogram_mean"] == pytest.approx(102.0)
    assert stats["histogram_std"] == pytest.approx(0.0)
    assert stats["histogram_variance"] == pytest.approx(0.0)
    assert stats["sharpness"] == pytest.approx(0.0)


def test_half_black_half_white_moments() -> None:
    frame = _flat(0)
    frame[:, 32:] = 255
    stats = frame_statistics(frame)
    assert stats["histogram_mean"] == pytest.approx(127.5)
    assert stats["histogram_variance"] == pytest.approx(127.5**2)
    assert stats["histogram_std"] == pytest.approx(127.5)
    assert stats["brightness_pct"] == pytest.approx(50.0)


def test_sharpness_drops_with_blur() -> None:
    rng = np.random.default_rng(0)
    sharp = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    blurred = cv2.GaussianBlur(sharp, (0, 0), 3.0)
    assert frame_statistics(sharp)["sharpness"] > 20 * frame_statistics(blurred)["sharpness"]


def test_face_statistics_in_video_pixels() -> None:
    frame = _flat(90, height=100, width=200)
    stats = face_statistics(frame, (50, 20, 90, 70), scale=(2.0, 2.0))
    assert stats["face_size_px"] == pytest.approx(math.sqrt(80 * 100))
    assert stats["face_size_ratio"] == pytest.approx(0.5)
    assert stats["face_sharpness"] == pytest.approx(0.0)


def test_face_sharpness_is_measured_at_a_fixed_size() -> None:
    rng = np.random.default_rng(1)
    texture = rng.integers(0, 256, (FACE_MEASURE_SIZE, FACE_MEASURE_SIZE, 3), dtype=np.uint8)
    small = np.zeros((300, 300, 3), dtype=np.uint8)
    small[0:FACE_MEASURE_SIZE, 0:FACE_MEASURE_SIZE] = texture
    direct = face_statistics(small, (0, 0, FACE_MEASURE_SIZE, FACE_MEASURE_SIZE))["face_sharpness"]
    gray = cv2.cvtColor(texture, cv2.COLOR_RGB2GRAY)
    assert direct == pytest.approx(float(cv2.Laplacian(gray, cv2.CV_64F).var()), rel=1e-6)


def test_face_outside_the_frame_has_no_sharpness() -> None:
    stats = face_statistics(_flat(10), (100, 100, 120, 130))
    assert "face_sharpness" not in stats


def test_measure_segment_counts_frames_and_faces() -> None:
    frames = np.stack([_flat(51), _flat(153)])
    quality = measure_segment(frames, [[(0, 0, 10, 10), (20, 20, 40, 40)], []])
    assert (quality.frames, quality.frames_with_faces, quality.faces) == (2, 1, 2)
    assert quality.stats["brightness_pct"].mean == pytest.approx(40.0)
    assert quality.stats["face_size_px"].count == 2
    with pytest.raises(ValueError):
        measure_segment(frames, [[]])


def test_merging_segments_equals_one_pass() -> None:
    rng = np.random.default_rng(2)
    frames = rng.integers(0, 256, (6, 40, 50, 3), dtype=np.uint8)
    boxes = [[(5, 5, 25, 30)] if i % 2 else [] for i in range(6)]
    whole = measure_segment(frames, boxes)
    merged = QualityStats()
    merged.merge(QualityStats.from_dict(measure_segment(frames[:2], boxes[:2]).to_dict()))
    merged.merge(QualityStats.from_dict(measure_segment(frames[2:], boxes[2:]).to_dict()))
    for name, stat in whole.stats.items():
        assert merged.stats[name].count == stat.count
        assert merged.stats[name].mean == pytest.approx(stat.mean)
        assert merged.stats[name].std == pytest.approx(stat.std)
        assert merged.stats[name].minimum == pytest.approx(stat.minimum)


def test_running_stat_by_hand() -> None:
    stat = RunningStat()
    for value in (1.0, 2.0, 3.0, float("nan")):
        stat.add(value)
    assert stat.count == 3 and stat.mean == pytest.approx(2.0)
    assert stat.std == pytest.approx(math.sqrt(2 / 3))
    assert RunningStat.from_dict(stat.to_dict()) == stat
    assert RunningStat().mean is None and RunningStat().to_dict()["min"] is None


def test_video_statistics_combines_segments_with_the_video_facts() -> None:
    info = VideoInfo(duration_s=4.0, fps=25.0, width=640, height=480, codec="h264")
    first = measure_segment(np.stack([_flat(51)]), [[(0, 0, 10, 10)]])
    second = measure_segment(np.stack([_flat(153), _flat(153)]), [[], []])
    doc = video_statistics([first.to_dict(), second, None], info)
    assert doc["frames_sampled"] == 3 and doc["faces"] == 1
    assert doc["brightness_pct"] == pytest.approx((20 + 60 + 60) / 3)
    assert doc["face_frame_ratio"] == pytest.approx(1 / 3)
    assert doc["faces_per_frame"] == pytest.approx(1 / 3)
    assert (doc["width"], doc["height"], doc["fps"], doc["codec"]) == (640, 480, 25.0, "h264")
    empty = video_statistics([], info)
    assert empty["brightness_pct"] is None and empty["faces_per_frame"] is None


def test_rejects_non_rgb_frames() -> None:
    with pytest.raises(ValueError):
        frame_statistics(np.zeros((10, 10), dtype=np.uint8))
