"""Celery tasks: thin wrappers that parse their ids and call the stage's plain function.

A RetryLater from the stage becomes a Celery retry. Names are explicit so the API can send the
tasks without importing this module.
"""

from __future__ import annotations

import logging
import random
import uuid

from celery import Task, shared_task

from core.logs import log_event
from core.queue import TaskName
from worker import webhooks
from worker.analyze import analyze_segment
from worker.claims import RetryLater
from worker.failures import RETRYABLE_ERRORS
from worker.probe import probe_job
from worker.reconcile import reconcile
from worker.runtime import context_for

__all__ = [
    "analyze_segment_task",
    "deliver_webhook_task",
    "dispatch_webhooks_task",
    "probe_job_task",
    "reconcile_jobs_task",
]

log = logging.getLogger(__name__)

# A dependency outage outside the classified work (the claim, the fan-out): wait and try again.
_OUTAGE_RETRY_S = (5.0, 30.0)


def _parse_id(raw: str, task: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(raw))
    except ValueError:
        log_event(
            log, f"{task}.rejected", level=logging.ERROR, reason="malformed job id", job_id=str(raw)[:64]
        )
        return None


@shared_task(bind=True, name=TaskName.PROBE.value, max_retries=None)
def probe_job_task(self: Task, job_id: str) -> str:
    parsed = _parse_id(job_id, "job.probe")
    if parsed is None:
        return "rejected"
    try:
        return probe_job(context_for(self.request.hostname), job_id=parsed, task_id=self.request.id)
    except RetryLater as retry:
        raise self.retry(countdown=retry.countdown, exc=retry.cause) from retry.cause
    except RETRYABLE_ERRORS as exc:
        raise self.retry(countdown=random.uniform(*_OUTAGE_RETRY_S), exc=exc) from exc


@shared_task(bind=True, name=TaskName.ANALYZE.value, max_retries=None)
def analyze_segment_task(self: Task, job_id: str, segment_index: int) -> str:
    parsed = _parse_id(job_id, "job.analyze")
    if parsed is None or not isinstance(segment_index, int) or segment_index < 0:
        return "rejected"
    try:
        return analyze_segment(
            context_for(self.request.hostname),
            job_id=parsed,
            segment_index=segment_index,
            task_id=self.request.id,
        )
    except RetryLater as retry:
        raise self.retry(countdown=retry.countdown, exc=retry.cause) from retry.cause
    except RETRYABLE_ERRORS as exc:
        raise self.retry(countdown=random.uniform(*_OUTAGE_RETRY_S), exc=exc) from exc


@shared_task(bind=True, name=TaskName.RECONCILE.value, max_retries=0, acks_late=False)
def reconcile_jobs_task(self: Task) -> dict[str, int]:
    # Periodic: a missed run is replaced by the next one, so no retries and no late acks.
    return reconcile(context_for(self.request.hostname))


@shared_task(bind=True, name=TaskName.DELIVER_WEBHOOK.value, max_retries=None)
def deliver_webhook_task(self: Task, delivery_id: str) -> str:
    # The delivery's own retries are scheduled in its row; Celery retries only cover an outage
    # of the database or broker around the attempt.
    try:
        parsed = uuid.UUID(str(delivery_id))
    except ValueError:
        log_event(log, "webhook.delivery.rejected", level=logging.ERROR, delivery_id=str(delivery_id)[:64])
        return "rejected"
    try:
        return webhooks.deliver(context_for(self.request.hostname), delivery_id=parsed).result
    except RETRYABLE_ERRORS as exc:
        raise self.retry(countdown=random.uniform(*_OUTAGE_RETRY_S), exc=exc) from exc


@shared_task(bind=True, name=TaskName.DISPATCH_WEBHOOKS.value, max_retries=0, acks_late=False)
def dispatch_webhooks_task(self: Task) -> int:
    # Periodic, like the reconciler: a missed run is replaced by the next one.
    return webhooks.dispatch_due(context_for(self.request.hostname))
