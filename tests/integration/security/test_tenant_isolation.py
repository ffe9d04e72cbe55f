"""Tenant isolation on every route: a second tenant's key, pointed at the first tenant's real ids,
gets 404 (never 403, which would confirm the id exists), sees none of its data in any list, and
changes nothing; the owner's own key gets the same routes' answers, so the ids are live."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.integration.security.conftest import OWNER_REVIEW_NOTE, TenantResources
from tests.integration.security.routes import Route, api_routes, fill_path
from tests.utils.stack import PRIVATE_BUCKET, PrivateStack

pytestmark = pytest.mark.integration

OCTETS = "application/octet-stream"


def _owner_ids(owner: TenantResources) -> dict[str, Any]:
    return {
        "job_id": owner.job_id,
        "batch_id": owner.batch_id,
        "endpoint_id": owner.endpoint_id,
        "delivery_id": owner.delivery_id,
        "explanation_id": owner.explanation_id,
        "kind": "heatmap",
        "upload_id": owner.upload_id,
        "share_id": owner.share_id,
    }


def _marks(owner: TenantResources) -> list[str]:
    return [str(owner.tenant_id), owner.job_id, owner.batch_id, owner.endpoint_id, owner.delivery_id,
            owner.upload_id, owner.video_key, owner.share_id, "owner-job", OWNER_REVIEW_NOTE]  # fmt: skip


# Write routes with ids in the path whose body must be valid to reach the id: a body the route
# would accept, so the answer is about the id, not the body.
ID_ROUTE_BODIES: dict[tuple[str, str], Any] = {
    ("PUT", "/v1/jobs/{job_id}/review"): {"label": "real", "note": "intruder-note"},
}


def _request(client: httpx.Client, route: Route, url: str, headers: dict[str, str]) -> httpx.Response:
    if (route.method, route.path) in ID_ROUTE_BODIES:
        body = ID_ROUTE_BODIES[route.method, route.path]
        return client.request(route.method, url, headers=headers, json=body)
    if route.method == "PUT":  # a direct upload's bytes
        return client.put(url, headers={**headers, "Content-Type": OCTETS}, content=b"x" * 64)
    return client.request(route.method, url, headers=headers)


def _said(response: httpx.Response) -> str:
    return f"{response.status_code} {response.text[:150]}"


def _cross_tenant_bodies(owner: TenantResources, settings_prefix: str) -> dict[tuple[str, str], list[Any]]:
    """Write routes without ids in the path, with bodies that name the owner's resources."""
    stored = f"s3://{PRIVATE_BUCKET}/{settings_prefix}{owner.video_key}"
    return {
        ("POST", "/v1/jobs"): [{"upload_id": owner.upload_id}, {"source": stored}],
        ("POST", "/v1/batches"): [{"items": [{"source": stored}]}],
    }


def test_second_tenant_sees_and_changes_nothing(security_stack: PrivateStack, owner: TenantResources) -> None:
    stack = security_stack
    intruder = stack.new_key()
    ids = _owner_ids(owner)
    marks = _marks(owner)
    # Share links are opened by their token, whoever sends them; their isolation (a link reaches
    # its own tenant's job only) is tested in tests/integration/api/test_shares.py and below.
    routes = [
        route
        for route in api_routes(stack.settings)
        if not route.public and not route.admin and not route.token_opened
    ]
    bodies = _cross_tenant_bodies(owner, stack.settings.storage_prefix)
    # Rotating one's own callback secret touches only one's own tenant.
    own_tenant_writes = {("POST", "/v1/webhooks/callback-secret/rotate"), ("POST", "/v1/uploads"),
                         ("POST", "/v1/webhooks")}  # fmt: skip

    failures: list[str] = []
    swept = 0
    with stack.client() as client:
        before = client.get(f"/v1/deliveries/{owner.delivery_id}", headers=owner.headers).json()
        for route in routes:
            if route.params:
                url = fill_path(route.path, ids)
                answer = _request(client, route, url, intruder)
                swept += 1
                if answer.status_code != 404:
                    failures.append(f"{route} with another tenant's key: {_said(answer)}")
                elif leaked := [mark for mark in marks if mark in answer.text and mark not in url]:
                    failures.append(f"{route}: the 404 shows {leaked}")
                elif answer.status_code == 404 and "not_an_image" in answer.text:
                    failures.append(f"{route} tells another tenant what the job is: {_said(answer)}")
                if route.method == "GET":
                    mine = client.get(url, headers=owner.headers)
                    # The owner's job is a video: its picture route answers that, not "no such job".
                    video_picture = route.path.endswith("/image") and "not_an_image" in mine.text
                    if mine.status_code != 200 and not (mine.status_code == 404 and video_picture):
                        failures.append(f"{route} with the owner's key: {_said(mine)}")
            elif route.method == "GET":
                answer = client.get(route.path, headers=intruder)
                swept += 1
                if answer.status_code != 200:
                    failures.append(f"{route} with another tenant's key: {answer.status_code}")
                elif leaked := [mark for mark in marks if mark in answer.text]:
                    failures.append(f"{route} lists the owner's {leaked}")
            elif (route.method, route.path) in bodies:
                for body in bodies[route.method, route.path]:
                    answer = client.request(route.method, route.path, json=body, headers=intruder)
                    swept += 1
                    if answer.status_code not in (404, 422):
                        failures.append(f"{route} with the owner's {body}: {_said(answer)}")
            elif (route.method, route.path) not in own_tenant_writes:
                failures.append(f"{route}: a write route without ids and without an isolation case here")

        # Nothing the intruder tried changed the owner's resources.
        job = client.get(f"/v1/jobs/{owner.job_id}", headers=owner.headers)
        endpoint = client.get(f"/v1/webhooks/{owner.endpoint_id}", headers=owner.headers)
        batch = client.get(f"/v1/batches/{owner.batch_id}", headers=owner.headers)
        after = client.get(f"/v1/deliveries/{owner.delivery_id}", headers=owner.headers).json()
        shared = client.get(owner.share_url)
        reuse = client.put(
            f"/v1/uploads/{owner.upload_id}", headers={**owner.headers, "Content-Type": OCTETS}, content=b""
        )
    assert not failures, "\n".join(failures)
    assert swept >= 25
    assert job.status_code == 200 and job.json()["status"] == "succeeded"
    assert (job.json()["review"]["label"], job.json()["review"]["note"]) == ("fake", OWNER_REVIEW_NOTE)
    assert endpoint.status_code == 200 and endpoint.json()["is_active"] is True
    assert batch.status_code == 200 and batch.json()["status"] != "canceled"
    assert (after["status"], after["attempts"]) == (before["status"], before["attempts"])
    assert reuse.status_code != 404  # the upload slot is still the owner's and still open
    # The owner's link still opens, and opens the owner's job only.
    assert shared.status_code == 200 and shared.json()["id"] == owner.job_id
    assert stack.stored_keys(owner.video_key) == {stack.settings.storage_prefix + owner.video_key}


def test_ids_of_another_tenant_are_not_found_rather_than_forbidden(
    security_stack: PrivateStack, owner: TenantResources
) -> None:
    stack = security_stack
    intruder = stack.new_key()
    with stack.client(intruder) as client:
        theirs = client.get(f"/v1/jobs/{owner.job_id}")
        nobodys = client.get(f"/v1/jobs/{uuid.uuid4()}")
    # The same answer for an id that exists elsewhere and one that exists nowhere.
    assert theirs.status_code == nobodys.status_code == 404
    assert theirs.json() == nobodys.json()
