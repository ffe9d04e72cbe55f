"""Typed dependencies: what routes declare instead of building engines, clients or Celery apps.

Routes take ``session: SessionDep``, ``key: CurrentKey``, ``page: PageQuery`` and so on; every
authenticated route is rate limited through ``CurrentKey``.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from celery import Celery
from fastapi import Depends, Header, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.events import JobEventHub
from api.keycache import KeyCache
from api.pagination import Cursor, Limit, PageRequest, page_limit
from api.ratelimit import enforce_rate_limit, record_auth_failure
from api.services.job_events import key_for_stream_token
from core.config import Settings
from core.db import get_read_session_factory, get_session_factory
from core.errors import ForbiddenError, UnauthorizedError
from core.keys import authenticate, live_key
from core.models import ApiKey
from core.queue import get_celery
from core.storage import ObjectStore, get_object_store

__all__ = [
    "AdminKey",
    "CurrentKey",
    "EventHubDep",
    "IdempotencyKey",
    "PageQuery",
    "QueueDep",
    "SessionDep",
    "SettingsDep",
    "StorageDep",
    "StreamKey",
    "authenticate_request",
    "key_is_live",
]

_bearer = HTTPBearer(auto_error=False, description="an API key from `deepfakestream keys create`")


# Dependencies that do no I/O are ``async def``: a plain ``def`` would cost every request a trip
# through the thread pool (measured in bench/api.py's polling figures).


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(_settings)]


async def _session(settings: SettingsDep) -> AsyncIterator[Session]:
    # Making a session does no I/O; closing one that still holds a connection ends its
    # transaction (a round trip), so only that close goes to the thread pool.
    session = get_session_factory(settings)()
    try:
        yield session
    finally:
        if session.in_transaction():
            await run_in_threadpool(session.close)
        else:
            session.close()


SessionDep = Annotated[Session, Depends(_session)]


def _storage(settings: SettingsDep) -> ObjectStore:
    return get_object_store(settings)


StorageDep = Annotated[ObjectStore, Depends(_storage)]


def _queue(settings: SettingsDep) -> Celery:
    return get_celery(settings)


QueueDep = Annotated[Celery, Depends(_queue)]

# Repeats a creating request safely: the same key and body return what the first request made.
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="repeat a request safely: the same key and body return the same job or batch",
    ),
]


def _page(settings: SettingsDep, cursor: Cursor = None, limit: Limit = None) -> PageRequest:
    return PageRequest(cursor=cursor, limit=page_limit(limit, settings))


# A list route's ``cursor`` and ``limit`` query parameters, the limit checked against PAGE_SIZE_MAX.
PageQuery = Annotated[PageRequest, Depends(_page)]


def authenticate_request(
    settings: Settings, *, authorization: str | None, client: str, method: str
) -> ApiKey:
    """The live key an ``Authorization: Bearer <key>`` header carries, rate limited; a typed 401
    or 429 otherwise. Runs before a request's body is read (``api.guard``) and for every other
    authenticated route through ``CurrentKey``."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        record_auth_failure(settings, client=client)
        raise UnauthorizedError("send an API key as 'Authorization: Bearer <key>'", code="missing_api_key")
    key = _authenticate(settings, key=token)
    if key is None:
        record_auth_failure(settings, client=client)
        raise UnauthorizedError("the API key is unknown or revoked", code="invalid_api_key")
    # Every authenticated route is rate limited here, new ones included. The key is looked up
    # before the address's failures matter: a valid key is served whatever others sharing its
    # address sent, and only a missing, wrong or revoked one spends (or, when none is left, is
    # refused by) the address's failure budget.
    enforce_rate_limit(settings, tenant_id=key.tenant_id, method=method)
    return key


def _api_key(
    request: Request,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> ApiKey:
    # A request with a body was authenticated (and rate limited) before its body was read.
    checked: ApiKey | None = getattr(request.state, "api_key", None)
    if checked is not None:
        return checked
    return authenticate_request(
        settings,
        authorization=request.headers.get("authorization"),
        client=request.client.host if request.client else "unknown",
        method=request.method,
    )


@functools.cache
def _key_cache(settings: Settings) -> KeyCache:
    return KeyCache(ttl_s=settings.api_key_cache_s)


def _authenticate(settings: Settings, *, key: str) -> ApiKey | None:
    return _key_cache(settings).get_or_load(key, functools.partial(_read_key, settings))


def _read_key(settings: Settings, key: str) -> ApiKey | None:
    # The key is read in a session of its own, one statement without a transaction, and the
    # connection goes back to the pool in this same trip to the thread pool: a request never
    # holds one between trips (a crowd of waiting requests could otherwise take every pool
    # thread, each blocked on a connection only a waiter can free), a status poll saves two round
    # trips, and a route that needs no session of its own does without one. The key comes back
    # detached, its columns loaded.
    with get_read_session_factory(settings)() as session:
        return authenticate(session, key=key)


@functools.cache
def _live_key_ids(settings: Settings) -> KeyCache:
    # Keyed by the key's id: streams opened with a token have no plaintext key to look up.
    return KeyCache(ttl_s=settings.api_key_cache_s)


def _read_live_key(settings: Settings, key_id: str) -> ApiKey | None:
    with get_read_session_factory(settings)() as session:
        return live_key(session, key_id=uuid.UUID(key_id))


async def key_is_live(settings: Settings, key_id: uuid.UUID) -> bool:
    """Whether the key is still live, as this process knows it (API_KEY_CACHE_S): what a long
    request (an event stream) asks now and then. Every stream of one key shares one read."""
    record = await run_in_threadpool(
        _live_key_ids(settings).get_or_load, str(key_id), functools.partial(_read_live_key, settings)
    )
    return record is not None


# The caller's key; ``key.tenant_id`` scopes every query the route makes.
CurrentKey = Annotated[ApiKey, Depends(_api_key)]


async def _event_hub(request: Request) -> JobEventHub:
    hub: JobEventHub = request.app.state.job_events
    return hub


# The process's one subscription to job events, shared by every waiting request.
EventHubDep = Annotated[JobEventHub, Depends(_event_hub)]


StreamToken = Annotated[
    str | None,
    Query(
        # No length limit here: a token too long is refused like any other bad one (a counted 401).
        description="a stream token from POST /v1/jobs/{job_id}/events/token, for clients "
        "that cannot send an Authorization header (a browser's EventSource)",
    ),
]


def _stream_key(
    request: Request,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    token: StreamToken = None,
) -> ApiKey:
    if token is None:
        return _api_key(request, settings, credentials)
    client = request.client.host if request.client else "unknown"
    with get_read_session_factory(settings)() as session:
        key = key_for_stream_token(
            session, settings, token=token, job_id=request.path_params.get("job_id", "")
        )
    if key is None:
        record_auth_failure(settings, client=client)
        raise UnauthorizedError(
            "the stream token is invalid, expired, or for another job", code="invalid_stream_token"
        )
    enforce_rate_limit(settings, tenant_id=key.tenant_id, method=request.method)
    return key


# The key behind an event stream: an Authorization header, or a signed ``?token=`` for one job.
StreamKey = Annotated[ApiKey, Depends(_stream_key)]


def _admin_key(key: CurrentKey) -> ApiKey:
    if not key.is_admin:
        raise ForbiddenError("this endpoint needs an admin key", code="admin_required")
    return key


AdminKey = Annotated[ApiKey, Depends(_admin_key)]
