"""Response shapes of the monitoring routes.

Drift, health snapshots and resource consumption, and a job's explanations and statistics.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from core.models import Explanation

__all__ = [
    "DriftReport",
    "DriftThresholdsPublic",
    "DriftWindow",
    "ExplanationPage",
    "ExplanationPublic",
    "FeatureDriftPublic",
    "HealthSnapshot",
    "HealthSnapshotPage",
    "JobStatisticsPublic",
    "ResourceConsumption",
]


class DriftWindow(BaseModel):
    start: datetime
    end: datetime
    jobs: int = Field(description="finished jobs in the window (with statistics)")


class DriftThresholdsPublic(BaseModel):
    psi: float
    p_value: float
    min_samples: int


class FeatureDriftPublic(BaseModel):
    feature: str
    kind: Literal["numeric", "categorical"]
    side: Literal["input", "output"]
    test: Literal["ks", "chi2"] = Field(
        description="Kolmogorov–Smirnov for numbers, chi-square for categories"
    )
    reference_count: int
    recent_count: int
    psi: float | None = Field(description="population stability index; null without enough jobs")
    statistic: float | None
    p_value: float | None
    status: Literal["ok", "drift", "insufficient_data"]
    flagged: bool
    reference: dict[str, Any] = Field(description="mean, std, p05, median, p95; or shares of categories")
    recent: dict[str, Any]


class DriftReport(BaseModel):
    scope: Literal["tenant", "all"] = Field(description="the caller's jobs, or every tenant's (admin keys)")
    window: str
    reference_window: str
    recent: DriftWindow
    reference: DriftWindow
    thresholds: DriftThresholdsPublic
    drifted: list[str] = Field(
        description="features flagged: PSI past its threshold and the test significant"
    )
    features: list[FeatureDriftPublic]


class HealthSnapshot(BaseModel):
    id: int | None = Field(description="the stored record; null when the database could not store it")
    checked_at: datetime
    status: Literal["healthy", "degraded", "unhealthy"]
    duration_ms: float
    checks: dict[str, Any]


class HealthSnapshotPage(BaseModel):
    items: list[HealthSnapshot]


class ResourceConsumption(BaseModel):
    collected_at: datetime
    api: dict[str, Any] = Field(description="this API process and its host")
    workers: list[dict[str, Any]] = Field(
        description="one report per worker process: CPU, memory, GPU memory (pool processes), age"
    )
    queues: dict[str, Any] = Field(description="messages waiting per queue, in all and by priority step")
    errors: dict[str, str] = Field(default_factory=dict, description="sources that could not be read")


class ExplanationPublic(BaseModel):
    id: int
    rank: int | None = Field(description="1: the job's most suspicious face; null outside the top k")
    score: float = Field(description="P(fake) of this face")
    t: float
    frame_index: int
    segment: int
    face: int = Field(description="position of the face among its frame's faces")
    track: int | None = Field(description="video-wide track id, once the job has finished")
    box: list[float]
    heatmap_url: str
    crop_url: str

    @classmethod
    def from_row(cls, row: Explanation, *, track: int | None) -> ExplanationPublic:
        base = f"/v1/jobs/{row.job_id}/explanations/{row.id}"
        return cls(
            id=row.id,
            rank=row.rank,
            score=row.score,
            t=row.t,
            frame_index=row.frame_index,
            segment=row.segment_index,
            face=row.face,
            track=track,
            box=[float(v) for v in row.box],
            heatmap_url=f"{base}/heatmap.jpg",
            crop_url=f"{base}/crop.jpg",
        )


class ExplanationPage(BaseModel):
    items: list[ExplanationPublic]


class JobStatisticsPublic(BaseModel):
    job_id: uuid.UUID
    finished_at: datetime
    input: dict[str, Any] = Field(
        description="brightness, luma histogram moments, sharpness, face size, resolution, fps, codec"
    )
    output: dict[str, Any] = Field(description="score, verdict, no_face")
    spread: dict[str, Any] = Field(description="standard deviation, min and max over the sampled frames")
    segments: list[dict[str, Any]]
    stored_at: str | None = Field(description="where the same document lies in storage, beside the video")
