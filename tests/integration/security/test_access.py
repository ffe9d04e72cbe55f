"""Who may call what: every route but the public ones needs a live key, admin-only internals
refuse tenant keys, and the public routes give away no tenant's data. Routes are read from the
application, so a route added later is checked without being listed here."""

from __future__ import annotations

import secrets
import uuid

import pytest

from core.keys import create_api_key, revoke_api_key
from tests.integration.security.conftest import TenantResources
from tests.integration.security.routes import api_routes, fill_path, mounted_paths
from tests.utils.stack import PrivateStack

pytestmark = pytest.mark.integration

# Internal endpoints that must stay admin-only whatever else changes.
ADMIN_INTERNALS = {"/healthcheck/", "/healthcheck/history/", "/system/resource/consumption/"}
RANDOM_IDS = {
    "job_id": uuid.uuid4(),
    "batch_id": uuid.uuid4(),
    "endpoint_id": uuid.uuid4(),
    "delivery_id": uuid.uuid4(),
    "upload_id": uuid.uuid4(),
    "share_id": uuid.uuid4(),
    "token": "v1.e30.bm90LWEtc2lnbmF0dXJl",
    "explanation_id": 1,
    "kind": "heatmap",
}


def _revoked_key(stack: PrivateStack) -> str:
    with stack.session() as session:
        created = create_api_key(session, tenant_name=f"revoked-{secrets.token_hex(4)}")
        assert revoke_api_key(session, prefix=created.record.prefix)
    return created.key


def test_every_route_but_the_public_ones_needs_a_live_key(security_stack: PrivateStack) -> None:
    stack = security_stack
    routes = [route for route in api_routes(stack.settings) if not route.public and not route.token_opened]
    assert len(routes) >= 30, [str(route) for route in routes]  # the sweep really sees the API
    credentials = {
        "missing_api_key": {},
        "invalid_api_key": {"Authorization": f"Bearer dfs_{secrets.token_hex(4)}_{secrets.token_urlsafe(9)}"},
        "revoked": {"Authorization": f"Bearer {_revoked_key(stack)}"},
        "wrong_scheme": {"Authorization": f"Basic {secrets.token_urlsafe(16)}"},
    }
    expected_code = {"missing_api_key": "missing_api_key", "wrong_scheme": "missing_api_key"}

    failures = []
    with stack.client() as client:
        for route in routes:
            url = fill_path(route.path, RANDOM_IDS)
            for name, headers in credentials.items():
                # From an address of its own: these hundreds of failures spend that address's
                # failed-key budget, not loopback's (the API trusts X-Forwarded-For from loopback).
                sent = {**headers, "X-Forwarded-For": "192.0.2.10"}
                response = client.request(route.method, url, headers=sent)
                code = response.json().get("error", {}).get("code") if response.content else None
                if response.status_code != 401 or code != expected_code.get(name, "invalid_api_key"):
                    failures.append(f"{route} with {name}: {response.status_code} {response.text[:120]}")
                elif response.headers.get("WWW-Authenticate") != "Bearer":
                    failures.append(f"{route} with {name}: no WWW-Authenticate: Bearer")
    assert not failures, "\n".join(failures)


def test_admin_internals_refuse_tenant_keys(security_stack: PrivateStack) -> None:
    stack = security_stack
    routes = api_routes(stack.settings)
    admin_routes = [route for route in routes if route.admin]
    tenant = stack.new_key()
    admin = stack.new_key(admin=True)

    assert {route.path for route in admin_routes} >= ADMIN_INTERNALS
    failures = []
    with stack.client() as client:
        for route in admin_routes:
            url = fill_path(route.path, RANDOM_IDS)
            refused = client.request(route.method, url, headers=tenant)
            allowed = client.request(route.method, url, headers=admin)
            if refused.status_code != 403 or refused.json()["error"]["code"] != "admin_required":
                failures.append(f"{route} with a tenant key: {refused.status_code} {refused.text[:120]}")
            if allowed.status_code in (401, 403) or allowed.status_code >= 500:
                failures.append(f"{route} with an admin key: {allowed.status_code} {allowed.text[:120]}")
        # Drift over every tenant is an admin view too, though the route itself is not.
        drift = client.get("/v1/monitoring/drift", params={"scope": "all"}, headers=tenant)
        if drift.status_code != 403:
            failures.append(f"drift scope=all with a tenant key: {drift.status_code}")
    assert not failures, "\n".join(failures)


def test_public_routes_show_no_tenant_data(security_stack: PrivateStack, owner: TenantResources) -> None:
    stack = security_stack
    public = [route for route in api_routes(stack.settings) if route.public and route.method == "GET"]
    marks = [str(owner.tenant_id), owner.job_id, owner.batch_id, owner.endpoint_id, owner.video_key]
    with stack.client() as client:
        for route in public:
            response = client.get(route.path)
            assert response.status_code in (200, 503), f"{route}: {response.status_code}"
            leaked = [mark for mark in marks if mark in response.text]
            assert not leaked, f"{route} shows {leaked}"
        # The static files: the page asks the person for a key, it carries none; the API docs'
        # scripts are the fastapi-offline package's.
        static_files = {
            "/web": ("index.html", "app.js"),
            "/docs-assets": ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js"),
        }
        assert sorted(mounted_paths(stack.settings)) == sorted(static_files)
        for mount, names in static_files.items():
            for name in names:
                page = client.get(f"{mount}/{name}")
                assert page.status_code == 200, f"{mount}/{name}: {page.status_code}"
                assert not [mark for mark in marks if mark in page.text], f"{mount}/{name}"


def test_share_link_routes_open_only_with_a_valid_link_never_with_a_key(
    security_stack: PrivateStack, owner: TenantResources
) -> None:
    stack = security_stack
    routes = [route for route in api_routes(stack.settings) if route.token_opened]
    token = owner.share_url.removeprefix("/v1/shared/")
    assert {route.path for route in routes} == {"/v1/shared/{token}", "/v1/shared/{token}/report"}
    failures = []
    with stack.client() as client:
        for route in routes:
            # From an address of its own, as above: these refusals spend its failed-key budget.
            sent = {"X-Forwarded-For": "192.0.2.11"}
            for headers in ({}, owner.headers, stack.new_key(admin=True)):
                refused = client.request(
                    route.method, fill_path(route.path, RANDOM_IDS), headers={**sent, **headers}
                )
                code = refused.json().get("error", {}).get("code")
                if refused.status_code != 401 or code != "invalid_share_token":
                    failures.append(
                        f"{route} with a made-up token: {refused.status_code} {refused.text[:120]}"
                    )
            opened = client.request(route.method, fill_path(route.path, {"token": token}))
            if opened.status_code != 200 or owner.job_id not in opened.text:
                failures.append(f"{route} with the owner's link: {opened.status_code} {opened.text[:120]}")
            elif str(owner.tenant_id) in opened.text or owner.video_key in opened.text:
                failures.append(f"{route} shows the owner's tenant or storage key")
    assert not failures, "\n".join(failures)
    # The link is a credential: the API logs the route's template, never the token in the path.
    assert token not in stack.api.log_text()
