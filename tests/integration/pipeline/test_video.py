"""Probe and decode on real files made by ffmpeg: the right frames, sizes, rotations and errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline import errors
from pipeline.decode import decode_segment
from pipeline.media_source import open_media_source
from pipeline.plan import frame_number, plan_segments
from pipeline.types import AnalysisConfig, SegmentPlan
from tests.utils.media import BAD_MEDIA_KINDS, FaceVideo, make_bad_media, make_face_video, read_frame_code

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def coded_video(media_dir: Path) -> FaceVideo:
    """Every frame carries its own index, so we can tell exactly which frames come back."""
    return make_face_video(media_dir / "coded.mp4", seconds=12.0, width=320, height=240, fps=25,
                           frame_code=True)


def test_probe_reads_what_the_video_is(long_video: FaceVideo) -> None:
    info = open_media_source(long_video.path).info
    assert info.duration_s == pytest.approx(5.0, abs=0.05)
    assert info.fps == pytest.approx(25.0)
    assert (info.width, info.height) == (640, 360)
    assert info.codec == "h264"
    assert info.rotation == 0
    assert info.has_audio
    assert info.size_bytes == long_video.path.stat().st_size


def test_probe_and_decode_apply_rotation(media_dir: Path) -> None:
    video = make_face_video(media_dir / "rotated.mp4", seconds=1.0, width=320, height=240, rotation=90)
    info = open_media_source(video.path).info
    assert (info.width, info.height) == (240, 320)
    assert info.rotation in (90, 270)
    _, frames = decode_segment(video.path, info, plan_segments(info)[0])
    assert frames.shape == (3, 320, 240, 3)


def test_decode_returns_exactly_the_planned_frames(coded_video: FaceVideo) -> None:
    config = AnalysisConfig(segment_seconds=5.0)
    info = open_media_source(coded_video.path).info
    plans = plan_segments(info, config)
    assert [(p.start_s, p.end_s) for p in plans] == [(0.0, 5.0), (5.0, 10.0), (10.0, 12.0)]
    for plan in plans:
        times, frames = decode_segment(coded_video.path, info, plan, config)
        assert times == list(plan.frame_times)
        assert frames.shape == (len(plan.frame_times), 240, 320, 3) and frames.dtype == np.uint8
        expected = [round(t * 25) for t in times]
        assert [read_frame_code(f) for f in frames] == expected


def test_decode_spreads_capped_samples_over_the_segment(coded_video: FaceVideo) -> None:
    config = AnalysisConfig(segment_seconds=12.0, sample_fps=10, max_frames=24)
    info = open_media_source(coded_video.path).info
    (plan,) = plan_segments(info, config)
    times, frames = decode_segment(coded_video.path, info, plan, config)
    assert len(frames) == 24
    assert [read_frame_code(f) for f in frames] == [round(t * 25) for t in times]


def test_decode_scales_large_frames_down(face_1080p: FaceVideo) -> None:
    config = AnalysisConfig(decode_long_side=960)
    info = open_media_source(face_1080p.path, config).info
    plan = SegmentPlan(0, 0.0, 1.0, (0.0, 0.5))
    _, frames = decode_segment(face_1080p.path, info, plan, config)
    assert frames.shape == (2, 540, 960, 3)


def test_decode_past_its_time_limit_is_a_timeout(face_1080p: FaceVideo) -> None:
    config = AnalysisConfig(decode_timeout_s=0.01)
    info = open_media_source(face_1080p.path, config).info
    with pytest.raises(errors.DecodeTimeoutError, match="longer than") as caught:
        decode_segment(face_1080p.path, info, plan_segments(info, config)[0], config)
    assert caught.value.retryable and caught.value.exit_code == 11


def test_decode_of_a_truncated_file_is_corrupt_video(media_dir: Path) -> None:
    path = make_bad_media("truncated", media_dir / "cut.mp4")
    info = open_media_source(path).info  # the index survived, so the probe cannot tell
    with pytest.raises(errors.CorruptVideoError, match="truncated"):
        decode_segment(path, info, plan_segments(info)[0])


EXPECTED_ERRORS: dict[str, type[errors.PipelineError]] = {
    "text": errors.NotAVideoError,
    "image_as_mp4": errors.NotAVideoError,
    "empty": errors.EmptyFileError,
    "corrupt_header": errors.CorruptVideoError,
    "audio_only": errors.NoVideoStreamError,
    "absurd_resolution": errors.LimitExceededError,
    "absurd_duration": errors.LimitExceededError,
}


@pytest.mark.parametrize("kind", sorted(EXPECTED_ERRORS))
def test_probe_refuses_bad_input_with_its_error(kind: str, media_dir: Path) -> None:
    path = make_bad_media(kind, media_dir / f"bad-{kind}.mp4")
    with pytest.raises(EXPECTED_ERRORS[kind]) as caught:
        open_media_source(path)
    assert caught.value.message and "\n" not in caught.value.message
    assert not caught.value.retryable


def test_every_bad_media_kind_is_covered() -> None:
    assert set(EXPECTED_ERRORS) | {"truncated"} == set(BAD_MEDIA_KINDS)


def test_probe_refuses_missing_files_and_directories(tmp_path: Path) -> None:
    with pytest.raises(errors.SourceNotFoundError):
        open_media_source(tmp_path / "nothing.mp4")
    with pytest.raises(errors.NotAVideoError, match="directory"):
        open_media_source(tmp_path)


def test_probe_applies_the_configured_caps(long_video: FaceVideo) -> None:
    with pytest.raises(errors.LimitExceededError, match="claims to last"):
        open_media_source(long_video.path, AnalysisConfig(max_duration_s=3.0))
    with pytest.raises(errors.LimitExceededError, match="640×360"):
        open_media_source(long_video.path, AnalysisConfig(max_width=320, max_height=240))


@pytest.mark.parametrize(
    ("name", "fps", "seconds", "codec"),
    [
        ("ntsc.mp4", 30000 / 1001, 7.3, "libx264"),  # samples fall between frames
        ("web.webm", 24.0, 3.1, "libvpx-vp9"),  # millisecond timestamps
        ("hevc.mkv", 50.0, 2.02, "libx265"),
        ("old.avi", 15.0, 4.0, "mpeg4"),
    ],
)
def test_every_sample_is_the_frame_its_time_names(
    name: str, fps: float, seconds: float, codec: str, media_dir: Path
) -> None:
    video = make_face_video(media_dir / name, seconds=seconds, width=320, height=240, fps=fps, codec=codec,
                            frame_code=True)
    config = AnalysisConfig(segment_seconds=2.5)
    info = open_media_source(video.path, config).info
    plans = plan_segments(info, config)
    assert len(plans) >= 2 or seconds < 3
    for plan in plans:
        times, frames = decode_segment(video.path, info, plan, config)
        assert len(frames) == len(plan.frame_times)
        assert [read_frame_code(f) for f in frames] == [frame_number(t, info.fps) for t in times]
