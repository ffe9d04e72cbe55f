"""The HTML report of a local analysis (``deepfakestream analyze --report``).

The document itself is ``core.report``, the same one the API serves for a job, filled by its
``build_report`` from a ``VideoResult``. The faces shown are the analysis's own explanations: the crop the
classifier saw and the Grad-CAM heatmap of that same crop, ranked as the service ranks a job's
"most suspicious faces" (score, then frame, then face), so the CLI and the page agree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from core import report as core_report
from core.report import (
    Report,
    ReportFace,
    ReportFrame,
    ReportInput,
    ReportSegment,
    ReportTrack,
)
from core.report_html import render_report
from pipeline.checkpoint import file_sha256
from pipeline.types import FaceExplanation, VideoResult, suspicion_order

__all__ = ["REPORT_FACES", "build_report", "most_suspicious", "write_report"]

# Faces the report shows: the service's default EXPLAIN_TOP_K, so a report reads like the page.
REPORT_FACES = 4


def most_suspicious(result: VideoResult, limit: int = REPORT_FACES) -> list[FaceExplanation]:
    """The ``limit`` most suspicious explained faces of the video, ranked like a job's."""
    explained = [e for segment in result.segments for e in segment.explanations]
    explained.sort(key=suspicion_order)
    return explained[: max(limit, 0)]


def _video_track(result: VideoResult, explanation: FaceExplanation) -> int | None:
    """The face's video-wide track (explanations carry their segment's local one)."""
    for frame in result.frames:
        if frame.index == explanation.frame_index and 0 <= explanation.face < len(frame.faces):
            return frame.faces[explanation.face].track
    return None


def build_report(
    result: VideoResult,
    *,
    video_path: str | Path,
    limit: int = REPORT_FACES,
    analysed_at: datetime | None = None,
) -> Report:
    """The report of a local analysis of ``video_path``."""
    path = Path(video_path)
    return core_report.build_report(
        analysed_at=analysed_at or datetime.now(UTC),
        input=ReportInput(name=path.name, size_bytes=path.stat().st_size, sha256=file_sha256(path)),
        verdict=result.verdict,
        score=result.score,
        threshold=result.threshold,
        inconclusive_band=result.inconclusive_band,
        aggregation=result.aggregation,
        model=result.model,
        caveat=result.caveat,
        video=result.video,
        media_type=result.video.media_type,
        settings=result.settings,
        timings=result.timings,
        frames=[ReportFrame(t=f.t, index=f.index, score=f.score, faces=len(f.faces)) for f in result.frames],
        segments=[
            ReportSegment(
                index=s.index,
                start_s=s.start_s,
                end_s=s.end_s,
                frames=len(s.frames),
                faces=s.face_count,
                score=s.score,
            )
            for s in result.segments
        ],
        tracks=[
            ReportTrack(id=t.id, first_t=t.first_t, last_t=t.last_t, faces=t.faces, score=t.score)
            for t in result.tracks
        ],
        faces=[
            ReportFace(
                t=e.t,
                frame_index=e.frame_index,
                track=_video_track(result, e),
                score=e.score,
                crop_jpeg=e.crop_jpeg,
                heatmap_jpeg=e.heatmap_jpeg,
            )
            for e in most_suspicious(result, limit)
        ],
    )


def write_report(
    path: str | Path, result: VideoResult, *, video_path: str | Path, limit: int = REPORT_FACES
) -> Path:
    """Render the report for ``result`` (of ``video_path``) and write it atomically to ``path``."""
    path = Path(path)
    document = render_report(build_report(result, video_path=video_path, limit=limit))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(document, encoding="utf-8")
    tmp.replace(path)
    return path
