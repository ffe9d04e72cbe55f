"""Share links: a signed, expiring, revocable link that shows one job's result and report to
someone without an API key.

The token (``core.tokens``) names only the share row and its expiry; the row says which tenant's
job it opens, and the job is read within that tenant, so a link can never reach another tenant's
job. Revoking sets ``revoked_at``; deleting the job deletes its links.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from api.services.jobs import get_job
from core.config import Settings
from core.errors import ConflictError, InvalidRequestError, NotFoundError, UnauthorizedError
from core.logs import log_event
from core.models import ApiKey, Job, JobShare, Tenant
from core.states import JobStatus
from core.tokens import read_token, sign_token

__all__ = [
    "InvalidShareTokenError",
    "create_share",
    "list_shares",
    "resolve_share",
    "revoke_share",
    "share_token",
]

log = logging.getLogger(__name__)

_PURPOSE = b"deepfakestream job share link v1"


class InvalidShareTokenError(UnauthorizedError):
    """A token this deployment did not sign (malformed or forged): counted as a failed key."""

    code = "invalid_share_token"


def share_token(settings: Settings, share: JobShare) -> str:
    """The link's token, the same every time for the same share (so a listing can show it again)."""
    return sign_token(
        settings, purpose=_PURPOSE, claims={"s": str(share.id), "e": int(share.expires_at.timestamp())}
    )


def create_share(
    session: Session, settings: Settings, *, key: ApiKey, job_id: str, expires_in_s: int | None
) -> JobShare:
    """A new link to the tenant's succeeded job. Commits."""
    limit = settings.share_ttl_max_s
    if expires_in_s is not None and expires_in_s > limit:
        raise InvalidRequestError(
            f"expires_in_s must be at most {limit} seconds on this service", code="invalid_expiry"
        )
    job = get_job(session, tenant_id=key.tenant_id, job_id=job_id)
    if job.status != JobStatus.SUCCEEDED:
        raise ConflictError(
            f"the job is {job.status}; a link can be shared once it has succeeded", code="job_not_finished"
        )
    lifetime_s = expires_in_s if expires_in_s is not None else min(settings.share_ttl_s, limit)
    # Whole seconds: the token carries the expiry as an integer and must match the row.
    now = datetime.now(UTC).replace(microsecond=0)
    share = JobShare(
        tenant_id=key.tenant_id,
        job_id=job.id,
        api_key_id=key.id,
        api_key_prefix=key.prefix,
        expires_at=now + timedelta(seconds=lifetime_s),
    )
    session.add(share)
    session.commit()
    log_event(log, "job.share.created", job_id=str(job.id), share_id=str(share.id), expires_in_s=lifetime_s)
    return share


def list_shares(session: Session, *, tenant_id: uuid.UUID, job_id: str) -> list[JobShare]:
    job = get_job(session, tenant_id=tenant_id, job_id=job_id)
    return list(
        session.scalars(
            select(JobShare)
            .where(JobShare.job_id == job.id, JobShare.tenant_id == tenant_id)
            .order_by(JobShare.created_at.desc(), JobShare.id)
        )
    )


def _parse_share_id(share_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(share_id)
    except ValueError as exc:
        raise NotFoundError("no share link with this id", code="share_not_found") from exc


def revoke_share(session: Session, *, tenant_id: uuid.UUID, share_id: str) -> None:
    """Closes the link at once; revoking a revoked link is a no-op. Commits."""
    parsed = _parse_share_id(share_id)
    mine = (JobShare.id == parsed, JobShare.tenant_id == tenant_id)
    # One conditional UPDATE, not read-then-write: a revoke racing another revoke, or the job's
    # deletion (whose cascade removes the link), must end as a no-op or a 404, never a 500.
    job_id = session.execute(
        update(JobShare)
        .where(*mine, JobShare.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
        .returning(JobShare.job_id)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    session.commit()
    if job_id is not None:
        log_event(log, "job.share.revoked", job_id=str(job_id), share_id=str(parsed))
        return
    if session.scalar(select(JobShare.id).where(*mine)) is None:
        raise NotFoundError("no share link with this id", code="share_not_found")


def resolve_share(session: Session, settings: Settings, *, token: str) -> tuple[JobShare, Job]:
    """The share a link's token names and its job, read within the share's tenant.

    A token this deployment did not sign: ``InvalidShareTokenError`` (401). A genuine link that is
    past its expiry or revoked (or whose tenant was deactivated): 401 ``share_expired`` or
    ``share_revoked``, so the person holding it knows to ask for a new one. A link whose job was
    deleted: 404."""
    claims = read_token(settings, purpose=_PURPOSE, token=token)
    if claims is None:
        raise InvalidShareTokenError("the share link is not valid")
    try:
        share_id = uuid.UUID(str(claims["s"]))
        expires = int(claims["e"])
    except (ValueError, KeyError, TypeError, OverflowError) as exc:
        raise InvalidShareTokenError("the share link is not valid") from exc
    if expires <= datetime.now(UTC).timestamp():
        raise UnauthorizedError("the share link has expired; ask for a new one", code="share_expired")
    row = session.execute(
        select(JobShare, Tenant.is_active)
        .join(Tenant, Tenant.id == JobShare.tenant_id)
        .where(JobShare.id == share_id)
    ).one_or_none()
    if row is None:
        raise NotFoundError("the shared job no longer exists", code="share_not_found")
    share, tenant_active = row
    if share.revoked_at is not None or not tenant_active:
        raise UnauthorizedError("the share link was revoked; ask for a new one", code="share_revoked")
    if int(share.expires_at.timestamp()) != expires or share.expires_at <= datetime.now(UTC):
        raise UnauthorizedError("the share link has expired; ask for a new one", code="share_expired")
    try:
        job = get_job(session, tenant_id=share.tenant_id, job_id=str(share.job_id))
    except NotFoundError as exc:
        raise NotFoundError("the shared job no longer exists", code="share_not_found") from exc
    return share, job
