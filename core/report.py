"""The records of a one-file HTML report of an analysis: verdict, provenance, score over time and the
most suspicious faces.

Built from plain records by one builder, ``build_report``, and written out as one self-contained
HTML file by ``core.report_html.render_report``: ``deepfakestream analyze --report`` gives it its
result (``pipeline.report``), the API a job's stored rows and images (``api.services.report``,
``GET /v1/jobs/{id}/report``), so both write the same document. No numpy, no torch, no image
library.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from core import verdicts

__all__ = [
    "Report",
    "ReportFace",
    "ReportFrame",
    "ReportInput",
    "ReportModel",
    "ReportSegment",
    "ReportTrack",
    "ReportVideo",
    "VideoFacts",
    "build_report",
]


@dataclass(frozen=True)
class ReportFace:
    """One of the most suspicious faces: the crop the classifier saw and its heatmap (same crop)."""

    t: float
    frame_index: int
    track: int | None
    score: float
    crop_jpeg: bytes
    heatmap_jpeg: bytes | None = None


@dataclass(frozen=True)
class ReportFrame:
    t: float
    index: int
    score: float | None  # the frame's most suspicious face; None without faces
    faces: int


@dataclass(frozen=True)
class ReportSegment:
    index: int
    start_s: float
    end_s: float
    frames: int
    faces: int
    score: float | None


@dataclass(frozen=True)
class ReportTrack:
    id: int
    first_t: float
    last_t: float
    faces: int
    score: float | None


@dataclass(frozen=True)
class ReportInput:
    """The analysed file as it was received."""

    name: str
    size_bytes: int | None
    sha256: str | None
    source: str | None = None  # where it came from, when not an upload (s3:// or https:// URI)


@dataclass(frozen=True)
class ReportModel:
    name: str | None
    version: str | None
    sha256: str | None
    trained: bool | None
    caveat: str | None


@dataclass(frozen=True)
class ReportVideo:
    duration_s: float | None
    width: int | None
    height: int | None
    fps: float | None
    codec: str | None
    media_type: str = "video"  # "image": one picture, no course over time


@dataclass(frozen=True)
class Report:
    analysed_at: datetime
    input: ReportInput
    verdict: str
    score: float | None
    threshold: float | None
    inconclusive_band: tuple[float, float] | None
    aggregation: str | None
    model: ReportModel
    video: ReportVideo
    settings: dict[str, Any] = field(default_factory=dict)
    frames: Sequence[ReportFrame] = ()
    segments: Sequence[ReportSegment] = ()
    tracks: Sequence[ReportTrack] = ()
    faces: Sequence[ReportFace] = ()
    job_id: str | None = None
    timings: dict[str, float] | None = None  # total_s and the stage times, when known

    @property
    def verdict_label(self) -> str:
        return verdicts.label(self.verdict) or self.verdict

    @property
    def explanation(self) -> str | None:
        return verdicts.explanation(
            verdict=self.verdict,
            score=self.score,
            threshold=self.threshold,
            band=self.inconclusive_band,
            aggregation=self.aggregation,
            media_type=self.video.media_type,
        )


class VideoFacts(Protocol):
    """What the report says of the input: the probe's findings (``VideoInfo``) or their stored row."""

    @property
    def duration_s(self) -> float | None: ...

    @property
    def width(self) -> int | None: ...

    @property
    def height(self) -> int | None: ...

    @property
    def fps(self) -> float | None: ...

    @property
    def codec(self) -> str | None: ...


def build_report(
    *,
    analysed_at: datetime,
    input: ReportInput,
    verdict: str,
    score: float | None,
    threshold: float | None,
    inconclusive_band: tuple[float, float] | None,
    aggregation: str | None,
    model: Mapping[str, Any],
    caveat: str | None,
    video: VideoFacts,
    media_type: str,
    settings: Mapping[str, Any] | None,
    timings: Mapping[str, Any] | None,
    frames: Iterable[ReportFrame],
    segments: Iterable[ReportSegment],
    tracks: Iterable[ReportTrack],
    faces: Iterable[ReportFace],
    job_id: str | None = None,
) -> Report:
    """The report of one analysis, whoever kept it: ``model`` has the checkpoint's ``name``,
    ``version``, ``sha256`` and ``trained``; ``timings`` keeps its numbers only, as seconds."""
    return Report(
        analysed_at=analysed_at,
        job_id=job_id,
        input=input,
        verdict=verdict,
        score=score,
        threshold=threshold,
        inconclusive_band=inconclusive_band,
        aggregation=aggregation,
        model=ReportModel(
            name=model.get("name"),
            version=model.get("version"),
            sha256=model.get("sha256"),
            trained=model.get("trained"),
            caveat=caveat,
        ),
        video=ReportVideo(
            duration_s=video.duration_s,
            width=video.width,
            height=video.height,
            fps=video.fps,
            codec=video.codec,
            media_type=media_type,
        ),
        settings=dict(settings or {}),
        frames=list(frames),
        segments=list(segments),
        tracks=list(tracks),
        faces=list(faces),
        timings={
            key: float(value)
            for key, value in (timings or {}).items()
            if isinstance(value, int | float)
        },
    )
