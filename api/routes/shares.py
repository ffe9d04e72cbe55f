"""Share links: make, list and revoke a job's read-only links (with a key), and open one (with
only the link)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from api.deps import CurrentKey, SessionDep, SettingsDep, StorageDep
from api.errors import error_responses
from api.ratelimit import enforce_rate_limit, record_auth_failure
from api.schemas.jobs import JobPublic
from api.schemas.shares import ShareCreate, SharedJobPublic, SharePage, SharePublic
from api.services import report
from api.services import shares as service
from core.models import Job, JobShare

__all__ = ["router"]

router = APIRouter(tags=["shares"])

# What a link's answers carry: nobody caches them (a revoked link must close at once), the page
# it is opened from is not told of it, and search engines do not index it.
_SHARED_HEADERS = {
    "Cache-Control": "private, no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
}
# The report is one self-contained document: inline styles and data: images, no script.
_REPORT_POLICY = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
)


@router.post(
    "/v1/jobs/{job_id}/shares",
    status_code=201,
    response_model=SharePublic,
    summary="A read-only link to a job's result and report, for someone without a key",
    description=(
        "Anyone holding the answer's `url` (the result as JSON) or `report_url` (the HTML report) "
        "can open them until `expires_at` or until the link is revoked with "
        "`DELETE /v1/shares/{id}`; the link carries a signed token, never the API key. 409 "
        "`job_not_finished` until the job has succeeded."
    ),
    responses=error_responses(401, 404, 409, 422),
    operation_id="create_share_v1_jobs__job_id__shares_post",
)
def post_job_share(
    job_id: str,
    key: CurrentKey,
    session: SessionDep,
    settings: SettingsDep,
    body: Annotated[ShareCreate | None, Body()] = None,
) -> SharePublic:
    share = service.create_share(
        session, settings, key=key, job_id=job_id, expires_in_s=body.expires_in_s if body else None
    )
    return SharePublic.from_row(share, token=service.share_token(settings, share), now=datetime.now(UTC))


@router.get(
    "/v1/jobs/{job_id}/shares",
    response_model=SharePage,
    summary="A job's share links, newest first (revoked and expired ones too)",
    responses=error_responses(401, 404),
    operation_id="list_shares_v1_jobs__job_id__shares_get",
)
def get_job_shares(job_id: str, key: CurrentKey, session: SessionDep, settings: SettingsDep) -> SharePage:
    now = datetime.now(UTC)
    rows = service.list_shares(session, tenant_id=key.tenant_id, job_id=job_id)
    return SharePage(
        items=[SharePublic.from_row(row, token=service.share_token(settings, row), now=now) for row in rows]
    )


@router.delete(
    "/v1/shares/{share_id}",
    status_code=204,
    summary="Revoke a share link: it stops opening at once",
    responses=error_responses(401, 404),
    operation_id="revoke_share_v1_shares__share_id__delete",
)
def delete_share(share_id: str, key: CurrentKey, session: SessionDep) -> Response:
    service.revoke_share(session, tenant_id=key.tenant_id, share_id=share_id)
    return Response(status_code=204)


async def _shared(
    request: Request, token: str, session: SessionDep, settings: SettingsDep
) -> tuple[JobShare, Job]:
    client = request.client.host if request.client else "unknown"
    try:
        share, job = await run_in_threadpool(service.resolve_share, session, settings, token=token)
    except service.InvalidShareTokenError:
        # Like a wrong key: an address that keeps sending made-up links is told to back off.
        record_auth_failure(settings, client=client)
        raise
    # A link draws from its tenant's request budget, as the tenant's own keys do.
    enforce_rate_limit(settings, tenant_id=share.tenant_id, method=request.method)
    return share, job


SharedJob = Annotated[tuple[JobShare, Job], Depends(_shared)]


@router.get(
    "/v1/shared/{token}",
    response_model=SharedJobPublic,
    summary="A shared job's result (no key: the link is the credential)",
    description=(
        "The job's verdict, score, explanation and model, without the owner's callback URL, ids "
        "and options. 401 `invalid_share_token` for a link this service did not make, "
        "`share_expired` or `share_revoked` for one that no longer opens; 404 `share_not_found` "
        "once the job is deleted."
    ),
    responses=error_responses(401, 404, 429),
)
def open_shared_job(token: str, shared: SharedJob, response: Response) -> SharedJobPublic:
    share, job = shared
    response.headers.update(_SHARED_HEADERS)
    return SharedJobPublic.from_public(JobPublic.from_job(job), token=token, expires_at=share.expires_at)


@router.get(
    "/v1/shared/{token}/report",
    response_class=Response,
    summary="A shared job's HTML report (no key: the link is the credential)",
    description="The same self-contained report as GET /v1/jobs/{id}/report, shown in the browser.",
    responses={
        200: {"content": {"text/html": {}}, "description": "the report"},
        **error_responses(401, 404, 409, 429, 503),
    },
)
def open_shared_report(shared: SharedJob, session: SessionDep, storage: StorageDep) -> Response:
    share, job = shared
    _, document = report.job_report(session, storage, tenant_id=share.tenant_id, job_id=str(job.id))
    return Response(
        document,
        media_type="text/html; charset=utf-8",
        headers={
            **_SHARED_HEADERS,
            "Content-Disposition": f'inline; filename="{report.report_filename(job.id)}"',
            "Content-Security-Policy": _REPORT_POLICY,
        },
    )
