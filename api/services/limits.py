"""Per-tenant limits on work in flight."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.config import Settings
from core.errors import InvalidRequestError, TooManyRequestsError
from core.models import Job
from core.states import ACTIVE_JOB_STATES

__all__ = ["IN_FLIGHT_LOCK_ID", "ensure_in_flight_capacity"]

IN_FLIGHT_LOCK_ID = 724139  # pg advisory lock namespace: one tenant's job creations, one at a time


def ensure_in_flight_capacity(
    session: Session, *, tenant_id: uuid.UUID, adding: int, settings: Settings, lock: bool = True
) -> None:
    """TooManyRequestsError when ``adding`` more jobs would put the tenant past its limit of jobs
    queued or processing. Takes a per-tenant transaction lock, so two requests cannot both pass
    on the same free room: call it in the transaction that inserts the jobs. ``lock=False`` is
    an early, advisory look (before an upload), not a guarantee."""
    limit = settings.max_jobs_in_flight_per_tenant
    if adding > limit:
        raise InvalidRequestError(
            f"{adding} jobs at once is more than the limit of {limit} jobs in flight; split the batch",
            code="batch_exceeds_limit",
        )
    if lock:
        session.execute(select(func.pg_advisory_xact_lock(IN_FLIGHT_LOCK_ID, func.hashtext(str(tenant_id)))))
    active = (
        session.scalar(
            select(func.count())
            .select_from(Job)
            .where(Job.tenant_id == tenant_id, Job.status.in_([s.value for s in ACTIVE_JOB_STATES]))
        )
        or 0
    )
    if active + adding > limit:
        raise TooManyRequestsError(
            f"{active} jobs are queued or processing and the limit is {limit}; "
            f"{adding} more must wait until some finish",
            code="too_many_jobs_in_flight",
            retry_after_s=settings.in_flight_retry_after_s,
        )
