"""Request and response shapes of jobs and of their results' pages.

A job's family: JobCreate (request), core.models.Job (stored), JobPublic (answer) and JobPage (a
page of answers); a result's segments, frames and tracks come in pages of their own.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from api.schemas.reviews import ReviewPublic
from core import verdicts
from core.media import DEFAULT_SAMPLE_FPS, MAX_SAMPLE_FPS, MIN_SAMPLE_FPS
from core.models import Frame, Job, Segment, Track
from core.states import JobStatus

__all__ = [
    "FacePublic",
    "FramePage",
    "FramePublic",
    "ImageFacePublic",
    "JobCreate",
    "JobError",
    "JobOptions",
    "JobPage",
    "JobProgress",
    "JobPublic",
    "ModelPublic",
    "NoFaceReason",
    "SegmentPage",
    "SegmentPublic",
    "StreamTokenPublic",
    "TrackPage",
    "TrackPublic",
    "VideoPublic",
]


def _check_callback_url(value: str | None) -> str | None:
    if value is None:
        return None
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("callback_url must be an absolute http(s) URL")
    return value


class JobOptions(BaseModel):
    """What a client may choose about a job (multipart form fields or JSON)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    callback_url: str | None = Field(default=None, max_length=2048, description="notified when the job ends")
    external_id: str | None = Field(
        default=None, min_length=1, max_length=255, description="the client's own id, returned with the job"
    )
    # Ranges are the service's settings, checked in one place (api.services.submit.resolve_options)
    # so every value out of range, zero included, answers with the same code: invalid_option.
    sample_fps: float | None = Field(
        default=None,
        description=(
            f"frames analysed per second of video, {MIN_SAMPLE_FPS:g} to {MAX_SAMPLE_FPS:g} "
            f"(default {DEFAULT_SAMPLE_FPS:g})"
        ),
    )
    segment_seconds: float | None = Field(default=None, description="length of one analysis task")

    @field_validator("callback_url")
    @classmethod
    def _callback_is_http(cls, value: str | None) -> str | None:
        return _check_callback_url(value)


class JobCreate(JobOptions):
    """JSON body of POST /v1/jobs: a video already in a bucket, a finished direct upload, or a small
    image inline as base64."""

    source: str | None = Field(default=None, max_length=2048, examples=["s3://videos/clip.mp4"])
    upload_id: uuid.UUID | None = None
    image_base64: str | None = Field(
        default=None,
        description="a JPEG, PNG, WebP or GIF image, base64 (a data: URL is accepted too); its decoded "
        "size is capped by MAX_IMAGE_BASE64_BYTES",
    )

    @model_validator(mode="after")
    def _one_source(self) -> JobCreate:
        given = [value for value in (self.source, self.upload_id, self.image_base64) if value is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of source, upload_id and image_base64 (or send the file as multipart)"
            )
        return self


class JobProgress(BaseModel):
    segments_done: int
    segments_total: int | None


class JobError(BaseModel):
    code: str
    message: str


class ModelPublic(BaseModel):
    name: str | None
    version: str | None
    sha256: str | None
    trained: bool | None
    caveat: str | None = Field(
        default=None, description="what the model was trained on and what it is known to miss"
    )
    threshold: float | None = Field(default=None, description="P(fake) at and above which a video is fake")
    inconclusive_band: tuple[float, float] | None = Field(
        default=None, description="scores in [low, high) are reported as inconclusive; null: no band"
    )
    aggregation: str | None = Field(
        default=None, description="how face scores made the video's score: mean, confident or track_top"
    )


class VideoPublic(BaseModel):
    filename: str | None
    source: str | None = Field(description="the s3:// URI the job was created from, if any")
    size_bytes: int | None
    container: str | None
    duration_s: float | None
    fps: float | None
    width: int | None
    height: int | None
    codec: str | None


class ImageFacePublic(BaseModel):
    box: list[float] = Field(description="x1, y1, x2, y2 in pixels of the image as displayed")
    det_score: float
    score: float = Field(description="P(fake) of this face")


class NoFaceReason(BaseModel):
    """Why a no_face job scored nothing, when the analysis knows."""

    code: Literal["faces_too_small"] = Field(
        description="faces_too_small: faces were seen, every one smaller than the model can score"
    )
    faces_seen: int = Field(description="the most faces seen in one sampled frame")
    face_size_px: float = Field(description="their typical size (a face box's longer side, video pixels)")
    min_face_size_px: float = Field(description="the smallest face the model scores, in the same pixels")
    message: str


class JobPublic(BaseModel):
    id: uuid.UUID
    status: JobStatus
    media_type: Literal["video", "image"] = Field(
        default="video", description="image: a still picture (or a one-frame video), analysed as one frame"
    )
    faces: list[ImageFacePublic] | None = Field(
        default=None, description="an image job's faces once it succeeded; null for videos"
    )
    progress: JobProgress
    partial: bool = Field(
        default=False,
        description="canceled after some of its segments were scored: those segments, their frames and "
        "heatmaps are kept and listed as for a finished job (progress says how many), but there is no "
        "verdict or score for the whole video",
    )
    verdict: Literal["fake", "real", "inconclusive", "no_face"] | None
    verdict_label: str | None = Field(
        default=None,
        description="the verdict in words: Signs of manipulation, No signs of manipulation found by "
        "this model, Inconclusive or No face found; null while the job has not finished",
    )
    explanation: str | None = Field(
        default=None,
        description="how the verdict was reached: how face scores made the video's score, and where "
        "that score lies against the threshold and the inconclusive band",
    )
    no_face_reason: NoFaceReason | None = Field(
        default=None,
        description="with a no_face verdict, why nothing was scored when it is known (faces too small); "
        "verdict_label and explanation then say the same",
    )
    score: float | None = Field(description="P(fake) of the video")
    threshold: float | None
    model_version: str | None
    model: ModelPublic | None
    video: VideoPublic
    error: JobError | None
    attempts: int
    options: dict[str, Any]
    callback_url: str | None
    external_id: str | None
    batch_id: uuid.UUID | None = Field(default=None, description="the batch the job is an item of")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    links: dict[str, str] = Field(
        default_factory=dict,
        description="the job's results: segments, frames, tracks, explanations (heatmaps), statistics",
    )
    review: ReviewPublic | None = Field(
        default=None,
        description="a person's label for the job (PUT /v1/jobs/{id}/review), beside the model's "
        "verdict; null until the job is reviewed",
    )

    @classmethod
    def from_job(cls, job: Job) -> JobPublic:
        video = job.video
        model = None
        band = None
        if job.inconclusive_low is not None and job.inconclusive_high is not None:
            band = (job.inconclusive_low, job.inconclusive_high)
        if job.model_version is not None:
            model = ModelPublic(
                name=job.model_name,
                version=job.model_version,
                sha256=job.model_sha256,
                trained=job.model_trained,
                caveat=job.model_caveat,
                threshold=job.threshold,
                inconclusive_band=band,
                aggregation=job.aggregation,
            )
        error = None
        if job.error_code is not None:
            error = JobError(code=job.error_code, message=job.error_message or "")
        no_face_reason = None
        if job.verdict == verdicts.Verdict.NO_FACE and job.no_face_reason:
            no_face_reason = NoFaceReason.model_validate(job.no_face_reason)
        return cls(
            id=job.id,
            status=JobStatus(job.status),
            media_type=job.media_type or "video",  # type: ignore[arg-type]
            faces=None if job.faces is None else [ImageFacePublic.model_validate(f) for f in job.faces],
            progress=JobProgress(segments_done=job.segments_done, segments_total=job.segments_total),
            partial=job.status == JobStatus.CANCELED and (job.segments_done or 0) > 0,
            verdict=job.verdict,  # type: ignore[arg-type]
            verdict_label=verdicts.FACES_TOO_SMALL_LABEL if no_face_reason else verdicts.label(job.verdict),
            explanation=no_face_reason.message
            if no_face_reason
            else verdicts.explanation(
                verdict=job.verdict,
                score=job.score,
                threshold=job.threshold,
                band=band,
                aggregation=job.aggregation,
                media_type=job.media_type or "video",
            ),
            no_face_reason=no_face_reason,
            score=job.score,
            threshold=job.threshold,
            model_version=job.model_version,
            model=model,
            video=VideoPublic(
                filename=video.filename,
                source=video.source_uri,
                size_bytes=video.size_bytes,
                container=video.container,
                duration_s=video.duration_s,
                fps=video.fps,
                width=video.width,
                height=video.height,
                codec=video.codec,
            ),
            error=error,
            attempts=job.attempts,
            options=dict(job.options or {}),
            callback_url=job.callback_url,
            external_id=job.external_id,
            batch_id=job.batch_id,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            links={
                name: f"/v1/jobs/{job.id}/{name}"
                for name in ("segments", "frames", "tracks", "explanations", "statistics", "report")
            },
            # Only a succeeded job can have a review: a job still running costs no extra read.
            review=ReviewPublic.from_row(job.review)
            if job.status == JobStatus.SUCCEEDED and job.review is not None
            else None,
        )


class JobPage(BaseModel):
    items: list[JobPublic]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null on the last")


class StreamTokenPublic(BaseModel):
    token: str = Field(description="pass as ?token= to GET /v1/jobs/{id}/events")
    expires_at: datetime = Field(description="a stream must be opened before this")
    events_url: str = Field(description="the job's event stream with this token")


class SegmentPublic(BaseModel):
    index: int
    start_s: float
    end_s: float
    status: str
    score: float | None
    frame_count: int
    face_count: int
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def from_row(cls, row: Segment) -> SegmentPublic:
        return cls(
            index=row.segment_index,
            start_s=row.start_s,
            end_s=row.end_s,
            status=row.status,
            score=row.score,
            frame_count=row.frame_count,
            face_count=row.face_count,
            attempts=row.attempts,
            started_at=row.started_at,
            finished_at=row.finished_at,
        )


class SegmentPage(BaseModel):
    items: list[SegmentPublic]
    next_cursor: str | None


class FacePublic(BaseModel):
    box: list[float] = Field(description="x1, y1, x2, y2 in pixels of the displayed frame")
    det_score: float
    track: int
    score: float = Field(description="P(fake) of this face")


class FramePublic(BaseModel):
    index: int = Field(description="frame number in the source video")
    t: float = Field(description="seconds from the start")
    segment: int
    score: float | None = Field(description="max P(fake) over the frame's faces; null without faces")
    faces: list[FacePublic]

    @classmethod
    def from_row(cls, row: Frame) -> FramePublic:
        return cls(
            index=row.frame_index,
            t=row.t,
            segment=row.segment_index,
            score=row.score,
            faces=[FacePublic.model_validate(face) for face in row.faces or []],
        )


class FramePage(BaseModel):
    items: list[FramePublic]
    next_cursor: str | None


class TrackPublic(BaseModel):
    id: int
    first_t: float
    last_t: float
    score: float
    faces: int

    @classmethod
    def from_row(cls, row: Track) -> TrackPublic:
        return cls(id=row.track_id, first_t=row.first_t, last_t=row.last_t, score=row.score, faces=row.faces)


class TrackPage(BaseModel):
    items: list[TrackPublic]
    next_cursor: str | None
