"""Every error answers {"error": {"code", "message"}}; health and readiness report what they check."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.services.images import json_body_limit
from core.config import Settings

Headers = Callable[..., dict[str, str]]


def test_unknown_route_is_404_in_error_shape(client: TestClient) -> None:
    response = client.get("/v1/nothing-here")

    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "no route /v1/nothing-here"}}


def test_wrong_method_is_405_in_error_shape(client: TestClient, make_key: Headers) -> None:
    response = client.patch("/v1/jobs", headers=make_key())

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_malformed_json_is_422_in_error_shape(client: TestClient, make_key: Headers) -> None:
    response = client.post(
        "/v1/jobs", headers={**make_key(), "Content-Type": "application/json"}, content=b"{not json"
    )

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/webhooks"])
def test_json_body_past_limit_is_413(
    client: TestClient, make_key: Headers, api_settings: Settings, path: str
) -> None:
    # A job's JSON body has room for an inline image; every other JSON body has the small cap.
    limit = json_body_limit(api_settings) if path == "/v1/jobs" else api_settings.json_body_max_bytes
    body = b'{"source": "s3://client-videos/' + b"a" * limit + b'"}'

    response = client.post(path, headers={**make_key(), "Content-Type": "application/json"}, content=body)

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"


def test_healthz_answers_without_key(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readyz_checks_database_broker_storage_and_reports_no_workers(client: TestClient) -> None:
    response = client.get("/readyz")

    body = response.json()
    assert response.status_code == 200
    assert {name: body["checks"][name]["ok"] for name in ("database", "broker", "storage")} == {
        "database": True,
        "broker": True,
        "storage": True,
    }
    assert body["checks"]["workers"]["ok"] is False  # no worker runs in these tests
    assert body["status"] == "degraded"


def test_readyz_is_503_when_database_is_unreachable(api_settings: Settings) -> None:
    broken = api_settings.model_copy(
        update={"database_url": "postgresql+psycopg2://postgres@127.0.0.1:1/none"}
    )
    with TestClient(create_app(broken)) as client:
        response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"]["database"]["ok"] is False
    assert response.json()["error"]["code"] == "not_ready"
    assert response.headers["retry-after"] == "5"


def test_database_outage_on_v1_is_503_with_retry_after(api_settings: Settings) -> None:
    broken = api_settings.model_copy(
        update={"database_url": "postgresql+psycopg2://postgres@127.0.0.1:1/none"}
    )
    with TestClient(create_app(broken)) as client:
        response = client.get("/v1/jobs", headers={"Authorization": "Bearer dfs_abcd1234_x"})

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "database_unavailable"
    assert response.headers["retry-after"] == "5"


def test_openapi_documents_both_job_bodies(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()

    body = schema["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]
    assert set(body) == {"multipart/form-data", "application/json"}
    assert "JobCreate" in schema["components"]["schemas"]
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_api_docs_load_every_asset_from_the_api_itself(client: TestClient) -> None:
    """/docs and /redoc work on a machine with no network: no script, style or icon from a CDN."""
    for page in ("/docs", "/redoc"):
        response = client.get(page)
        assert response.status_code == 200, page
        assets = re.findall(r'(?:src|href)="([^"]+)"', response.text)
        assert assets, page
        for asset in assets:
            assert asset.startswith("/docs-assets/"), f"{page} loads {asset}"
            fetched = client.get(asset)
            assert fetched.status_code == 200 and len(fetched.content) > 1000, asset
        assert "cdn.jsdelivr.net" not in response.text and "fonts.googleapis" not in response.text
    assert "/openapi.json" in client.get("/docs").text
