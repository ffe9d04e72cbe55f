"""?wait= and the event stream in-process, against real PostgreSQL and Redis.

No worker runs here: a job ends (or progresses) the way a worker ends it, through
``lifecycle.jobs`` and ``lifecycle.events`` in a committed transaction, so the end is published on
the real Redis channel and the API must hear it there.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import event, update

from api.app import create_app
from core.config import Settings
from core.db import get_engine, get_read_engine, get_session_factory
from core.keys import revoke_api_key
from core.models import Job
from core.states import JobStatus
from lifecycle.events import JobEvent, JobEventKind, publish_job_event
from lifecycle.jobs import fail_job
from tests.utils.platform import free_port
from tests.utils.waiting import wait_for, wait_for_async

Headers = Callable[..., dict[str, str]]


def _submit(client: TestClient, headers: dict[str, str], video: bytes, **params: Any) -> Any:
    response = client.post(
        "/v1/jobs", headers=headers, params=params, files={"file": ("clip.mp4", video, "video/mp4")}
    )
    assert response.status_code == 202, response.text
    return response


def _fail(settings: Settings, job_id: str, *, code: str = "test_failure") -> None:
    with get_session_factory(settings)() as session, session.begin():
        assert fail_job(session, job_id=uuid.UUID(job_id), code=code, message="ended by the test")


def _progress(settings: Settings, job_id: str, *, done: int, total: int) -> None:
    """What a worker commits when it stores a segment: the counters, then the event."""
    with get_session_factory(settings)() as session, session.begin():
        session.execute(
            update(Job)
            .where(Job.id == uuid.UUID(job_id))
            .values(status=JobStatus.PROCESSING.value, segments_done=done, segments_total=total)
        )
        publish_job_event(
            session,
            JobEvent(
                job_id=uuid.UUID(job_id),
                kind=JobEventKind.PROGRESS,
                status=JobStatus.PROCESSING.value,
                segments_done=done,
                segments_total=total,
                segment_index=done - 1,
            ),
        )


@contextlib.contextmanager
def _job_reads(settings: Settings, *job_ids: str) -> Iterator[list[str]]:
    """The statements that have read these jobs' rows on the read pool while inside, each added
    once it has run (what a waiter reads arrives through that pool)."""
    wanted = {uuid.UUID(job_id) for job_id in job_ids}
    reads: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
        values = parameters.values() if isinstance(parameters, dict) else parameters or ()
        if "FROM jobs" in statement and any(isinstance(v, uuid.UUID) and v in wanted for v in values):
            reads.append(statement)

    engine = get_read_engine(settings)
    event.listen(engine, "after_cursor_execute", count)
    try:
        yield reads
    finally:
        event.remove(engine, "after_cursor_execute", count)


def _checked_out(pools: list[Any]) -> int:
    return sum(pool.checkedout() for pool in pools)


def _later(delay_s: float, action: Callable[[], None]) -> threading.Thread:
    def run() -> None:
        time.sleep(delay_s)
        action()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_get_wait_answers_as_soon_as_the_job_ends(
    client: TestClient, make_key: Headers, small_video: bytes, api_settings: Settings
) -> None:
    headers = make_key()
    job_id = _submit(client, headers, small_video).json()["id"]
    ender = _later(1.0, lambda: _fail(api_settings, job_id))

    started = time.monotonic()
    response = client.get(f"/v1/jobs/{job_id}", headers=headers, params={"wait": "20"})
    elapsed = time.monotonic() - started
    ender.join()

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "failed"
    assert body["error"]["code"] == "test_failure"
    assert 0.9 < elapsed < 8.0, f"answered after {elapsed:.2f} s"
    # The same shape as without wait.
    assert body == client.get(f"/v1/jobs/{job_id}", headers=headers).json()


def test_get_wait_answers_at_the_timeout_with_the_current_state(
    client: TestClient, make_key: Headers, small_video: bytes, api_settings: Settings
) -> None:
    headers = make_key()
    job_id = _submit(client, headers, small_video).json()["id"]
    # Progress is not an end: the waiter keeps waiting, and answers with the row as it stands.
    progress = _later(0.3, lambda: _progress(api_settings, job_id, done=1, total=3))

    started = time.monotonic()
    response = client.get(f"/v1/jobs/{job_id}", headers=headers, params={"wait": "1.5"})
    elapsed = time.monotonic() - started
    progress.join()

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "processing"
    assert response.json()["progress"] == {"segments_done": 1, "segments_total": 3}
    assert 1.4 < elapsed < 6.0, f"answered after {elapsed:.2f} s"


def test_get_wait_on_an_ended_job_answers_at_once(
    client: TestClient, make_key: Headers, small_video: bytes, api_settings: Settings
) -> None:
    headers = make_key()
    job_id = _submit(client, headers, small_video).json()["id"]
    _fail(api_settings, job_id)

    started = time.monotonic()
    response = client.get(f"/v1/jobs/{job_id}", headers=headers, params={"wait": "25"})

    assert response.status_code == 200
    assert response.json()["status"] == "failed"
    assert time.monotonic() - started < 3.0


def test_cancel_through_the_api_wakes_a_waiter(
    client: TestClient, make_key: Headers, small_video: bytes
) -> None:
    headers = make_key()
    job_id = _submit(client, headers, small_video).json()["id"]
    canceler = _later(
        0.8, lambda: client.post(f"/v1/jobs/{job_id}/cancel", headers=headers).raise_for_status()
    )

    started = time.monotonic()
    response = client.get(f"/v1/jobs/{job_id}", headers=headers, params={"wait": "20"})
    canceler.join()

    assert response.json()["status"] == "canceled"
    assert time.monotonic() - started < 8.0


@pytest.mark.parametrize("wait", ["-1", "31", "121", "soon", "nan"])
def test_wait_out_of_range_is_a_typed_422(
    client: TestClient, make_key: Headers, small_video: bytes, wait: str
) -> None:
    headers = make_key()
    job_id = _submit(client, headers, small_video).json()["id"]

    for response in (
        client.get(f"/v1/jobs/{job_id}", headers=headers, params={"wait": wait}),
        client.post(
            "/v1/jobs",
            headers=headers,
            params={"wait": wait},
            files={"file": ("clip.mp4", small_video, "video/mp4")},
        ),
    ):
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "validation_error"
        assert "wait" in response.json()["error"]["message"]


def test_wait_on_another_tenants_job_is_404(
    client: TestClient, make_key: Headers, small_video: bytes
) -> None:
    owner, other = make_key(), make_key()
    job_id = _submit(client, owner, small_video).json()["id"]

    started = time.monotonic()
    response = client.get(f"/v1/jobs/{job_id}", headers=other, params={"wait": "10"})

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "job_not_found"
    assert time.monotonic() - started < 3.0, "a 404 must not wait"
    for path in (f"/v1/jobs/{job_id}/events", f"/v1/jobs/{job_id}/events/token"):
        method = "POST" if path.endswith("token") else "GET"
        assert client.request(method, path, headers=other).status_code == 404


def test_post_wait_answers_with_the_new_job_at_the_timeout(
    client: TestClient, make_key: Headers, small_video: bytes
) -> None:
    headers = make_key()
    started = time.monotonic()
    response = _submit(client, headers, small_video, wait="1")

    assert response.status_code == 202
    assert response.headers["location"] == f"/v1/jobs/{response.json()['id']}"
    assert response.json()["status"] == "queued"
    assert 0.9 < time.monotonic() - started < 6.0


def test_waiters_hold_no_database_connection(
    api_settings: Settings, make_key: Headers, small_video: bytes
) -> None:
    """50 requests wait at once; the pool has nothing checked out until their jobs end."""
    app = create_app(api_settings)
    headers = make_key()
    with TestClient(app) as setup:
        job_ids = [_submit(setup, headers, small_video).json()["id"] for _ in range(5)]
    pools = [get_engine(api_settings).pool, get_read_engine(api_settings).pool]

    async def scenario() -> tuple[list[httpx.Response], int, int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api", headers=headers) as http:
            with _job_reads(api_settings, *job_ids) as reads:
                waits = [
                    asyncio.create_task(http.get(f"/v1/jobs/{job_ids[i % 5]}", params={"wait": "20"}))
                    for i in range(50)
                ]
                hub = app.state.job_events
                await wait_for_async(lambda: hub.waiting == 50, timeout_s=20, what="50 waiting requests")
                await wait_for_async(lambda: len(reads) >= 50, timeout_s=20, what="every waiter's first read")
            # A read hands its connection back as it ends; a waiter that kept one would keep it
            # for its whole wait, past this.
            with contextlib.suppress(AssertionError):
                await wait_for_async(lambda: _checked_out(pools) == 0, timeout_s=5, what="an idle pool")
            waiting = hub.waiting
            checked_out = _checked_out(pools)
            for job_id in job_ids:
                await asyncio.to_thread(_fail, api_settings, job_id)
            responses = await asyncio.wait_for(asyncio.gather(*waits), timeout=20)
        await app.state.job_events.close()
        return responses, waiting, checked_out

    # A thread of its own: in a whole test run the browser tests' session keeps an event loop
    # running in this thread, and asyncio.run refuses to nest.
    with ThreadPoolExecutor(1) as runner:
        responses, waiting, checked_out = runner.submit(asyncio.run, scenario()).result()

    assert waiting == 50
    assert checked_out == 0, f"{checked_out} connections held by waiting requests"
    assert [r.status_code for r in responses] == [200] * 50
    assert {r.json()["status"] for r in responses} == {"failed"}


def test_waiters_of_one_job_share_one_read_of_its_end(
    api_settings: Settings, make_key: Headers, small_video: bytes
) -> None:
    """60 requests of one tenant wait on one job (GET ?wait=20); when it ends, the API reads
    the job's row once for all of them. Before, each waiter read it: 60 reads, and with hundreds
    of waiters the last answer came seconds after the end."""
    waiters = 60
    app = create_app(api_settings)
    tenant = f"tenant-{uuid.uuid4().hex[:8]}"
    keys = [make_key(tenant) for _ in range(3)]  # one tenant, several keys
    with TestClient(app) as setup:
        job_id = _submit(setup, keys[0], small_video).json()["id"]

    async def scenario() -> tuple[list[httpx.Response], int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            with _job_reads(api_settings, job_id) as reads:
                waits = [
                    asyncio.create_task(
                        http.get(f"/v1/jobs/{job_id}", params={"wait": "20"}, headers=keys[i % len(keys)])
                    )
                    for i in range(waiters)
                ]
                hub = app.state.job_events
                await wait_for_async(
                    lambda: hub.waiting == waiters, timeout_s=20, what=f"{waiters} waiting requests"
                )
                await wait_for_async(
                    lambda: len(reads) >= waiters, timeout_s=20, what="every waiter's first read"
                )
                assert hub.waiting == waiters
                before_end = len(reads)
                await asyncio.to_thread(_fail, api_settings, job_id)
                responses = await asyncio.wait_for(asyncio.gather(*waits), timeout=20)
                after_end = len(reads) - before_end
        await app.state.job_events.close()
        return responses, after_end

    with ThreadPoolExecutor(1) as runner:
        responses, reads_after_end = runner.submit(asyncio.run, scenario()).result()

    assert [r.status_code for r in responses] == [200] * waiters
    assert {(r.json()["id"], r.json()["status"]) for r in responses} == {(job_id, "failed")}
    assert reads_after_end == 1, f"{reads_after_end} reads of the job after its end"


def _events(text: str) -> list[dict[str, str]]:
    """The SSE frames of ``text`` (comments dropped) as dicts of their fields."""
    frames = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
        if fields:
            frames.append(fields)
    return frames


@pytest.fixture()
def quick_events_app(api_settings: Settings) -> Iterator[FastAPI]:
    """The API with a heartbeat every 0.3 s."""
    app = create_app(api_settings.model_copy(update={"events_heartbeat_s": 0.3}))
    yield app


def test_event_stream_sends_status_progress_and_end_then_closes(
    quick_events_app: FastAPI, make_key: Headers, small_video: bytes, api_settings: Settings
) -> None:
    headers = make_key()
    with TestClient(quick_events_app) as client:
        job_id = _submit(client, headers, small_video).json()["id"]

        def worker(reads: list[str]) -> None:
            hub = quick_events_app.state.job_events
            wait_for(lambda: hub.waiting, timeout_s=10, what="the stream to listen", interval_s=0.02)
            # The route's read, then the stream's own once subscribed: its status is the queued job.
            wait_for(lambda: len(reads) >= 2, timeout_s=10, what="the stream's read", interval_s=0.02)
            # Spaced by more than the 0.3 s heartbeat: the stream sends heartbeats between events.
            time.sleep(0.5)
            _progress(api_settings, job_id, done=1, total=2)
            time.sleep(0.5)
            _progress(api_settings, job_id, done=2, total=2)
            time.sleep(0.5)
            _fail(api_settings, job_id, code="after_progress")

        with _job_reads(api_settings, job_id) as reads:
            thread = _later(0, lambda: worker(reads))
            started = time.monotonic()
            response = client.get(f"/v1/jobs/{job_id}/events", headers=headers)
            elapsed = time.monotonic() - started
            thread.join()

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    text = response.text
    assert text.startswith("retry: ")
    assert ": heartbeat" in text
    frames = _events(text)
    kinds = [frame.get("event") for frame in frames if "event" in frame]
    assert kinds[0] == "status" and kinds[-1] == "end", kinds
    progress = [json.loads(f["data"]) for f in frames if f.get("event") == "progress"]
    assert [event["progress"] for event in progress] == [
        {"segments_done": 1, "segments_total": 2},
        {"segments_done": 2, "segments_total": 2},
    ]
    assert [event["segment"] for event in progress] == [0, 1]
    assert json.loads(next(f for f in frames if "event" in f)["data"])["status"] == "queued"
    end = json.loads(frames[-1]["data"])
    assert end["status"] == "failed" and end["error"]["code"] == "after_progress"
    assert frames[-1]["id"] == "2.2"
    ids = [frame["id"] for frame in frames if "id" in frame]
    assert ids == sorted(ids, key=lambda v: tuple(int(p) for p in v.split("."))), ids
    assert elapsed < 10.0


def test_event_stream_of_an_ended_job_sends_end_then_204_after_it(
    client: TestClient, make_key: Headers, small_video: bytes, api_settings: Settings
) -> None:
    headers = make_key()
    job_id = _submit(client, headers, small_video).json()["id"]
    _fail(api_settings, job_id)

    first = client.get(f"/v1/jobs/{job_id}/events", headers=headers)
    frames = _events(first.text)
    assert [f["event"] for f in frames if "event" in f] == ["end"]

    again = client.get(f"/v1/jobs/{job_id}/events", headers={**headers, "Last-Event-ID": frames[-1]["id"]})
    assert again.status_code == 204
    # An older id still gets the end.
    older = client.get(f"/v1/jobs/{job_id}/events", headers={**headers, "Last-Event-ID": "1.0"})
    assert _events(older.text)[-1]["event"] == "end"


def test_event_stream_token_opens_only_its_job_and_dies_with_its_key(
    client: TestClient, make_key: Headers, small_video: bytes, api_settings: Settings
) -> None:
    headers = make_key()
    job_id = _submit(client, headers, small_video).json()["id"]
    other_job = _submit(client, headers, small_video).json()["id"]
    _fail(api_settings, job_id)

    issued = client.post(f"/v1/jobs/{job_id}/events/token", headers=headers)
    assert issued.status_code == 201, issued.text
    token = issued.json()["token"]
    assert issued.json()["events_url"] == f"/v1/jobs/{job_id}/events?token={token}"

    opened = client.get(f"/v1/jobs/{job_id}/events", params={"token": token})
    assert opened.status_code == 200
    assert _events(opened.text)[-1]["event"] == "end"

    for path, bad in (
        (f"/v1/jobs/{other_job}/events", token),  # another job
        (f"/v1/jobs/{job_id}/events", token[:-2] + ("AA" if not token.endswith("AA") else "BB")),  # forged
        (f"/v1/jobs/{job_id}/events", "v1.e30.AAAA"),
    ):
        refused = client.get(path, params={"token": bad})
        assert refused.status_code == 401, refused.text
        assert refused.json()["error"]["code"] == "invalid_stream_token"

    prefix = "_".join(headers["Authorization"].split()[1].split("_")[:2])
    with get_session_factory(api_settings)() as session:
        assert revoke_api_key(session, prefix=prefix)
    revoked = client.get(f"/v1/jobs/{job_id}/events", params={"token": token})
    assert revoked.status_code == 401
    # Without a header or a token, the stream is refused like every other route.
    assert client.get(f"/v1/jobs/{job_id}/events").status_code == 401


MALFORMED_TOKENS = [
    "v1.é.x",
    "v1.\u00e9\u00e9.\u00e9",
    "é",
    "v1..",
    "v1.e30.é",
    "v1.!!!.AAAA",
    "v1." + "A" * 2000 + ".AAAA",
    "v1.e30.AAAA.extra",
    "\x00",
]


def test_malformed_stream_tokens_are_401s_that_count_as_failed_keys(
    api_settings: Settings, make_key: Headers, small_video: bytes
) -> None:
    # A limiter of its own (fresh Redis keys) that allows exactly these failures.
    settings = api_settings.model_copy(
        update={
            "broker_key_prefix": f"dfs-test-tokens-{uuid.uuid4().hex[:8]}:",
            "auth_failures_burst": len(MALFORMED_TOKENS),
        }
    )
    headers = make_key()
    with TestClient(create_app(settings)) as client:
        job_id = _submit(client, headers, small_video).json()["id"]
        refused = [
            client.get(f"/v1/jobs/{job_id}/events", params={"token": token}) for token in MALFORMED_TOKENS
        ]
        after = client.get(f"/v1/jobs/{job_id}/events", params={"token": "v1.e30.AAAA"})

    for token, answer in zip(MALFORMED_TOKENS, refused, strict=True):
        assert answer.status_code == 401, (token, answer.text)
        assert answer.json()["error"]["code"] == "invalid_stream_token"
    # Each one spent a failed-key token: the address is now limited.
    assert after.status_code == 429, after.text


@pytest.mark.parametrize("opened_with", ["header", "token"])
def test_event_stream_ends_once_its_key_is_revoked(
    api_settings: Settings, make_key: Headers, small_video: bytes, opened_with: str
) -> None:
    """A stream opened with a key (or a token made by it) ends with a ``revoked`` frame within
    about two key-cache intervals of the revoke. Before, it ran on until EVENTS_STREAM_MAX_S."""
    cache_s = 0.5
    settings = api_settings.model_copy(
        update={"api_key_cache_s": cache_s, "events_heartbeat_s": 0.3, "events_stream_max_s": 30}
    )
    headers = make_key()
    prefix = "_".join(headers["Authorization"].split()[1].split("_")[:2])
    with TestClient(create_app(settings)) as client:
        job_id = _submit(client, headers, small_video).json()["id"]
        if opened_with == "header":
            request: dict[str, Any] = {"headers": headers}
        else:
            token = client.post(f"/v1/jobs/{job_id}/events/token", headers=headers).json()["token"]
            request = {"params": {"token": token}}

        def revoke() -> None:
            with get_session_factory(settings)() as session:
                assert revoke_api_key(session, prefix=prefix)

        revoked_at: list[float] = []
        revoker = _later(1.5, lambda: (revoke(), revoked_at.append(time.monotonic())))
        response = client.get(f"/v1/jobs/{job_id}/events", **request)
        ended_at = time.monotonic()
        revoker.join()

    assert response.status_code == 200
    frames = [frame for frame in _events(response.text) if "event" in frame]
    assert frames[0]["event"] == "status"
    assert ": heartbeat" in response.text  # it was running before the revoke
    assert frames[-1]["event"] == "revoked", frames[-3:]
    assert "id" not in frames[-1]
    assert json.loads(frames[-1]["data"])["error"]["code"] == "invalid_api_key"
    after_revoke = ended_at - revoked_at[0]
    assert after_revoke < 2 * max(cache_s, 1.0) + 1.5, f"ended {after_revoke:.2f} s after the revoke"


def test_wait_still_ends_when_redis_is_unreachable(
    api_settings: Settings, make_key: Headers, small_video: bytes
) -> None:
    """No subscription (nothing listens at the broker's address): waiters read their job every
    second instead, so the end is still answered within about a second."""
    headers = make_key()
    with TestClient(create_app(api_settings)) as client:
        job_id = _submit(client, headers, small_video).json()["id"]
    unreachable = api_settings.model_copy(
        update={"broker_url": f"redis://127.0.0.1:{free_port()}/0", "rate_limit_redis_url": None}
    )
    with TestClient(create_app(unreachable)) as client:
        ender = _later(2.0, lambda: _fail(api_settings, job_id))
        started = time.monotonic()
        response = client.get(f"/v1/jobs/{job_id}", headers=headers, params={"wait": "20"})
        elapsed = time.monotonic() - started
        ender.join()

    assert response.status_code == 200
    assert response.json()["status"] == "failed"
    assert 1.9 < elapsed < 6.0, f"answered after {elapsed:.2f} s"
