"""Shapes of share links: ShareCreate (request), core.models.JobShare (stored), SharePublic
(answer, with the link) and SharedJobPublic, what the link shows to someone without a key."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.jobs import ImageFacePublic, JobPublic, ModelPublic
from core.models import JobShare
from core.states import JobStatus

__all__ = ["ShareCreate", "SharePage", "SharePublic", "SharedJobPublic", "SharedVideoPublic"]


class ShareCreate(BaseModel):
    """Body of POST /v1/jobs/{job_id}/shares (optional)."""

    model_config = ConfigDict(extra="forbid")

    expires_in_s: int | None = Field(
        default=None,
        ge=60,
        description="seconds the link stays open (default SHARE_TTL_S, 7 days; at most "
        "SHARE_TTL_MAX_S, 30 days)",
    )


class SharePublic(BaseModel):
    id: uuid.UUID = Field(description="revoke with DELETE /v1/shares/{id}")
    job_id: uuid.UUID
    url: str = Field(description="the job's result as JSON, for anyone holding the link, no key needed")
    report_url: str = Field(description="the job's HTML report, for anyone holding the link")
    expires_at: datetime
    revoked_at: datetime | None
    active: bool = Field(description="the link opens now: neither expired nor revoked")
    api_key_prefix: str = Field(description="the prefix of the API key that made the link")
    created_at: datetime

    @classmethod
    def from_row(cls, row: JobShare, *, token: str, now: datetime) -> SharePublic:
        return cls(
            id=row.id,
            job_id=row.job_id,
            url=f"/v1/shared/{token}",
            report_url=f"/v1/shared/{token}/report",
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
            active=row.revoked_at is None and row.expires_at > now,
            api_key_prefix=row.api_key_prefix,
            created_at=row.created_at,
        )


class SharePage(BaseModel):
    items: list[SharePublic] = Field(description="the job's links, newest first")


class SharedVideoPublic(BaseModel):
    filename: str | None
    size_bytes: int | None
    duration_s: float | None
    fps: float | None
    width: int | None
    height: int | None


class SharedJobPublic(BaseModel):
    """The result as GET /v1/jobs/{id} gives it, without what only the owner should see (the
    callback URL, the client's ids, the source location, the options, the review)."""

    id: uuid.UUID
    status: JobStatus
    media_type: Literal["video", "image"]
    verdict: str | None
    verdict_label: str | None
    explanation: str | None
    score: float | None
    threshold: float | None
    model: ModelPublic | None
    faces: list[ImageFacePublic] | None
    video: SharedVideoPublic
    created_at: datetime
    finished_at: datetime | None
    expires_at: datetime = Field(description="the link stops opening at this time")
    links: dict[str, str] = Field(description="report: the HTML report through the same link")

    @classmethod
    def from_public(cls, job: JobPublic, *, token: str, expires_at: datetime) -> SharedJobPublic:
        return cls(
            id=job.id,
            status=job.status,
            media_type=job.media_type,
            verdict=job.verdict,
            verdict_label=job.verdict_label,
            explanation=job.explanation,
            score=job.score,
            threshold=job.threshold,
            model=job.model,
            faces=job.faces,
            video=SharedVideoPublic(
                filename=job.video.filename,
                size_bytes=job.video.size_bytes,
                duration_s=job.video.duration_s,
                fps=job.video.fps,
                width=job.video.width,
                height=job.video.height,
            ),
            created_at=job.created_at,
            finished_at=job.finished_at,
            expires_at=expires_at,
            links={"report": f"/v1/shared/{token}/report"},
        )
