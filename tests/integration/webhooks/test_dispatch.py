"""When webhook messages leave, and what bounds one attempt (real PostgreSQL, Redis and a real
Celery worker started without beat; a loopback receiver, and a raw socket one that trickles).

- a job's delivery leaves when the transaction that ended the job commits, with no beat running;
- every message is published for a committed, unlocked, already-marked row (redelivery and the
  sweep alike), so the worker that takes it never skips it;
- the health checks report a missing or stale dispatcher;
- WEBHOOK_TIMEOUT_S caps one attempt on the wall clock, headers trickled one line at a time too.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from celery.signals import before_task_publish
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, pool, select, text
from sqlalchemy.orm import Session as PlainSession

from api.app import create_app
from api.services.webhooks import redeliver
from core.config import Settings, load_settings
from core.db import get_session_factory
from core.errors import ConflictError
from core.keys import create_api_key
from core.models import Job, Video, WebhookAttempt, WebhookDelivery
from core.redis import broker_key, redis_client
from lifecycle.jobs import cancel_job
from lifecycle.outbox import DISPATCHER_HEARTBEAT_KEY
from tests.utils.platform import (
    REDIS_URL,
    ServiceProcess,
    clear_broker_keys,
    fresh_database,
    make_test_checkpoint,
    platform_env,
    start_worker,
)
from tests.utils.receiver import Answer, Receiver
from tests.utils.waiting import wait_for
from worker.runtime import WorkerContext, build_context
from worker.webhooks import deliver, dispatch_due

pytestmark = pytest.mark.integration

WEBHOOK_TIMEOUT_S = 1.5


@dataclass
class Platform:
    settings: Settings
    ctx: WorkerContext
    worker: ServiceProcess


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp("dispatch")
    prefix = f"dfs-test-dispatch-{secrets.token_hex(4)}:"
    hooks = {
        "WEBHOOK_ALLOW_PRIVATE": "true",
        "WEBHOOK_TIMEOUT_S": str(WEBHOOK_TIMEOUT_S),
        "WEBHOOK_CONNECT_TIMEOUT_S": "1",
        "WEBHOOK_RETRY_SCHEDULE_S": "60",
        # Far away: a message the worker skipped would wait this long for the sweep.
        "WEBHOOK_REDISPATCH_AFTER_S": "600",
    }
    with fresh_database() as database_url:
        env = platform_env(
            database_url=database_url,
            storage_url=(root / "storage").as_uri(),
            broker_key_prefix=prefix,
            work_dir=root / "work",
            model_path=make_test_checkpoint(root / "model.safetensors"),
            extra=hooks,
        )
        # The webhooks queue only, and no beat: nothing runs the periodic sweep.
        worker = start_worker(env, log_dir=root / "logs", name="hooks", queues="webhooks", beat=False)
        try:
            settings = load_settings(
                environment="test",
                database_url=database_url,
                broker_url=REDIS_URL,
                broker_key_prefix=prefix,
                storage_url=env["STORAGE_URL"],
                work_dir=root / "work",
                **{name.lower(): value for name, value in hooks.items()},
            )
            yield Platform(
                settings=settings, ctx=build_context(settings, hostname="test@dispatch"), worker=worker
            )
        finally:
            worker.stop()
            clear_broker_keys(prefix)


def _queued_job(settings: Settings, *, callback_url: str) -> tuple[uuid.UUID, uuid.UUID]:
    """(tenant id, job id) of a queued job whose end is to be sent to ``callback_url``."""
    with get_session_factory(settings)() as session:
        tenant_id = create_api_key(session, tenant_name=f"t-{secrets.token_hex(4)}").tenant.id
        video_id = uuid.uuid4()
        job = Job(
            tenant_id=tenant_id,
            video=Video(id=video_id, tenant_id=tenant_id, storage_key=f"v/{video_id}", owned=True),
            status="queued",
            options={"sample_fps": 1.0, "segment_seconds": 2.0},
            callback_url=callback_url,
        )
        session.add(job)
        session.commit()
        return tenant_id, job.id


def _deliveries(settings: Settings, job_id: uuid.UUID) -> list[WebhookDelivery]:
    with get_session_factory(settings)() as session:
        return list(session.scalars(select(WebhookDelivery).where(WebhookDelivery.job_id == job_id)))


@contextlib.contextmanager
def _rows_at_publish(settings: Settings) -> Iterator[list[dict[str, Any]]]:
    """What another connection sees of each delivery at the moment its message is published:
    whether the row can be claimed (committed, due, not locked) and whether it is already marked
    dispatched (so nothing writes it after the message left)."""
    engine = create_engine(settings.database_url, poolclass=pool.NullPool)
    seen: list[dict[str, Any]] = []

    def check(sender: str | None = None, body: Any = None, **_: Any) -> None:
        if sender != "deepfakestream.deliver_webhook":
            return
        delivery_id = body[0][0]
        with engine.connect() as connection:
            row = connection.execute(
                text(
                    "SELECT status, next_attempt_at, dispatched_at FROM webhook_deliveries "
                    "WHERE id = :id FOR UPDATE SKIP LOCKED"
                ),
                {"id": delivery_id},
            ).one_or_none()
            connection.rollback()
        seen.append(
            {
                "id": delivery_id,
                "claimable": row is not None and row.status == "pending",
                "marked": row is not None
                and row.dispatched_at is not None
                and row.dispatched_at >= row.next_attempt_at,
            }
        )

    before_task_publish.connect(check, weak=False)
    try:
        yield seen
    finally:
        before_task_publish.disconnect(check)
        engine.dispose()


def test_a_job_webhook_leaves_on_commit_without_beat(platform: Platform, receiver: Receiver) -> None:
    """Before: deliveries waited for the beat-run sweep, and a worker without --beat sent none."""
    callback = receiver.script(f"/commit/{uuid.uuid4().hex}", [Answer(200)])
    _, job_id = _queued_job(platform.settings, callback_url=callback)

    with _rows_at_publish(platform.settings) as seen:
        started = time.monotonic()
        with platform.ctx.session() as session:
            assert cancel_job(session, job_id=job_id)
            session.commit()
        (received,) = receiver.wait_for(callback.removeprefix(receiver.base_url), 1, timeout_s=30)

    assert received.at - started < 15
    assert [entry["claimable"] and entry["marked"] for entry in seen] == [True]
    (delivery,) = wait_for(
        lambda: [d for d in _deliveries(platform.settings, job_id) if d.status == "succeeded"] or None,
        timeout_s=15,
        what="the delivery recorded as succeeded",
    )
    assert delivery.attempts == 1


def test_redelivery_is_published_for_a_committed_row(platform: Platform, receiver: Receiver) -> None:
    """Before: the message left before the row was marked, and the worker that took it found the
    row locked by that write, skipped it and left it for the sweep five minutes later."""
    callback = receiver.script(f"/again/{uuid.uuid4().hex}", [Answer(200)])
    tenant_id, job_id = _queued_job(platform.settings, callback_url=callback)
    with platform.ctx.session() as session:
        cancel_job(session, job_id=job_id)
        session.commit()
    path = callback.removeprefix(receiver.base_url)
    receiver.wait_for(path, 1, timeout_s=30)
    (delivery,) = wait_for(
        lambda: [d for d in _deliveries(platform.settings, job_id) if d.status == "succeeded"] or None,
        timeout_s=15,
        what="the first delivery to finish",
    )

    with _rows_at_publish(platform.settings) as seen, platform.ctx.session() as session:
        redeliver(
            session,
            platform.ctx.celery,
            tenant_id=tenant_id,
            delivery_id=str(delivery.id),
            settings=platform.settings,
        )
    receiver.wait_for(path, 2, timeout_s=15)

    assert [(entry["claimable"], entry["marked"]) for entry in seen] == [(True, True)]
    skipped = [line for line in platform.worker.log_text().splitlines() if "webhook.delivery.skipped" in line]
    assert not skipped


def test_simultaneous_redeliveries_start_exactly_one(platform: Platform, receiver: Receiver) -> None:
    """Before: of 10 requests sent together, three to five were accepted (the redelivery's attempt
    ended before the later ones came), and a request answering 409 held the row locked, so the
    worker taking an accepted request's message skipped it, leaving it for the sweep."""
    callback = receiver.script(f"/together/{uuid.uuid4().hex}", [Answer(200)])
    tenant_id, job_id = _queued_job(platform.settings, callback_url=callback)
    with platform.ctx.session() as session:
        cancel_job(session, job_id=job_id)
        session.commit()
    path = callback.removeprefix(receiver.base_url)
    receiver.wait_for(path, 1, timeout_s=30)
    (delivery,) = wait_for(
        lambda: [d for d in _deliveries(platform.settings, job_id) if d.status == "succeeded"] or None,
        timeout_s=15,
        what="the first delivery to finish",
    )
    together = threading.Barrier(10)

    def ask(_: int) -> str:
        with get_session_factory(platform.settings)() as session:
            together.wait()
            try:
                redeliver(
                    session,
                    platform.ctx.celery,
                    tenant_id=tenant_id,
                    delivery_id=str(delivery.id),
                    settings=platform.settings,
                )
            except ConflictError as exc:
                return exc.code
            return "accepted"

    with ThreadPoolExecutor(10) as pool:
        answers = sorted(pool.map(ask, range(10)))
    receiver.wait_for(path, 2, timeout_s=15)
    finished = wait_for(
        lambda: [d for d in _deliveries(platform.settings, job_id) if d.status == "succeeded"] or None,
        timeout_s=15,
        what="the redelivery to finish",
    )
    time.sleep(1.0)  # a second redelivery's message, had one left, would have arrived by now

    assert answers.count("accepted") == 1, answers
    assert set(answers) - {"accepted"} <= {"delivery_pending", "delivery_redelivered"}
    assert len(receiver.requests(path)) == 2
    assert finished[0].attempts == 2
    skipped = [line for line in platform.worker.log_text().splitlines() if "webhook.delivery.skipped" in line]
    assert not skipped


def test_the_sweep_publishes_only_committed_rows(platform: Platform, receiver: Receiver) -> None:
    """Before: the sweep sent its messages while its transaction still locked the rows."""
    callback = receiver.script(f"/sweep/{uuid.uuid4().hex}", [Answer(200)])
    _, job_id = _queued_job(platform.settings, callback_url=callback)
    with platform.ctx.session() as session:
        cancel_job(session, job_id=job_id)
        session.commit()
    path = callback.removeprefix(receiver.base_url)
    receiver.wait_for(path, 1, timeout_s=30)
    # The platform's worker sweeps too (every WEBHOOK_DISPATCH_INTERVAL_S): on a busy machine it
    # can claim the row first, so the row is made due again until this sweep is the one to claim it.
    claimed = 0
    with _rows_at_publish(platform.settings) as seen:
        for _ in range(10):
            # A delivery whose message was lost (a flushed broker): due, and never marked as sent.
            with get_session_factory(platform.settings)() as session:
                session.execute(
                    text(
                        "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = now(), "
                        "dispatched_at = NULL, finished_at = NULL WHERE job_id = :job"
                    ),
                    {"job": job_id},
                )
                session.commit()
            before = len(receiver.requests(path))
            claimed = dispatch_due(platform.ctx)
            if claimed:
                break
            receiver.wait_for(path, before + 1, timeout_s=15)  # the worker's sweep sent it
    assert claimed >= 1
    receiver.wait_for(path, before + 1, timeout_s=15)

    assert seen and all(entry["claimable"] and entry["marked"] for entry in seen)


def test_health_reports_a_missing_then_a_live_dispatcher(platform: Platform) -> None:
    settings = platform.settings
    client = redis_client(settings)
    client.delete(broker_key(settings, DISPATCHER_HEARTBEAT_KEY))
    client.close()
    with get_session_factory(settings)() as session:
        admin = {"Authorization": f"Bearer {create_api_key(session, tenant_name='ops', admin=True).key}"}
    with TestClient(create_app(settings)) as api:
        missing = api.get("/readyz")
        snapshot = api.get("/healthcheck/", headers=admin)
        dispatch_due(platform.ctx)
        live = api.get("/readyz")

    assert missing.status_code == 200, missing.text  # degraded, still ready to take jobs
    body = missing.json()
    assert body["status"] == "degraded"
    assert body["checks"]["webhook_dispatcher"]["ok"] is False
    assert any(
        r.startswith("webhook_dispatcher:") and "no webhook dispatcher has run" in r for r in body["reasons"]
    )
    assert snapshot.status_code == 200, snapshot.text
    assert snapshot.json()["status"] == "degraded"
    assert snapshot.json()["checks"]["webhook_dispatcher"]["ok"] is False
    assert live.json()["checks"]["webhook_dispatcher"]["ok"] is True


def test_a_stale_dispatcher_is_reported(platform: Platform) -> None:
    settings = platform.settings
    client = redis_client(settings)
    client.set(broker_key(settings, DISPATCHER_HEARTBEAT_KEY), f"{time.time() - 3600:.3f}")
    client.close()
    with TestClient(create_app(settings)) as api:
        body = api.get("/readyz").json()

    check = body["checks"]["webhook_dispatcher"]
    assert check["ok"] is False and re.search(r"last ran 360\d s ago", check["error"])
    assert body["status"] == "degraded"


@contextlib.contextmanager
def _trickling_receiver(*, every_s: float, lines: int) -> Iterator[str]:
    """Answers ``200`` and then one more header line every ``every_s`` seconds, ``lines`` of them:
    a response that never finishes starting within any short timeout of one read."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        with contextlib.suppress(OSError):
            while not stop.is_set():
                conn, _ = listener.accept()
                with conn:
                    conn.recv(65536)
                    conn.sendall(b"HTTP/1.1 200 OK\r\n")
                    for _ in range(lines):
                        if stop.wait(every_s):
                            return
                        conn.sendall(b"X-Slow: a\r\n")
                    conn.sendall(b"Content-Length: 2\r\n\r\nok")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/slow"
    finally:
        stop.set()
        listener.close()
        thread.join(5)


def test_an_attempt_ends_at_the_webhook_timeout(platform: Platform, tmp_path: Path) -> None:
    """A header line every 0.3 s for 6 s: before, the attempt lasted the 6 s and succeeded."""
    settings = platform.settings
    assert settings.webhook_claim_s > WEBHOOK_TIMEOUT_S
    with _trickling_receiver(every_s=0.3, lines=20) as url:
        _, job_id = _queued_job(settings, callback_url=url)
        # Ended without the outbox (a session that does not know its settings): the test runs
        # the one attempt itself.
        engine = create_engine(settings.database_url, poolclass=pool.NullPool)
        with PlainSession(engine) as session:
            cancel_job(session, job_id=job_id)
            session.commit()
        engine.dispose()
        (pending,) = _deliveries(settings, job_id)
        started = time.monotonic()
        outcome = deliver(platform.ctx, delivery_id=pending.id)
        elapsed = time.monotonic() - started

    assert outcome.result == "retrying"
    assert elapsed < WEBHOOK_TIMEOUT_S + 1.5
    with get_session_factory(settings)() as session:
        attempt = session.scalars(
            select(WebhookAttempt).where(WebhookAttempt.delivery_id == pending.id)
        ).one()
        row = session.get(WebhookDelivery, pending.id)
    assert attempt.error_code == "timeout" and attempt.status_code is None
    assert attempt.duration_ms <= (WEBHOOK_TIMEOUT_S + 0.5) * 1000
    assert row is not None and row.status == "pending" and row.claimed_until is None
