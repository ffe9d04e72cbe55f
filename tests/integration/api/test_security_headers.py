"""Every answer carries the security headers: nosniff, no framing, and a Content-Security-Policy
that fits what it is (the page, the report, the docs, or data that may load nothing)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from api.app import create_app
from core.config import Settings

Headers = Callable[..., dict[str, str]]

PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def _assert_guarded(response: Response) -> str:
    assert response.headers["x-content-type-options"] == "nosniff", response.request.url
    assert response.headers["x-frame-options"] == "DENY", response.request.url
    assert response.headers["referrer-policy"] == "no-referrer", response.request.url
    policy = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy, response.request.url
    return policy


def test_the_page_runs_only_its_own_scripts_and_styles(client: TestClient) -> None:
    policy = _assert_guarded(client.get("/"))

    assert policy == PAGE_POLICY  # no 'unsafe-inline' anywhere: the page has no inline code
    for asset in ("/web/app.js", "/web/style.css", "/favicon.ico"):
        assert _assert_guarded(client.get(asset)).startswith("default-src 'none'")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/healthz"),
        ("GET", "/v1/jobs"),  # 401 without a key
        ("GET", "/no/such/route"),  # 404
        ("POST", "/v1/webhooks"),  # 401 from the body guard, before any route
        ("GET", "/openapi.json"),
    ],
)
def test_every_other_answer_may_load_nothing(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path, content=b"{}" if method == "POST" else None)

    assert _assert_guarded(response).startswith("default-src 'none';")


def test_authenticated_answers_and_refusals_carry_them(client: TestClient, make_key: Headers) -> None:
    headers = make_key()
    listed = client.get("/v1/jobs", headers=headers)
    refused = client.get("/v1/jobs", headers=headers, params={"limit": "0"})
    report = client.get("/v1/jobs/7c4b2a4e-1f1e-4a57-9d2b-0d1d2b3c4d5e/report", headers=headers)

    assert listed.status_code == 200 and refused.status_code == 422 and report.status_code == 404
    for response in (listed, refused):
        assert _assert_guarded(response).startswith("default-src 'none';")
    # The report is one file: inline styles and data: pictures, no script.
    assert _assert_guarded(report).startswith("default-src 'none'; style-src 'unsafe-inline'; img-src data:")


def test_the_docs_keep_working(client: TestClient) -> None:
    for page in ("/docs", "/redoc"):
        response = client.get(page)
        assert response.status_code == 200
        assert "script-src 'self' 'unsafe-inline'" in _assert_guarded(response)


def test_an_unexpected_error_carries_them_too(api_settings: Settings) -> None:
    app = create_app(api_settings)

    def crash() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/crash", crash)
    with TestClient(app, raise_server_exceptions=False) as crashing:
        response = crashing.get("/crash")

    assert response.status_code == 500 and response.json()["error"]["code"] == "internal_error"
    _assert_guarded(response)
