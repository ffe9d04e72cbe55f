"""Human review in-process: a reviewer's label beside the model's verdict, the job.reviewed
webhook, the labels' export, the agreement summary and metrics, each within one tenant."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from core.config import Settings
from core.db import get_session_factory
from core.models import Job, JobReview

pytestmark = pytest.mark.integration

Headers = Callable[..., dict[str, str]]
MODEL = {"model_name": "review-test", "model_version": "3.1.4", "model_sha256": "ab" * 32, "threshold": 0.5}


def _submit(client: TestClient, headers: dict[str, str], video: bytes, **fields: str) -> str:
    response = client.post(
        "/v1/jobs", headers=headers, files={"file": ("clip.mp4", video, "video/mp4")}, data=fields
    )
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def _succeed(settings: Settings, job_id: str, *, verdict: str, score: float) -> None:
    """As a worker would have left the job."""
    with get_session_factory(settings)() as session:
        session.execute(
            update(Job)
            .where(Job.id == uuid.UUID(job_id))
            .values(status="succeeded", verdict=verdict, score=score, finished_at=datetime.now(UTC), **MODEL)
        )
        session.commit()


def _scored_job(
    client: TestClient, headers: dict[str, str], video: bytes, settings: Settings, *, verdict: str = "fake"
) -> str:
    job_id = _submit(client, headers, video)
    _succeed(settings, job_id, verdict=verdict, score=0.9 if verdict == "fake" else 0.1)
    return job_id


def _review(client: TestClient, headers: dict[str, str], job_id: str, **body: Any) -> Any:
    return client.put(f"/v1/jobs/{job_id}/review", headers=headers, json=body)


def _prefix(headers: dict[str, str]) -> str:
    key = headers["Authorization"].removeprefix("Bearer ")
    return "_".join(key.split("_")[:2])  # dfs_<8 hex>: the secret part may hold "_" too


def test_a_review_is_kept_beside_the_models_verdict_with_who_and_when(
    client: TestClient, make_key: Headers, small_video: bytes, api_settings: Settings
) -> None:
    headers = make_key()
    job_id = _scored_job(client, headers, small_video, api_settings, verdict="fake")
    before = client.get(f"/v1/jobs/{job_id}", headers=headers).json()

    first = _review(
        client, headers, job_id, label="real", note="  the mouth matches the audio  ", reviewer="ana"
    )
    shown = client.get(f"/v1/jobs/{job_id}", headers=headers).json()
    again = _review(client, headers, job_id, label="fake", reviewer="bo")
    listed = client.get("/v1/jobs", headers=headers).json()["items"]

    assert before["review"] is None
    assert first.status_code == 200, first.text
    review = first.json()["review"]
    assert review["label"] == "real" and review["note"] == "the mouth matches the audio"
    assert review["reviewer"] == "ana" and review["api_key_prefix"] == _prefix(headers)
    assert review["model_verdict"] == "fake" and review["outcome"] == "overturned"
    # The model's verdict is kept as it was, beside the reviewer's label.
    assert (shown["verdict"], shown["score"], shown["review"]) == ("fake", 0.9, review)
    reviewed_at = datetime.fromisoformat(review["reviewed_at"])
    assert abs(datetime.now(UTC) - reviewed_at) < timedelta(minutes=1)
    # Reviewing again replaces the label, the note and who; the first review's time is kept.
    assert again.status_code == 200, again.text
    second = again.json()["review"]
    assert (second["label"], second["note"], second["reviewer"], second["outcome"]) == (
        "fake",
        None,
        "bo",
        "agreed",
    )
    assert second["first_reviewed_at"] == review["first_reviewed_at"]
    assert datetime.fromisoformat(second["reviewed_at"]) >= reviewed_at
    assert [item["review"] for item in listed if item["id"] == job_id] == [second]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"label": "maybe"},
        {"label": "FAKE"},
        {"label": None},
        {"label": "fake", "note": "x" * 2001},
        {"label": "fake", "reviewer": ""},
        {"label": "fake", "reviewer": "r" * 101},
        {"label": "fake", "score": 0.1},
        {"label": ["fake"]},
    ],
)
def test_bad_review_bodies_are_typed_422(
    client: TestClient, make_key: Headers, small_video: bytes, api_settings: Settings, body: dict[str, Any]
) -> None:
    headers = make_key()
    job_id = _scored_job(client, headers, small_video, api_settings)

    response = _review(client, headers, job_id, **body)
    shown = client.get(f"/v1/jobs/{job_id}", headers=headers).json()

    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"
    assert shown["review"] is None


def test_a_review_body_that_is_not_json_is_refused(
    client: TestClient, make_key: Headers, small_video: bytes, api_settings: Settings
) -> None:
    headers = make_key()
    job_id = _scored_job(client, headers, small_video, api_settings)

    response = client.put(
        f"/v1/jobs/{job_id}/review",
        headers={**headers, "Content-Type": "application/json"},
        content=b"{label",
    )

    assert response.status_code == 422 and response.json()["error"]["code"] == "validation_error"


def test_only_a_succeeded_job_can_be_reviewed(
    client: TestClient, make_key: Headers, small_video: bytes, api_settings: Settings
) -> None:
    headers = make_key()
    queued = _submit(client, headers, small_video)
    failed = _submit(client, headers, small_video)
    with get_session_factory(api_settings)() as session:
        session.execute(
            update(Job).where(Job.id == uuid.UUID(failed)).values(status="failed", error_code="corrupt_video")
        )
        session.commit()

    for job_id, status in ((queued, "queued"), (failed, "failed")):
        response = _review(client, headers, job_id, label="fake")
        assert response.status_code == 409, response.text
        error = response.json()["error"]
        assert error["code"] == "job_not_reviewable" and status in error["message"]
    missing = _review(client, headers, str(uuid.uuid4()), label="fake")
    not_an_id = _review(client, headers, "not-a-job", label="fake")
    assert missing.status_code == not_an_id.status_code == 404
    assert missing.json()["error"]["code"] == "job_not_found"


def test_another_tenant_can_neither_review_nor_see_reviews(
    client: TestClient, make_key: Headers, small_video: bytes, api_settings: Settings
) -> None:
    owner, intruder = make_key(), make_key()
    job_id = _scored_job(client, owner, small_video, api_settings)
    assert _review(client, owner, job_id, label="fake", note="owner-note").status_code == 200

    theirs = _review(client, intruder, job_id, label="real", note="intruder-note")
    nobodys = _review(client, intruder, str(uuid.uuid4()), label="real")
    exported = client.get("/v1/reviews/export", headers=intruder, params={"format": "jsonl"})
    summary = client.get("/v1/reviews/summary", headers=intruder).json()
    everyone = client.get("/v1/reviews/summary", headers=intruder, params={"scope": "all"})
    mine = client.get(f"/v1/jobs/{job_id}", headers=owner).json()

    assert theirs.status_code == 404 and theirs.json() == nobodys.json()
    assert exported.status_code == 200 and exported.text == ""
    assert summary["totals"]["reviewed"] == 0 and summary["matrix"] == []
    assert everyone.status_code == 403 and everyone.json()["error"]["code"] == "admin_required"
    assert (mine["review"]["label"], mine["review"]["note"]) == ("fake", "owner-note")


def test_a_review_queues_job_reviewed_for_endpoints_subscribed_to_it(
    client: TestClient, make_key: Headers, small_video: bytes, api_settings: Settings
) -> None:
    headers = make_key()
    # Literal public addresses: accepted without DNS; nothing is sent (no worker runs here).
    subscribed = client.post(
        "/v1/webhooks",
        headers=headers,
        json={"url": "https://93.184.216.34/reviews", "event_types": ["job.reviewed"]},
    ).json()
    client.post(
        "/v1/webhooks",
        headers=headers,
        json={"url": "https://93.184.216.34/ends", "event_types": ["job.succeeded"]},
    )
    default = client.post("/v1/webhooks", headers=headers, json={"url": "https://93.184.216.34/all"}).json()
    job_id = _submit(
        client, headers, small_video, callback_url="https://93.184.216.34/cb", external_id="rev-1"
    )
    _succeed(api_settings, job_id, verdict="fake", score=0.9)

    reviewed = _review(
        client, headers, job_id, label="real", note="not in the payload", reviewer="ana"
    ).json()
    deliveries = client.get(f"/v1/jobs/{job_id}/deliveries", headers=headers).json()["items"]

    assert "job.reviewed" in default["event_types"]
    # The callback URL is told when the job ends, not of reviews; only subscribed endpoints are.
    assert sorted(item["endpoint_id"] for item in deliveries) == sorted([subscribed["id"], default["id"]])
    for item in deliveries:
        assert item["event_type"] == "job.reviewed" and item["destination"] == "endpoint"
        assert item["payload"]["type"] == "job.reviewed"
        assert item["payload"]["data"] == {
            "job_id": job_id,
            "verdict": "fake",
            "verdict_label": "Signs of manipulation",
            "score": 0.9,
            "external_id": "rev-1",
            "batch_id": None,
            "review": {
                "label": "real",
                "reviewer": "ana",
                "api_key_prefix": _prefix(headers),
                "reviewed_at": reviewed["review"]["reviewed_at"].replace("+00:00", "Z"),
            },
        }


def test_reviewed_labels_export_as_csv_and_jsonl_for_training(
    client: TestClient, make_key: Headers, small_video: bytes, api_settings: Settings
) -> None:
    headers = make_key()
    first = _scored_job(client, headers, small_video, api_settings, verdict="fake")
    second = _scored_job(client, headers, small_video, api_settings, verdict="real")
    _scored_job(client, headers, small_video, api_settings)  # never reviewed: not exported
    _review(client, headers, first, label="real", note='=HYPERLINK("http://x")', reviewer="ana")
    _review(client, headers, second, label="unsure")

    as_csv = client.get("/v1/reviews/export", headers=headers, params={"format": "csv"})
    as_jsonl = client.get("/v1/reviews/export", headers=headers, params={"format": "jsonl"})
    bad = client.get("/v1/reviews/export", headers=headers, params={"format": "xlsx"})

    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    assert as_csv.headers["content-disposition"] == 'attachment; filename="reviews.csv"'
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    lines = [json.loads(line) for line in as_jsonl.text.splitlines()]
    assert as_jsonl.headers["content-type"].startswith("application/x-ndjson")
    assert [row["job_id"] for row in rows] == [line["job_id"] for line in lines] == [first, second]
    sha256 = hashlib.sha256(small_video).hexdigest()
    assert lines[0] | {"reviewed_at": None} == {
        "job_id": first,
        "external_id": None,
        "input_sha256": sha256,
        "filename": "clip.mp4",
        "source": None,
        "media_type": "video",
        "model_name": "review-test",
        "model_version": "3.1.4",
        "model_sha256": "ab" * 32,
        "score": 0.9,
        "threshold": 0.5,
        "model_verdict": "fake",
        "reviewer_label": "real",
        "outcome": "overturned",
        "note": '=HYPERLINK("http://x")',
        "reviewer": "ana",
        "api_key_prefix": _prefix(headers),
        "reviewed_at": None,
    }
    assert (lines[1]["reviewer_label"], lines[1]["outcome"], lines[1]["model_verdict"]) == (
        "unsure",
        "undecided",
        "real",
    )
    assert rows[0]["input_sha256"] == sha256 and rows[0]["score"] == "0.9"
    # A spreadsheet opening the export does not run the note as a formula.
    assert rows[0]["note"] == '\'=HYPERLINK("http://x")'
    assert bad.status_code == 422
    # A deleted job takes its review with it.
    assert client.delete(f"/v1/jobs/{first}", headers=headers).status_code == 204
    after = client.get("/v1/reviews/export", headers=headers, params={"format": "jsonl"})
    assert [json.loads(line)["job_id"] for line in after.text.splitlines()] == [second]


def _set_reviewed_at(settings: Settings, job_id: str, moment: datetime) -> None:
    with get_session_factory(settings)() as session:
        session.execute(
            update(JobReview).where(JobReview.job_id == uuid.UUID(job_id)).values(reviewed_at=moment)
        )
        session.commit()


def test_summary_gives_precision_of_fake_calls_and_share_overturned_by_day(
    client: TestClient, make_key: Headers, small_video: bytes, api_settings: Settings
) -> None:
    headers = make_key()
    cases = [("fake", "fake"), ("fake", "real"), ("real", "real"), ("real", "fake"), ("fake", "unsure"),
             ("inconclusive", "fake"), ("fake", "fake")]  # fmt: skip
    jobs = []
    for verdict, label in cases:
        job_id = _scored_job(client, headers, small_video, api_settings, verdict=verdict)
        assert _review(client, headers, job_id, label=label).status_code == 200
        jobs.append(job_id)
    today = datetime.now(UTC)
    yesterday = today - timedelta(days=1)
    _set_reviewed_at(api_settings, jobs[0], yesterday)
    _set_reviewed_at(api_settings, jobs[1], yesterday)
    _set_reviewed_at(api_settings, jobs[6], today - timedelta(days=40))  # outside the default 30 days

    summary = client.get("/v1/reviews/summary", headers=headers)
    last_day = client.get("/v1/reviews/summary", headers=headers, params={"days": 1}).json()
    long_ago = client.get("/v1/reviews/summary", headers=headers, params={"days": 41}).json()

    assert summary.status_code == 200, summary.text
    body = summary.json()
    assert body["scope"] == "tenant" and body["days"] == 30
    assert body["totals"] == {
        "reviewed": 6,
        "unsure": 1,
        "fake_calls": 2,
        "fake_calls_confirmed": 1,
        "precision_fake": 0.5,
        "decided": 4,
        "overturned": 2,
        "share_overturned": 0.5,
    }
    assert [day["day"] for day in body["by_day"]] == [yesterday.date().isoformat(), today.date().isoformat()]
    assert body["by_day"][0] | {"day": None} == {
        "day": None, "reviewed": 2, "unsure": 0, "fake_calls": 2, "fake_calls_confirmed": 1,
        "precision_fake": 0.5, "decided": 2, "overturned": 1, "share_overturned": 0.5,
    }  # fmt: skip
    # Today: real→real, real→fake, fake→unsure, inconclusive→fake: no FAKE call to judge.
    assert body["by_day"][1]["precision_fake"] is None and body["by_day"][1]["share_overturned"] == 0.5
    assert {(c["model_verdict"], c["reviewer_label"]): c["reviews"] for c in body["matrix"]} == {
        ("fake", "fake"): 1, ("fake", "real"): 1, ("real", "real"): 1, ("real", "fake"): 1,
        ("fake", "unsure"): 1, ("inconclusive", "fake"): 1,
    }  # fmt: skip
    assert last_day["totals"]["reviewed"] == 4
    assert long_ago["totals"]["reviewed"] == 7 and long_ago["totals"]["precision_fake"] == 2 / 3
    for params in ({"days": 0}, {"days": 367}, {"days": "week"}, {"scope": "everyone"}):
        refused = client.get("/v1/reviews/summary", headers=headers, params=params)
        assert refused.status_code == 422, params


def _metric(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{key}="{value}"' for key, value in labels.items())
    match = re.search(rf"^{name}\{{{re.escape(wanted)}\}} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_metrics_count_reviews_by_model_verdict_and_reviewer_label(
    client: TestClient, make_key: Headers, small_video: bytes, api_settings: Settings
) -> None:
    headers = make_key()
    fake_job = _scored_job(client, headers, small_video, api_settings, verdict="fake")
    before = client.get("/metrics").text

    _review(client, headers, fake_job, label="real")
    after = client.get("/metrics").text

    labels = {"model_verdict": "fake", "reviewer_label": "real"}
    assert _metric(after, "deepfakestream_reviews_total", **labels) == (
        _metric(before, "deepfakestream_reviews_total", **labels) + 1
    )
    assert _metric(after, "deepfakestream_reviewed_jobs", **labels) == (
        _metric(before, "deepfakestream_reviewed_jobs", **labels) + 1
    )
    assert _metric(after, "deepfakestream_scrape_source_up", source="reviews") == 1.0
