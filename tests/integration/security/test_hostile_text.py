"""Text no database column can hold: NUL characters in query parameters, JSON fields and form
fields, on the routes that store or look up text. Each is a typed 4xx, never a 500, and nothing
is stored. (A file name is different: control characters are dropped from it, see
test_hostile_media.)"""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import func, select

from core.models import Batch, Job, Upload, WebhookEndpoint
from tests.integration.security.conftest import TenantResources
from tests.utils.media import FaceVideo
from tests.utils.stack import SOURCE_BUCKET, PrivateStack

pytestmark = pytest.mark.integration

NUL = "\u0000"
HOOK = "https://example.com/hook"
JSON = {"Content-Type": "application/json"}


def _cases(source: str, owner: TenantResources) -> list[tuple[str, str, Any]]:
    return [
        ("GET", "/v1/jobs?external_id=a%00b", None),
        ("GET", "/v1/jobs?cursor=%00", None),
        ("GET", "/v1/batches?cursor=%00", None),
        ("GET", f"/v1/jobs/{owner.job_id}/frames?cursor=%00", None),
        ("GET", "/v1/monitoring/drift?window=1%00h", None),
        ("GET", "/v1/jobs/%00", None),
        ("POST", "/v1/jobs", {"source": source, "external_id": f"a{NUL}b"}),
        ("POST", "/v1/jobs", {"source": f"{source}{NUL}"}),
        ("POST", "/v1/batches", {"items": [{"source": source, "external_id": f"x{NUL}"}]}),
        ("POST", "/v1/batches", {"items": [{"source": source}], "name": f"n{NUL}"}),
        ("POST", "/v1/webhooks", {"url": HOOK, "event_types": ["job.succeeded"], "description": f"d{NUL}"}),
    ]


def _rows(stack: PrivateStack, tenant_id: Any) -> int:
    """The tenant's stored jobs, batches, endpoints and upload reservations."""
    total = 0
    with stack.session() as session:
        for model in (Job, Batch, WebhookEndpoint, Upload):
            query = select(func.count()).select_from(model).where(model.tenant_id == tenant_id)
            total += int(session.scalar(query) or 0)
    return total


def test_nul_characters_are_refused_with_a_typed_422(
    security_stack: PrivateStack, owner: TenantResources, face_clip: FaceVideo
) -> None:
    stack = security_stack
    headers = stack.new_key()
    tenant_id = stack.tenant_id(headers)
    stack.s3().put_object(Bucket=SOURCE_BUCKET, Key="text/clip.mp4", Body=face_clip.path.read_bytes())
    source = f"s3://{SOURCE_BUCKET}/text/clip.mp4"

    answers = []
    with stack.client(headers) as client:
        for method, url, body in _cases(source, owner):
            content = None if body is None else json.dumps(body).encode()
            response = client.request(method, url, content=content, headers=JSON)
            answers.append((method, url, body, response))
        form = client.post(
            "/v1/jobs",
            files={"file": ("clip.mp4", face_clip.path.read_bytes(), "video/mp4")},
            data={"external_id": f"form{NUL}field"},
        )
        answers.append(("POST", "/v1/jobs (multipart)", None, form))

    wrong = [
        f"{method} {url} {body}: {response.status_code} {response.text[:150]}"
        for method, url, body, response in answers
        if not (400 <= response.status_code < 500 and response.json().get("error", {}).get("code"))
    ]
    assert not wrong, "\n".join(wrong)
    # Where the text reached storage of any kind, the refusal says why.
    assert any(response.json()["error"]["code"] == "invalid_characters" for *_, response in answers)
    assert _rows(stack, tenant_id) == 0
    assert stack.stored_keys(f"videos/{tenant_id}/") == set()
