"""Request and response shapes of webhook endpoints, callback secrets and deliveries."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from core.webhooks import message_id
from lifecycle.deliveries import EVENT_TYPES

__all__ = [
    "AttemptPublic",
    "CallbackSecretPublic",
    "DeliveryPage",
    "DeliveryPublic",
    "EndpointCreate",
    "EndpointCreated",
    "EndpointPage",
    "EndpointPublic",
]


class EndpointCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    url: str = Field(max_length=2048, examples=["https://hooks.example.com/deepfakestream"])
    description: str | None = Field(default=None, max_length=255)
    event_types: list[str] | None = Field(
        default=None,
        description=f"events to receive (default: all of {', '.join(EVENT_TYPES)})",
        examples=[["job.succeeded", "job.failed"]],
    )

    @field_validator("event_types")
    @classmethod
    def _known_events(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        unknown = sorted(set(value) - set(EVENT_TYPES))
        if unknown:
            raise ValueError(f"unknown event types {unknown}; known: {', '.join(EVENT_TYPES)}")
        if not value:
            raise ValueError("event_types must name at least one event (or be left out for all)")
        return sorted(set(value), key=EVENT_TYPES.index)


class EndpointPublic(BaseModel):
    id: uuid.UUID
    url: str
    description: str | None
    event_types: list[str]
    secret_hint: str = Field(description="the first characters of the signing secret")
    is_active: bool
    disabled_at: datetime | None
    disabled_reason: str | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: WebhookEndpoint) -> EndpointPublic:
        return cls(
            id=row.id,
            url=row.url,
            description=row.description,
            event_types=list(row.event_types or []),
            secret_hint=row.secret_hint,
            is_active=row.is_active,
            disabled_at=row.disabled_at,
            disabled_reason=row.disabled_reason,
            created_at=row.created_at,
        )


class EndpointCreated(EndpointPublic):
    secret: str = Field(description="the whsec_… signing secret; shown only in this answer")


class EndpointPage(BaseModel):
    items: list[EndpointPublic]


class CallbackSecretPublic(BaseModel):
    secret: str = Field(description="signs deliveries to the callback_url of jobs and batches")
    secret_hint: str
    created_at: datetime


class AttemptPublic(BaseModel):
    attempt: int
    started_at: datetime
    duration_ms: float
    status_code: int | None
    error_code: str | None
    error_message: str | None
    remote_address: str | None
    next_attempt_at: datetime | None = Field(description="when the next attempt was scheduled; null if none")

    @classmethod
    def from_row(cls, row: WebhookAttempt) -> AttemptPublic:
        return cls(
            attempt=row.attempt,
            started_at=row.started_at,
            duration_ms=row.duration_ms,
            status_code=row.status_code,
            error_code=row.error_code,
            error_message=row.error_message,
            remote_address=row.remote_address,
            next_attempt_at=row.next_attempt_at,
        )


class DeliveryPublic(BaseModel):
    id: uuid.UUID
    webhook_id: str = Field(description="the webhook-id header receivers see (the same on every attempt)")
    event_type: str
    destination: str = Field(description="callback (a job's or batch's callback_url) or endpoint")
    url: str
    endpoint_id: uuid.UUID | None = Field(description="null for a callback, or once the endpoint is deleted")
    job_id: uuid.UUID | None
    batch_id: uuid.UUID | None
    status: str = Field(description="pending, succeeded or failed")
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    payload: dict[str, Any]
    created_at: datetime
    finished_at: datetime | None
    attempt_log: list[AttemptPublic]

    @classmethod
    def from_row(cls, row: WebhookDelivery, attempts: list[WebhookAttempt]) -> DeliveryPublic:
        return cls(
            id=row.id,
            webhook_id=message_id(row.id),
            event_type=row.event_type,
            destination=row.destination,
            url=row.url,
            endpoint_id=row.endpoint_id,
            job_id=row.job_id,
            batch_id=row.batch_id,
            status=row.status,
            attempts=row.attempts,
            next_attempt_at=row.next_attempt_at,
            last_status_code=row.last_status_code,
            last_error=row.last_error,
            payload=dict(row.payload),
            created_at=row.created_at,
            finished_at=row.finished_at,
            attempt_log=[AttemptPublic.from_row(attempt) for attempt in attempts],
        )


class DeliveryPage(BaseModel):
    items: list[DeliveryPublic]
    next_cursor: str | None

    @classmethod
    def from_rows(
        cls, rows: list[tuple[WebhookDelivery, list[WebhookAttempt]]], next_cursor: str | None
    ) -> DeliveryPage:
        """A page of deliveries, each with its attempts."""
        return cls(
            items=[DeliveryPublic.from_row(row, attempts) for row, attempts in rows], next_cursor=next_cursor
        )
