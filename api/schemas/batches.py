"""Request and response shapes of batches: BatchCreate, BatchPublic and BatchPage.

BatchCreate is the request, core.models.Batch the stored row, BatchPublic the answer.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["BatchCounts", "BatchCreate", "BatchItem", "BatchPage", "BatchPublic", "BatchVerdicts"]


class BatchItem(BaseModel):
    """One video of a batch: a ``source`` the service fetches, or a finished direct upload."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    source: str | None = Field(
        default=None,
        min_length=1,
        max_length=2048,
        description="s3://bucket/key in a bucket the service may read, or an https:// URL",
        examples=["s3://client-videos/2024/clip-0001.mp4"],
    )
    upload_id: uuid.UUID | None = Field(
        default=None, description="a finished direct upload (POST /v1/uploads, then PUT the file)"
    )
    external_id: str | None = Field(default=None, min_length=1, max_length=255)

    @model_validator(mode="after")
    def _one_source(self) -> BatchItem:
        if (self.source is None) == (self.upload_id is None):
            raise ValueError("give exactly one of source and upload_id")
        return self


class BatchCreate(BaseModel):
    """JSON body of POST /v1/batches. A CSV or JSONL manifest carries the items instead, with the
    other fields as query parameters."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    items: list[BatchItem] = Field(min_length=1)
    name: str | None = Field(default=None, min_length=1, max_length=255)
    callback_url: str | None = Field(
        default=None, max_length=2048, description="receives batch.completed when every item has ended"
    )
    # Ranges are checked with the jobs' options (invalid_option), zero and too large alike.
    sample_fps: float | None = Field(default=None)
    segment_seconds: float | None = Field(default=None)


class BatchCounts(BaseModel):
    queued: int
    processing: int
    succeeded: int
    failed: int
    canceled: int


class BatchVerdicts(BaseModel):
    fake: int
    real: int
    inconclusive: int = 0
    no_face: int


class BatchPublic(BaseModel):
    id: uuid.UUID
    name: str | None
    status: Literal["running", "completed", "canceled"]
    callback_url: str | None
    jobs_total: int
    jobs_finished: int
    progress: float = Field(description="share of items that have ended, 0 to 1")
    counts: BatchCounts
    verdicts: BatchVerdicts = Field(description="verdicts of the succeeded items")
    estimated_completion_at: datetime | None = Field(
        description="at the pace so far; null before the first item ends or once the batch has ended"
    )
    created_at: datetime
    canceled_at: datetime | None
    completed_at: datetime | None


class BatchPage(BaseModel):
    items: list[BatchPublic]
    next_cursor: str | None
