"""The column values of a new job: one builder for a single submission and for every item of a batch.

A new job starts queued, with the analysis options it was given and its media type read from the
container sniffed at submission (``video`` until one is known; the probe corrects it later).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from core.media import media_type_for
from core.states import JobStatus

__all__ = ["new_job_values"]


def new_job_values(
    *,
    tenant_id: uuid.UUID,
    video_id: uuid.UUID,
    container: str | None,
    options: Mapping[str, Any],
    external_id: str | None,
    callback_url: str | None = None,
    idempotency_key: str | None = None,
    request_hash: str | None = None,
    batch_id: uuid.UUID | None = None,
    batch_index: int | None = None,
    priority: int = 0,
) -> dict[str, Any]:
    """The ``jobs`` row of a new queued job, as column values (for ``Job(...)`` or a bulk insert).

    ``callback_url``, ``idempotency_key`` and ``request_hash`` belong to a single submission (a
    batch keeps its own); ``batch_id``, ``batch_index`` and ``priority`` to a batch's items.
    """
    return {
        "id": uuid.uuid4(),
        "tenant_id": tenant_id,
        "video_id": video_id,
        "status": JobStatus.QUEUED.value,
        "options": dict(options),
        "external_id": external_id,
        "callback_url": callback_url,
        "idempotency_key": idempotency_key,
        "request_hash": request_hash,
        "batch_id": batch_id,
        "batch_index": batch_index,
        "priority": priority,
        "media_type": media_type_for(container),
    }
