"""Request and response shapes of human review: a label for a job, the export and the agreement summary.

A review's family: ReviewCreate (request), core.models.JobReview (stored), ReviewPublic (answer,
also inside JobPublic); ReviewSummary is the model's agreement with reviewers over days.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from core import verdicts
from core.models import JobReview

__all__ = [
    "NOTE_MAX_CHARS",
    "ReviewCell",
    "ReviewCounts",
    "ReviewCreate",
    "ReviewDay",
    "ReviewPublic",
    "ReviewSummary",
]

NOTE_MAX_CHARS = 2000

ReviewLabel = Literal["fake", "real", "unsure"]


class ReviewCreate(BaseModel):
    """Body of PUT /v1/jobs/{job_id}/review."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    label: ReviewLabel = Field(description="what the reviewer found: fake, real or unsure")
    note: str | None = Field(
        default=None, max_length=NOTE_MAX_CHARS, description="why, in the reviewer's words"
    )
    reviewer: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="who reviewed (a name or handle); the API key that sent the review is kept too",
    )


class ReviewPublic(BaseModel):
    label: ReviewLabel
    note: str | None
    reviewer: str | None = Field(description="the name the reviewer gave, if any")
    api_key_prefix: str = Field(description="the prefix of the API key that recorded the review")
    model_verdict: str = Field(description="the model's verdict the reviewer saw")
    outcome: Literal["agreed", "overturned", "undecided"] = Field(
        description="agreed or overturned when both the model and the reviewer said fake or real; "
        "undecided when either did not (unsure, inconclusive, no face)"
    )
    reviewed_at: datetime
    first_reviewed_at: datetime

    @classmethod
    def from_row(cls, row: JobReview) -> ReviewPublic:
        return cls(
            label=row.label,  # type: ignore[arg-type]
            note=row.note,
            reviewer=row.reviewer,
            api_key_prefix=row.api_key_prefix,
            model_verdict=row.model_verdict,
            outcome=verdicts.review_outcome(row.model_verdict, row.label),  # type: ignore[arg-type]
            reviewed_at=row.reviewed_at,
            first_reviewed_at=row.created_at,
        )


class ReviewCounts(BaseModel):
    reviewed: int = Field(description="jobs reviewed")
    unsure: int = Field(description="reviews labelled unsure")
    fake_calls: int = Field(
        description="reviewed jobs the model called fake and the reviewer labelled fake or real"
    )
    fake_calls_confirmed: int = Field(description="of those, the reviewer labelled fake")
    precision_fake: float | None = Field(
        description="fake_calls_confirmed / fake_calls: the precision of the model's FAKE calls; "
        "null without any"
    )
    decided: int = Field(description="reviews where both the model and the reviewer said fake or real")
    overturned: int = Field(description="of those, the reviewer said the other")
    share_overturned: float | None = Field(description="overturned / decided; null without any")


class ReviewDay(ReviewCounts):
    day: date = Field(description="the UTC day the reviews were last recorded on")


class ReviewCell(BaseModel):
    model_verdict: str
    reviewer_label: ReviewLabel
    reviews: int


class ReviewSummary(BaseModel):
    scope: Literal["tenant", "all"]
    days: int
    start: datetime
    end: datetime
    totals: ReviewCounts
    by_day: list[ReviewDay] = Field(description="days with reviews, oldest first")
    matrix: list[ReviewCell] = Field(description="reviews by the model's verdict and the reviewer's label")
