"""Frames chosen by their own timestamps: variable frame rates, and keyframes too far apart."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import errors
from pipeline.analyzer import Analyzer
from pipeline.decode import decode_segment
from pipeline.media_source import open_media_source
from pipeline.plan import plan_segments, sample_numbers
from pipeline.types import AnalysisConfig
from tests.utils.bad_media import VARIABLE_FRAME_RATES
from tests.utils.media import FaceVideo, _run_ffmpeg, box_iou, make_face_video, read_frame_code

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("name", "codec"),
    [
        ("obs.mkv", "libx264"),  # Matroska: millisecond clock, no per-stream duration
        ("browser.webm", "libvpx-vp9"),
        ("phone.mp4", "libx264"),  # the header's average rate is no frame's spacing
    ],
)
def test_variable_frame_rate_samples_the_frame_shown_at_each_time(
    name: str, codec: str, media_dir: Path
) -> None:
    video = make_face_video(media_dir / name, width=320, height=240, codec=codec, frame_code=True,
                            frame_rates=VARIABLE_FRAME_RATES)
    config = AnalysisConfig(segment_seconds=2.0)
    info = open_media_source(video.path, config).info
    assert info.nb_frames == video.frame_count == 90
    assert info.fps == pytest.approx(video.fps, rel=0.02)  # the average, 22.5

    samples: list[float] = []
    for plan in plan_segments(info, config):
        times, frames = decode_segment(video.path, info, plan, config)
        assert len(frames) == len(plan.frame_times)
        shown = [video.frame_at(t) for t in times]
        # The frame returned for each time is the one shown then, and the time is that frame's own.
        assert [read_frame_code(f) for f in frames] == shown
        assert times == pytest.approx([video.frame_times[n] for n in shown], abs=1e-3)
        assert sample_numbers(plan, info) == shown
        # Every third of a second from the window's start: each sample is the nearest frame.
        for k, t in enumerate(times):
            assert abs(t - (plan.start_s + k / config.sample_fps)) <= 0.5 / 15 + 1e-3
        samples += times
    # The slow second half is sampled to its end, not refused or cut short.
    assert len(samples) == 11 and samples[-1] > 3.3


@pytest.mark.parametrize("container", ["mpegts", "flv", "mov"])
def test_every_container_decodes_the_frames_its_plan_names(container: str, media_dir: Path) -> None:
    # Three rates and a keyframe every 15 frames; MPEG-TS starts its clock at 1.4 s and is sought
    # in by bisection, FLV at 0.07 s.
    video = make_face_video(media_dir / f"rates-{container}.mkv", width=320, height=240, frame_code=True,
                            frame_rates=((30.0, 2.0), (10.0, 2.0), (24.0, 2.0)), keyframe_interval=15)
    path = media_dir / f"rates.{container}"
    _run_ffmpeg(["-i", str(video.path), "-c", "copy", "-f", container, str(path)])
    config = AnalysisConfig(segment_seconds=0.5, sample_fps=7.0)
    info = open_media_source(path, config).info
    for plan in plan_segments(info, config):
        times, frames = decode_segment(path, info, plan, config)
        assert [read_frame_code(f) for f in frames] == [video.frame_at(t) for t in times] == list(
            plan.frame_numbers
        ), plan.index


def test_variable_frame_rate_faces_are_found_where_they_are(analyzer: Analyzer, media_dir: Path) -> None:
    video = make_face_video(media_dir / "vfr-face.mp4", width=640, height=360,
                            frame_rates=VARIABLE_FRAME_RATES)
    result = analyzer.analyze(video.path)
    assert len(result.frames) == 11
    for frame in result.frames:
        # The frame number is the frame shown at the sample's time (not time × average rate)...
        assert frame.index == video.frame_at(frame.t)
        assert frame.t == pytest.approx(video.frame_times[frame.index], abs=1e-3)
        # ...and the face is where it is in that frame.
        (face,) = frame.faces
        (truth,) = video.face_boxes(frame.index)
        assert box_iou(face.box, truth) > 0.75, (frame.index, face.box, truth)


@pytest.fixture(scope="module")
def one_keyframe(media_dir: Path) -> FaceVideo:
    """12 s whose only keyframe is the first frame, as some browser recordings are."""
    return make_face_video(media_dir / "one-keyframe.mp4", seconds=12.0, width=320, height=240, fps=25,
                           frame_code=True, keyframe_interval=0)


def test_keyframes_too_far_apart_are_refused_with_a_typed_error(one_keyframe: FaceVideo) -> None:
    config = AnalysisConfig(segment_seconds=4.0, max_keyframe_lead_s=5.0)
    info = open_media_source(one_keyframe.path, config).info
    # Segment 2 (8–12 s) would decode 8 s of video to reach its first frame: past the 5 s limit.
    with pytest.raises(errors.LimitExceededError) as refused:
        plan_segments(info, config)
    assert refused.value.code == "sparse_keyframes"
    assert not refused.value.retryable and refused.value.exit_code == 8
    assert "segment 2" in refused.value.message and "the limit is 5 s" in refused.value.message


def test_keyframes_within_the_limit_decode_every_segment(one_keyframe: FaceVideo, media_dir: Path) -> None:
    config = AnalysisConfig(segment_seconds=4.0, max_keyframe_lead_s=10.0)
    info = open_media_source(one_keyframe.path, config).info
    plans = plan_segments(info, config)
    assert len(plans) == 3
    for plan in plans:
        times, frames = decode_segment(one_keyframe.path, info, plan, config)
        assert [read_frame_code(f) for f in frames] == [round(t * 25) for t in times]
    # A keyframe every second passes a limit that refuses one keyframe in 12 s.
    regular = make_face_video(media_dir / "keyframe-every-second.mp4", seconds=12.0, width=320, height=240,
                              fps=25, keyframe_interval=25)
    tight = config.replace(max_keyframe_lead_s=1.5)
    assert len(plan_segments(open_media_source(regular.path, tight).info, tight)) == 3
