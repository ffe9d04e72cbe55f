"""Typed dependencies: what routes declare instead of building engines, clients or Celery apps.

Routes take ``session: SessionDep``, ``key: CurrentKey``, ``page: PageQuery`` and so on; every
authenticated route is rate limited through ``CurrentKey``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from celery import Celery
from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from api.pagination import Cursor, Limit, PageRequest, page_limit
from api.ratelimit import check_auth_failures, enforce_rate_limit, record_auth_failure
from core.config import Settings
from core.db import get_session_factory
from core.errors import ForbiddenError, UnauthorizedError
from core.keys import authenticate
from core.models import ApiKey
from core.queue import get_celery
from core.storage import ObjectStore, get_object_store

__all__ = [
    "AdminKey",
    "CurrentKey",
    "IdempotencyKey",
    "PageQuery",
    "QueueDep",
    "SessionDep",
    "SettingsDep",
    "StorageDep",
    "authenticate_request",
]

_bearer = HTTPBearer(auto_error=False, description="an API key from `deepfakestream keys create`")


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(_settings)]


def _session(settings: SettingsDep) -> Iterator[Session]:
    with get_session_factory(settings)() as session:
        yield session


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
    # An address that keeps failing is refused before its key is looked at: guessing stays slow.
    check_auth_failures(settings, client=client)
    scheme, _, token = (authorization or "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        record_auth_failure(settings, client=client)
        raise UnauthorizedError("send an API key as 'Authorization: Bearer <key>'", code="missing_api_key")
    with get_session_factory(settings)() as session:
        key = authenticate(session, key=token)
    if key is None:
        record_auth_failure(settings, client=client)
        raise UnauthorizedError("the API key is unknown or revoked", code="invalid_api_key")
    # Every authenticated route is rate limited here, new ones included.
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


# The caller's key; ``key.tenant_id`` scopes every query the route makes.
CurrentKey = Annotated[ApiKey, Depends(_api_key)]


def _admin_key(key: CurrentKey) -> ApiKey:
    if not key.is_admin:
        raise ForbiddenError("this endpoint needs an admin key", code="admin_required")
    return key


AdminKey = Annotated[ApiKey, Depends(_admin_key)]
