"""The webhook delivery log: deliveries of a job or a batch with every attempt, and redelivery."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from api.deps import CurrentKey, PageQuery, QueueDep, SessionDep, SettingsDep
from api.errors import error_responses
from api.schemas.webhooks import DeliveryPage, DeliveryPublic
from api.services import webhooks as service

__all__ = ["router"]

router = APIRouter(tags=["webhooks"])


@router.get(
    "/v1/jobs/{job_id}/deliveries",
    response_model=DeliveryPage,
    summary="Webhook deliveries of a job's events, oldest first, with every attempt",
    responses=error_responses(401, 404, 422),
)
def list_job_deliveries(
    job_id: str,
    key: CurrentKey,
    session: SessionDep,
    page: PageQuery,
) -> DeliveryPage:
    rows, next_cursor = service.list_deliveries(session, tenant_id=key.tenant_id, job_id=job_id, page=page)
    return DeliveryPage.from_rows(rows, next_cursor)


@router.get(
    "/v1/batches/{batch_id}/deliveries",
    response_model=DeliveryPage,
    summary="Webhook deliveries of a batch's own events (batch.completed), with every attempt",
    responses=error_responses(401, 404, 422),
)
def list_batch_deliveries(
    batch_id: str,
    key: CurrentKey,
    session: SessionDep,
    page: PageQuery,
) -> DeliveryPage:
    rows, next_cursor = service.list_deliveries(
        session, tenant_id=key.tenant_id, batch_id=batch_id, page=page
    )
    return DeliveryPage.from_rows(rows, next_cursor)


@router.get(
    "/v1/deliveries/{delivery_id}",
    response_model=DeliveryPublic,
    summary="One webhook delivery with every attempt",
    responses=error_responses(401, 404),
    operation_id="get_delivery_v1_deliveries__delivery_id__get",
)
def get_delivery_by_id(delivery_id: str, key: CurrentKey, session: SessionDep) -> DeliveryPublic:
    row, attempts = service.get_delivery(session, tenant_id=key.tenant_id, delivery_id=delivery_id)
    return DeliveryPublic.from_row(row, attempts)


@router.post(
    "/v1/deliveries/{delivery_id}/redeliver",
    status_code=202,
    response_model=DeliveryPublic,
    summary="Send a finished delivery again",
    description=(
        "Starts a new series of attempts now, with the same `webhook-id` and body, freshly signed. "
        "A delivery still being attempted answers 409 `delivery_pending`; one redelivered less than "
        "WEBHOOK_REDELIVER_WINDOW_S (10 s) ago answers 409 `delivery_redelivered`, so requests sent "
        "together start exactly one redelivery."
    ),
    responses=error_responses(401, 404, 409),
    operation_id="redeliver_v1_deliveries__delivery_id__redeliver_post",
)
async def post_delivery_redeliver(
    delivery_id: str, key: CurrentKey, session: SessionDep, settings: SettingsDep, celery: QueueDep
) -> DeliveryPublic:
    row, attempts = await run_in_threadpool(
        lambda: service.redeliver(
            session, celery, tenant_id=key.tenant_id, delivery_id=delivery_id, settings=settings
        )
    )
    return DeliveryPublic.from_row(row, attempts)
