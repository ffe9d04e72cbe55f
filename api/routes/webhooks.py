"""/v1/webhooks: a tenant's webhook endpoints and the secret that signs its callback URLs."""

from __future__ import annotations

from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

from api.deps import CurrentKey, PageQuery, SessionDep, SettingsDep
from api.errors import error_responses
from api.schemas.webhooks import (
    CallbackSecretPublic,
    DeliveryPage,
    EndpointCreate,
    EndpointCreated,
    EndpointPage,
    EndpointPublic,
)
from api.services import webhooks as service

__all__ = ["router"]

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


@router.post(
    "",
    status_code=201,
    response_model=EndpointCreated,
    summary="Register a webhook endpoint",
    description=(
        "Events are POSTed to the URL signed as Standard Webhooks (`webhook-id`, `webhook-timestamp`, "
        "`webhook-signature`). The `whsec_…` secret is in this answer only. The URL's host must not "
        "resolve to a loopback, private, link-local or metadata address."
    ),
    responses=error_responses(401, 409, 422),
    operation_id="create_endpoint_v1_webhooks_post",
)
async def post_endpoint(
    body: EndpointCreate, key: CurrentKey, session: SessionDep, settings: SettingsDep
) -> EndpointCreated:
    endpoint, secret = await run_in_threadpool(
        lambda: service.create_endpoint(
            session,
            tenant_id=key.tenant_id,
            url=body.url,
            description=body.description,
            event_types=body.event_types,
            settings=settings,
        )
    )
    return EndpointCreated(**EndpointPublic.from_row(endpoint).model_dump(), secret=secret)


@router.get(
    "",
    response_model=EndpointPage,
    summary="List webhook endpoints",
    responses=error_responses(401),
    operation_id="list_endpoints_v1_webhooks_get",
)
def get_endpoints(key: CurrentKey, session: SessionDep) -> EndpointPage:
    rows = service.list_endpoints(session, tenant_id=key.tenant_id)
    return EndpointPage(items=[EndpointPublic.from_row(row) for row in rows])


@router.get(
    "/callback-secret",
    response_model=CallbackSecretPublic,
    summary="The secret that signs callback_url deliveries",
    description="Deliveries to the `callback_url` of jobs and batches are signed with this secret "
    "(made on first use).",
    responses=error_responses(401),
    operation_id="get_callback_secret_v1_webhooks_callback_secret_get",
)
def get_webhook_callback_secret(
    key: CurrentKey, session: SessionDep, settings: SettingsDep
) -> CallbackSecretPublic:
    secret, row = service.get_callback_secret(session, tenant_id=key.tenant_id, settings=settings)
    return CallbackSecretPublic(secret=secret, secret_hint=row.secret_hint, created_at=row.created_at)


@router.post(
    "/callback-secret/rotate",
    response_model=CallbackSecretPublic,
    summary="Replace the callback signing secret",
    description="Every attempt from now on, retries of earlier events included, uses the new secret.",
    responses=error_responses(401),
    operation_id="rotate_callback_secret_v1_webhooks_callback_secret_rotate_post",
)
def post_callback_secret_rotate(
    key: CurrentKey, session: SessionDep, settings: SettingsDep
) -> CallbackSecretPublic:
    secret, row = service.rotate_callback_secret(session, tenant_id=key.tenant_id, settings=settings)
    return CallbackSecretPublic(secret=secret, secret_hint=row.secret_hint, created_at=row.created_at)


@router.get(
    "/{endpoint_id}",
    response_model=EndpointPublic,
    summary="A webhook endpoint",
    responses=error_responses(401, 404),
    operation_id="get_endpoint_v1_webhooks__endpoint_id__get",
)
def get_endpoint_by_id(endpoint_id: str, key: CurrentKey, session: SessionDep) -> EndpointPublic:
    return EndpointPublic.from_row(
        service.get_endpoint(session, tenant_id=key.tenant_id, endpoint_id=endpoint_id)
    )


@router.post(
    "/{endpoint_id}/enable",
    response_model=EndpointPublic,
    summary="Turn an endpoint back on after it answered 410 Gone",
    responses=error_responses(401, 404, 422),
    operation_id="enable_endpoint_v1_webhooks__endpoint_id__enable_post",
)
async def post_endpoint_enable(
    endpoint_id: str, key: CurrentKey, session: SessionDep, settings: SettingsDep
) -> EndpointPublic:
    endpoint = await run_in_threadpool(
        lambda: service.enable_endpoint(
            session, tenant_id=key.tenant_id, endpoint_id=endpoint_id, settings=settings
        )
    )
    return EndpointPublic.from_row(endpoint)


@router.delete(
    "/{endpoint_id}",
    status_code=204,
    summary="Delete a webhook endpoint",
    description="Deliveries still waiting for it fail; its delivery log stays readable.",
    responses=error_responses(401, 404),
    operation_id="delete_endpoint_v1_webhooks__endpoint_id__delete",
)
def delete_endpoint_by_id(endpoint_id: str, key: CurrentKey, session: SessionDep) -> Response:
    service.delete_endpoint(session, tenant_id=key.tenant_id, endpoint_id=endpoint_id)
    return Response(status_code=204)


@router.get(
    "/{endpoint_id}/deliveries",
    response_model=DeliveryPage,
    summary="Deliveries to an endpoint, oldest first, with every attempt",
    responses=error_responses(401, 404, 422),
)
def list_endpoint_deliveries(
    endpoint_id: str,
    key: CurrentKey,
    session: SessionDep,
    page: PageQuery,
) -> DeliveryPage:
    rows, next_cursor = service.list_deliveries(
        session, tenant_id=key.tenant_id, endpoint_id=endpoint_id, page=page
    )
    return DeliveryPage.from_rows(rows, next_cursor)
