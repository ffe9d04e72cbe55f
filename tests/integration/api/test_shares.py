"""Share links in-process: a read-only link to one job's result and report that opens without a
key, expires, can be revoked, cannot be forged, and never reaches another tenant's job."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select, update

from api.services.job_events import issue_stream_token
from api.services.shares import share_token
from core.config import Settings
from core.db import get_session_factory
from core.models import ApiKey, Job, JobShare, Tenant

pytestmark = pytest.mark.integration

Headers = Callable[..., dict[str, str]]


def _job(client: TestClient, headers: dict[str, str], video: bytes, settings: Settings, **fields: str) -> str:
    """A job as a worker would have left it once it succeeded (no frames: an empty report)."""
    response = client.post(
        "/v1/jobs", headers=headers, files={"file": ("clip.mp4", video, "video/mp4")}, data=fields
    )
    assert response.status_code == 202, response.text
    job_id = str(response.json()["id"])
    with get_session_factory(settings)() as session:
        session.execute(
            update(Job)
            .where(Job.id == uuid.UUID(job_id))
            .values(
                status="succeeded",
                verdict="fake",
                score=0.93,
                threshold=0.5,
                model_name="share-test",
                model_version="1.2.3",
                finished_at=datetime.now(UTC),
                segments_total=0,
            )
        )
        session.commit()
    return job_id


def _share(client: TestClient, headers: dict[str, str], job_id: str, **body: Any) -> dict[str, Any]:
    response = client.post(f"/v1/jobs/{job_id}/shares", headers=headers, json=body or None)
    assert response.status_code == 201, response.text
    return dict(response.json())


def _error(response: Any) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def test_a_link_opens_the_result_and_the_report_without_a_key(
    client: TestClient, make_key: Headers, small_video: bytes, api_settings: Settings
) -> None:
    headers = make_key()
    job_id = _job(
        client,
        headers,
        small_video,
        api_settings,
        external_id="owner-ext",
        callback_url="https://93.184.216.34/cb",
    )
    before = datetime.now(UTC)

    share = _share(client, headers, job_id)
    result = client.get(share["url"])
    page = client.get(share["report_url"])
    listed = client.get(f"/v1/jobs/{job_id}/shares", headers=headers).json()["items"]

    key = headers["Authorization"].removeprefix("Bearer ")
    assert share["job_id"] == job_id and share["active"] is True and share["revoked_at"] is None
    assert share["url"].startswith("/v1/shared/") and share["report_url"] == share["url"] + "/report"
    assert key not in share["url"] and "dfs_" not in share["url"]
    expires = datetime.fromisoformat(share["expires_at"])
    assert timedelta(days=7) - timedelta(minutes=1) < expires - before < timedelta(days=7, minutes=1)
    assert result.status_code == 200, result.text
    shown = result.json()
    assert (shown["id"], shown["verdict"], shown["score"]) == (job_id, "fake", 0.93)
    assert shown["verdict_label"] == "Signs of manipulation" and shown["model"]["version"] == "1.2.3"
    assert shown["video"]["filename"] == "clip.mp4" and shown["links"] == {"report": share["report_url"]}
    # What only the owner sees stays out of the link's answer.
    for hidden in ("callback_url", "external_id", "options", "batch_id", "review", "error"):
        assert hidden not in shown
    assert "owner-ext" not in result.text and "93.184.216.34" not in result.text
    assert result.headers["cache-control"] == "private, no-store"
    assert result.headers["referrer-policy"] == "no-referrer"
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-disposition"].startswith("inline;")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.text.startswith("<!DOCTYPE html>") and job_id in page.text
    assert [(item["id"], item["url"], item["active"]) for item in listed] == [
        (share["id"], share["url"], True)
    ]


def test_a_revoked_link_stops_opening_at_once(
    client: TestClient, make_key: Headers, small_video: bytes, api_settings: Settings
) -> None:
    headers = make_key()
    job_id = _job(client, headers, small_video, api_settings)
    share, other = _share(client, headers, job_id), _share(client, headers, job_id)
    assert client.get(share["url"]).status_code == 200

    revoked = client.delete(f"/v1/shares/{share['id']}", headers=headers)
    again = client.delete(f"/v1/shares/{share['id']}", headers=headers)
    listed = {
        item["id"]: item for item in client.get(f"/v1/jobs/{job_id}/shares", headers=headers).json()["items"]
    }

    assert revoked.status_code == again.status_code == 204
    assert _error(client.get(share["url"])) == (401, "share_revoked")
    assert _error(client.get(share["report_url"])) == (401, "share_revoked")
    assert listed[share["id"]]["active"] is False and listed[share["id"]]["revoked_at"] is not None
    # The job's other link is not touched.
    assert client.get(other["url"]).status_code == 200 and listed[other["id"]]["active"] is True
    for missing in (str(uuid.uuid4()), "not-an-id"):
        assert _error(client.delete(f"/v1/shares/{missing}", headers=headers)) == (404, "share_not_found")


def test_an_expired_link_stops_opening(
    client: TestClient, make_key: Headers, small_video: bytes, api_settings: Settings
) -> None:
    headers = make_key()
    job_id = _job(client, headers, small_video, api_settings)
    share = _share(client, headers, job_id, expires_in_s=60)
    assert datetime.fromisoformat(share["expires_at"]) - datetime.now(UTC) <= timedelta(seconds=61)
    assert client.get(share["url"]).status_code == 200

    # As if the minute had passed: the row and the token the service signs for it both expired.
    with get_session_factory(api_settings)() as session:
        session.execute(
            update(JobShare)
            .where(JobShare.id == uuid.UUID(share["id"]))
            .values(expires_at=datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5))
        )
        session.commit()
        row = session.get_one(JobShare, uuid.UUID(share["id"]))
        expired_token = share_token(api_settings, row)
    listed = client.get(f"/v1/jobs/{job_id}/shares", headers=headers).json()["items"]

    assert _error(client.get(share["url"])) == (401, "share_expired")
    assert _error(client.get(f"/v1/shared/{expired_token}")) == (401, "share_expired")
    assert _error(client.get(f"/v1/shared/{expired_token}/report")) == (401, "share_expired")
    assert listed[0]["active"] is False


def test_forged_and_foreign_tokens_open_nothing(
    client: TestClient, make_key: Headers, small_video: bytes, api_settings: Settings
) -> None:
    headers = make_key()
    job_id = _job(client, headers, small_video, api_settings)
    share = _share(client, headers, job_id)
    token = share["url"].removeprefix("/v1/shared/")
    version, payload, signature = token.split(".")
    with get_session_factory(api_settings)() as session:
        key = (
            session.query(ApiKey)
            .filter(ApiKey.prefix == "_".join(headers["Authorization"][7:].split("_")[:2]))
            .one()
        )
        stream_token = issue_stream_token(api_settings, key=key, job_id=uuid.UUID(job_id)).token
    other_secret = api_settings.model_copy(
        update={"webhook_secrets_key": SecretStr("another-deployment-secret")}
    )
    with get_session_factory(api_settings)() as session:
        foreign_signed = share_token(other_secret, session.get_one(JobShare, uuid.UUID(share["id"])))

    forged = [
        f"{version}.{payload}.{signature[:-2]}AA",  # a changed signature
        f"{version}.{payload[:-2]}x{payload[-1]}.{signature}",  # a changed payload
        f"v2.{payload}.{signature}",
        f"{payload}.{signature}",
        "not-a-token",
        "a.b.c",
        token + "." + signature,
        stream_token,  # signed by this service, for another purpose
        foreign_signed,  # signed for this share by another deployment
        "v1." + "A" * 2000 + ".sig",
        headers["Authorization"].removeprefix("Bearer "),  # an API key is no link
    ]
    # Each refusal spends one of the address's failed-key tokens (AUTH_FAILURES_BURST, 30): the
    # report route is tried with a few only.
    paths = [f"/v1/shared/{bad}" for bad in forged] + [f"/v1/shared/{bad}/report" for bad in forged[:3]]
    for path in paths:
        answer = client.get(path)
        assert _error(answer) == (401, "invalid_share_token"), (path, answer.text)
        assert job_id not in answer.text
    # A share token does not open the job's event stream either.
    assert client.get(f"/v1/jobs/{job_id}/events", params={"token": token}).status_code == 401


def test_a_link_of_one_tenant_never_reveals_another_tenants_job(
    client: TestClient, make_key: Headers, small_video: bytes, api_settings: Settings
) -> None:
    alice, bob = make_key(), make_key()
    alice_job = _job(client, alice, small_video, api_settings)
    bob_job = _job(client, bob, small_video, api_settings)
    alice_share, bob_share = _share(client, alice, alice_job), _share(client, bob, bob_job)
    _, alice_payload, _ = alice_share["url"].removeprefix("/v1/shared/").split(".")
    _, _, bob_signature = bob_share["url"].removeprefix("/v1/shared/").split(".")

    assert client.get(alice_share["url"]).json()["id"] == alice_job
    assert client.get(bob_share["url"]).json()["id"] == bob_job
    # Bob can neither make, list nor revoke links of Alice's job, and learns nothing of it.
    assert _error(client.post(f"/v1/jobs/{alice_job}/shares", headers=bob)) == (404, "job_not_found")
    assert _error(client.get(f"/v1/jobs/{alice_job}/shares", headers=bob)) == (404, "job_not_found")
    assert _error(client.delete(f"/v1/shares/{alice_share['id']}", headers=bob)) == (404, "share_not_found")
    assert client.get(alice_share["url"]).status_code == 200
    # Alice's share named under Bob's signature is a forgery.
    mixed = client.get(f"/v1/shared/v1.{alice_payload}.{bob_signature}")
    assert _error(mixed) == (401, "invalid_share_token") and alice_job not in mixed.text
    # Were a share row ever to name a job of another tenant, the job is read within the share's
    # tenant: not found, never shown.
    with get_session_factory(api_settings)() as session:
        bob_tenant = session.get_one(JobShare, uuid.UUID(bob_share["id"])).tenant_id
        session.execute(
            update(JobShare).where(JobShare.id == uuid.UUID(alice_share["id"])).values(tenant_id=bob_tenant)
        )
        session.commit()
    crossed = client.get(alice_share["url"])
    crossed_report = client.get(alice_share["report_url"])
    assert _error(crossed) == (404, "share_not_found") and alice_job not in crossed.text
    assert _error(crossed_report) == (404, "share_not_found")


def test_links_close_with_their_job_and_their_tenant(
    client: TestClient, make_key: Headers, small_video: bytes, api_settings: Settings
) -> None:
    headers = make_key()
    deleted_job = _job(client, headers, small_video, api_settings)
    kept_job = _job(client, headers, small_video, api_settings)
    deleted_share, kept_share = _share(client, headers, deleted_job), _share(client, headers, kept_job)

    assert client.delete(f"/v1/jobs/{deleted_job}", headers=headers).status_code == 204
    assert _error(client.get(deleted_share["url"])) == (404, "share_not_found")
    with get_session_factory(api_settings)() as session:
        tenant_id = session.get_one(JobShare, uuid.UUID(kept_share["id"])).tenant_id
        session.execute(update(Tenant).where(Tenant.id == tenant_id).values(is_active=False))
        session.commit()
    assert _error(client.get(kept_share["url"])) == (401, "share_revoked")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"expires_in_s": 59}, "validation_error"),
        ({"expires_in_s": "soon"}, "validation_error"),
        ({"expires_in_s": 30 * 86400 + 1}, "invalid_expiry"),
        ({"expires": 3600}, "validation_error"),
    ],
)
def test_bad_share_requests_are_typed_422(
    client: TestClient,
    make_key: Headers,
    small_video: bytes,
    api_settings: Settings,
    body: dict[str, Any],
    code: str,
) -> None:
    headers = make_key()
    job_id = _job(client, headers, small_video, api_settings)

    response = client.post(f"/v1/jobs/{job_id}/shares", headers=headers, json=body)

    assert _error(response) == (422, code)
    assert client.get(f"/v1/jobs/{job_id}/shares", headers=headers).json()["items"] == []


def test_only_a_succeeded_job_can_be_shared(
    client: TestClient, make_key: Headers, small_video: bytes
) -> None:
    headers = make_key()
    response = client.post(
        "/v1/jobs", headers=headers, files={"file": ("clip.mp4", small_video, "video/mp4")}
    )
    queued = response.json()["id"]

    assert _error(client.post(f"/v1/jobs/{queued}/shares", headers=headers)) == (409, "job_not_finished")
    assert _error(client.post(f"/v1/jobs/{uuid.uuid4()}/shares", headers=headers)) == (404, "job_not_found")
    assert _error(client.post(f"/v1/jobs/{queued}/shares")) == (401, "missing_api_key")


def test_revoking_a_link_whose_job_is_deleted_meanwhile_is_a_404_not_a_500(
    client: TestClient, make_key: Headers, small_video: bytes, api_settings: Settings
) -> None:
    """The job's deletion (whose cascade removes its links) can land between reading a link and
    writing its revocation: that used to end in a StaleDataError and a 500."""
    from sqlalchemy import event, text

    from api.services.shares import revoke_share
    from core.db import get_engine

    headers = make_key()
    job_id = _job(client, headers, small_video, api_settings)
    share = _share(client, headers, job_id)
    engine = get_engine(api_settings)
    deleted: list[bool] = []

    def delete_after_read(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if not deleted and statement.lstrip().upper().startswith("SELECT") and "job_shares" in statement:
            deleted.append(True)
            with engine.connect() as other:
                other.execute(text("DELETE FROM job_shares WHERE id = :id"), {"id": share["id"]})
                other.commit()

    with get_session_factory(api_settings)() as session:
        tenant_id = session.scalar(select(JobShare.tenant_id).where(JobShare.id == uuid.UUID(share["id"])))
        assert tenant_id is not None
        event.listen(engine, "after_cursor_execute", delete_after_read)
        try:
            revoke_share(session, tenant_id=tenant_id, share_id=share["id"])
        except Exception as exc:  # only the typed 404 is acceptable
            assert getattr(exc, "code", None) == "share_not_found", repr(exc)
        finally:
            event.remove(engine, "after_cursor_execute", delete_after_read)
    # Revoked before the deletion, or gone with it: either way a typed answer.
    assert client.delete(f"/v1/shares/{share['id']}", headers=headers).status_code in (204, 404)
