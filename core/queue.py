"""Celery configuration shared by the API (which only sends) and the workers (which also run tasks).

Tasks are addressed by name, so the API sends messages without importing the worker's code
(and therefore never torch).
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from enum import StrEnum
from typing import Any

from celery import Celery
from kombu import Exchange
from kombu import Queue as KombuQueue

from core.config import Settings
from core.process_local import per_process

__all__ = [
    "INTERACTIVE_PRIORITY",
    "Queue",
    "TaskName",
    "enqueue_analyze",
    "enqueue_probe",
    "enqueue_webhook",
    "get_celery",
    "make_celery",
    "use_worker_app",
]

log = logging.getLogger(__name__)


class Queue(StrEnum):
    # ffprobe and planning: seconds of CPU per job, kept apart so new jobs start while the GPUs
    # are busy with long videos.
    PROBE = "probe"
    # One message per segment of video; consumed by GPU workers, one process per GPU.
    ANALYZE = "analyze"
    # Outbound HTTP with long retry schedules: a slow receiver must never hold up analysis.
    WEBHOOKS = "webhooks"
    # Periodic housekeeping (reconciler, retention): small, must run even when the others are full.
    MAINTENANCE = "maintenance"


class TaskName(StrEnum):
    PROBE = "deepfakestream.probe_job"
    ANALYZE = "deepfakestream.analyze_segment"
    RECONCILE = "deepfakestream.reconcile_jobs"
    DELIVER_WEBHOOK = "deepfakestream.deliver_webhook"
    DISPATCH_WEBHOOKS = "deepfakestream.dispatch_webhooks"


TASK_QUEUES: dict[TaskName, Queue] = {
    TaskName.PROBE: Queue.PROBE,
    TaskName.ANALYZE: Queue.ANALYZE,
    TaskName.RECONCILE: Queue.MAINTENANCE,
    TaskName.DELIVER_WEBHOOK: Queue.WEBHOOKS,
    TaskName.DISPATCH_WEBHOOKS: Queue.MAINTENANCE,
}

# Redis serves lower priority numbers first, across every queue a worker consumes (kombu polls
# each priority level of all its queues before the next level). Interactive jobs use 0; batch
# items use Settings.batch_priority, so a backlog never delays an interactive job by more than
# the task already running.
INTERACTIVE_PRIORITY = 0


def make_celery(settings: Settings) -> Celery:
    app = Celery("deepfakestream", broker=settings.broker_url, set_as_current=False)
    transport_options: dict[str, Any] = {
        "visibility_timeout": settings.broker_visibility_timeout_s,
        # How often unacknowledged messages of dead workers are looked for (see kombu's redis
        # transport): every interval × throttle seconds.
        "unacked_restore_interval": settings.broker_restore_interval_s,
        "unacked_restore_throttle": 1,
        "socket_connect_timeout": 5,
        "socket_timeout": 30,
    }
    if settings.broker_key_prefix:
        transport_options["global_keyprefix"] = settings.broker_key_prefix
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,  # Postgres holds results; no result backend
        result_backend=None,
        task_acks_late=True,  # a message is removed only once its task has finished
        task_reject_on_worker_lost=True,  # a killed worker process puts its message back
        worker_prefetch_multiplier=1,  # one message at a time per process: no hoarding GPU work
        task_soft_time_limit=settings.task_soft_time_limit_s,
        task_time_limit=settings.task_time_limit_s,
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        worker_soft_shutdown_timeout=settings.worker_soft_shutdown_timeout_s,
        task_default_queue=Queue.PROBE.value,
        task_queues=[
            KombuQueue(q.value, Exchange(q.value, type="direct"), routing_key=q.value) for q in Queue
        ],
        task_routes={
            name.value: {"queue": queue.value, "routing_key": queue.value}
            for name, queue in TASK_QUEUES.items()
        },
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        beat_schedule={
            "reconcile-jobs": {
                "task": TaskName.RECONCILE.value,
                "schedule": timedelta(seconds=settings.reconcile_interval_s),
                "options": {
                    "queue": Queue.MAINTENANCE.value,
                    # a reconcile run that waited longer than its period is redundant
                    "expires": settings.reconcile_interval_s,
                },
            },
            "dispatch-webhooks": {
                "task": TaskName.DISPATCH_WEBHOOKS.value,
                "schedule": timedelta(seconds=settings.webhook_dispatch_interval_s),
                "options": {
                    "queue": Queue.MAINTENANCE.value,
                    "expires": max(settings.webhook_dispatch_interval_s, 1.0),
                },
            },
        },
    )
    return app


# A worker's own app (``use_worker_app``), which its pool processes inherit: Celery gives each of
# them fresh broker connections, so the tasks, their context and the outbox all send with the app
# the worker runs on.
_worker_app: tuple[Settings, Celery] | None = None


@per_process
def _producer(settings: Settings) -> Celery:
    return make_celery(settings)


def use_worker_app(settings: Settings, app: Celery) -> None:
    """Makes ``app`` (made by ``make_celery(settings)``) this process's app for ``settings``."""
    global _worker_app
    _worker_app = (settings, app)


def get_celery(settings: Settings) -> Celery:
    """The process's Celery app for these settings: a worker's own app, else one built on first
    use (and rebuilt after fork) that only sends."""
    if _worker_app is not None and _worker_app[0] == settings:
        return _worker_app[1]
    return _producer(settings)


def _send(
    app: Celery,
    name: TaskName,
    args: list[Any],
    *,
    timeout_s: float,
    countdown: float | None = None,
    priority: int = INTERACTIVE_PRIORITY,
    task_id: str | None = None,
) -> str:
    task_id = task_id or str(uuid.uuid4())
    app.send_task(
        name.value,
        args=args,
        task_id=task_id,
        queue=TASK_QUEUES[name].value,
        routing_key=TASK_QUEUES[name].value,
        countdown=countdown,
        priority=priority,
        retry=True,
        retry_policy={
            "max_retries": 2,
            "interval_start": 0.2,
            "interval_step": 0.5,
            "interval_max": max(timeout_s / 2, 0.2),
        },
    )
    return task_id


def enqueue_probe(
    app: Celery,
    *,
    job_id: uuid.UUID,
    timeout_s: float = 3.0,
    countdown: float | None = None,
    priority: int = INTERACTIVE_PRIORITY,
    task_id: str | None = None,
) -> str:
    """``task_id``: send again a message that was lost, under its id (see worker.reconcile)."""
    return _send(
        app,
        TaskName.PROBE,
        [str(job_id)],
        timeout_s=timeout_s,
        countdown=countdown,
        priority=priority,
        task_id=task_id,
    )


def enqueue_analyze(
    app: Celery,
    *,
    job_id: uuid.UUID,
    segment_index: int,
    timeout_s: float = 3.0,
    countdown: float | None = None,
    priority: int = INTERACTIVE_PRIORITY,
    task_id: str | None = None,
) -> str:
    return _send(
        app,
        TaskName.ANALYZE,
        [str(job_id), segment_index],
        timeout_s=timeout_s,
        countdown=countdown,
        priority=priority,
        task_id=task_id,
    )


def enqueue_webhook(app: Celery, *, delivery_id: uuid.UUID, timeout_s: float = 3.0) -> str:
    return _send(app, TaskName.DELIVER_WEBHOOK, [str(delivery_id)], timeout_s=timeout_s)
