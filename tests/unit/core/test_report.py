"""The HTML report rendered from plain records: verdict words, provenance, the chart, escaping."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from core.report import (
    Report,
    ReportFace,
    ReportFrame,
    ReportInput,
    ReportModel,
    ReportSegment,
    ReportTrack,
    ReportVideo,
    build_report,
)
from core.report_html import render_report

WHEN = datetime(2026, 12, 1, 15, 4, 5, tzinfo=UTC)
SHA = "ab" * 32


def _report(**changes: object) -> Report:
    values: dict[str, object] = {
        "analysed_at": WHEN,
        "input": ReportInput(name="clip <1>.mp4", size_bytes=2_345_678, sha256=SHA),
        "verdict": "inconclusive",
        "score": 0.5,
        "threshold": 0.52,
        "inconclusive_band": (0.24, 0.72),
        "aggregation": "mean",
        "model": ReportModel(
            name="lite0", version="1.2", sha256="c" * 64, trained=True, caveat="Misses lip-sync."
        ),
        "video": ReportVideo(duration_s=4.0, width=640, height=360, fps=25.0, codec="h264"),
        "settings": {"sample_fps": 3.0, "aggregation": "mean"},
        "frames": [
            ReportFrame(t=0.0, index=0, score=0.4, faces=1),
            ReportFrame(t=1.0, index=25, score=0.6, faces=1),
        ],
        "segments": [ReportSegment(index=0, start_s=0.0, end_s=4.0, frames=2, faces=2, score=0.5)],
        "tracks": [ReportTrack(id=1, first_t=0.0, last_t=1.0, faces=2, score=0.5)],
        "faces": [
            ReportFace(t=1.0, frame_index=25, track=1, score=0.6, crop_jpeg=b"crop", heatmap_jpeg=b"heat")
        ],
        "job_id": "job-1",
    }
    values.update(changes)
    return Report(**values)  # type: ignore[arg-type]


def test_report_records_provenance_verdict_words_and_caveat() -> None:
    document = render_report(_report())

    assert 'data-verdict="inconclusive">Inconclusive</p>' in document
    assert "inside the inconclusive band 0.240–0.720" in document
    assert '<p class="caveat"><strong>Limits of this model:</strong> Misses lip-sync.</p>' in document
    assert "2026-12-01 15:04:05 UTC" in document and "job <code>job-1</code>" in document
    assert (
        "clip &lt;1&gt;.mp4, 2.3 MB (2345678 bytes)" in document and "<h1>clip &lt;1&gt;.mp4</h1>" in document
    )
    assert SHA in document and "lite0 1.2" in document
    assert "sample_fps 3.0, aggregation mean" in document
    assert "0.500 (threshold 0.520; inconclusive from 0.240 up to 0.720)" in document
    # The band is drawn, the axes are named, both frames are plotted.
    assert "<title>inconclusive band 0.240–0.720</title>" in document
    assert ">P(fake)</text>" in document and ">time in the video</text>" in document
    assert document.count("<circle") == 2 * 2  # in the wide drawing and in the narrow one
    # One face: its crop and its heatmap.
    assert re.findall(r'src="data:image/jpeg;base64,([^"]+)"', document) == ["Y3JvcA==", "aGVhdA=="]


def test_no_face_report_draws_no_plot() -> None:
    document = render_report(
        _report(
            verdict="no_face",
            score=None,
            frames=[ReportFrame(t=0.0, index=0, score=None, faces=0)],
            segments=[ReportSegment(index=0, start_s=0.0, end_s=4.0, frames=1, faces=0, score=None)],
            tracks=[],
            faces=[],
        )
    )
    assert 'data-verdict="no_face">No face found</p>' in document
    assert "<svg" not in document and "No score to plot" in document
    assert "No face was found in the sampled frames." in document and "Try a clip" in document
    assert "no score (no face was analysed)" in document


def test_unknown_video_fields_are_left_out_not_dashed() -> None:
    document = render_report(
        _report(video=ReportVideo(duration_s=None, width=None, height=None, fps=None, codec=None))
    )
    assert "— px" not in document and "None" not in document
    assert "<tr><th>Video</th><td>—</td></tr>" in document


def test_heatmaps_come_with_their_colour_scale() -> None:
    from core.heatmaps import legend_gradient

    document = render_report(_report())
    assert 'data-testid="heatmap-legend"' in document
    assert f'style="background: {legend_gradient()}"' in document
    assert ">0 no evidence</span>" in document and ">1 strongest (P(fake) 1)</span>" in document
    without = render_report(
        _report(faces=[ReportFace(t=1.0, frame_index=25, track=1, score=0.6, crop_jpeg=b"crop")])
    )
    assert "heatmap-legend" not in without


def test_a_picture_lists_no_tracks_or_segments() -> None:
    picture = ReportVideo(duration_s=0.0, width=384, height=512, fps=None, codec="jpeg", media_type="image")
    document = render_report(
        _report(
            video=picture,
            frames=[ReportFrame(t=0.0, index=0, score=0.6, faces=2)],
            segments=[ReportSegment(index=0, start_s=0.0, end_s=0.0, frames=1, faces=2, score=0.6)],
            tracks=[
                ReportTrack(id=0, first_t=0.0, last_t=0.0, faces=1, score=0.6),
                ReportTrack(id=1, first_t=0.0, last_t=0.0, faces=1, score=0.2),
            ],
        )
    )
    assert "Face tracks" not in document and "<h2>Segments</h2>" not in document
    assert "0.00 s" not in document and "<svg" not in document
    assert "<tr><th>Faces</th><td>2 in the picture</td></tr>" in document
    # A video keeps both tables.
    video = render_report(_report())
    assert "<h2>Face tracks</h2>" in video and "<h2>Segments</h2>" in video


class _Probed:
    """The input's facts as the probe has them or as their row is stored: only the names matter."""

    duration_s = 4.0
    width = 640
    height = 360
    fps = 25.0
    codec = "h264"


def test_one_builder_fills_the_report_from_either_side() -> None:
    built = build_report(
        analysed_at=WHEN,
        job_id="j-1",
        input=ReportInput(name="clip.mp4", size_bytes=10, sha256=SHA),
        verdict="fake",
        score=0.9,
        threshold=0.5,
        inconclusive_band=None,
        aggregation="mean",
        model={"name": "lite0", "version": "1.2", "sha256": "c" * 64, "trained": True, "extra": 1},
        caveat="Misses lip-sync.",
        video=_Probed(),
        media_type="video",
        settings=None,
        timings={"total_s": 2, "probe_s": 0.5, "note": "kept out"},
        frames=iter([ReportFrame(t=0.0, index=0, score=0.9, faces=1)]),
        segments=(),
        tracks=(),
        faces=(),
    )
    assert built.model == ReportModel(
        name="lite0", version="1.2", sha256="c" * 64, trained=True, caveat="Misses lip-sync."
    )
    assert built.video == ReportVideo(duration_s=4.0, width=640, height=360, fps=25.0, codec="h264")
    assert built.settings == {} and built.timings == {"total_s": 2.0, "probe_s": 0.5}
    assert list(built.frames) == [ReportFrame(t=0.0, index=0, score=0.9, faces=1)] and built.job_id == "j-1"
    assert "Signs of manipulation" in render_report(built)
