"""The error answer every 4xx and 5xx response shares: ``{"error": {"code", "message"}}``."""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = ["ErrorBody", "ErrorDetail"]


class ErrorDetail(BaseModel):
    code: str = Field(examples=["job_not_found"])
    message: str = Field(examples=["no job with this id"])


class ErrorBody(BaseModel):
    """Every 4xx and 5xx answer has this shape."""

    error: ErrorDetail
