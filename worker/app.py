"""The workers' Celery app: the shared configuration, the tasks and the process hooks.

``worker_process_init`` loads the model once in each pool process; ``worker_ready`` re-sends
whatever this node had claimed before it restarted, and checks the broker's marker before the
worker takes any message (``worker.reconcile.check_broker``).
"""

from __future__ import annotations

import logging
import os
import signal
from datetime import UTC, datetime
from typing import Any

from celery import Celery
from celery.signals import worker_process_init, worker_ready

from core.config import Settings, get_settings
from core.logs import configure_logging, log_event
from core.queue import make_celery, use_worker_app
from worker import monitoring
from worker.claims import recover_node_claims
from worker.reconcile import check_broker
from worker.runtime import context_for, load_analyzer

__all__ = ["create_worker_app"]

log = logging.getLogger(__name__)

BOOTED_AT = datetime.now(UTC)


def create_worker_app(settings: Settings) -> Celery:
    app = make_celery(settings)
    app.conf.update(
        # Loading torch, MTCNN and the classifier takes longer than Celery's default 4 s.
        worker_proc_alive_timeout=300.0,
        beat_schedule_filename=str(settings.work_dir / "celerybeat-schedule"),
        worker_lost_wait=20.0,
        worker_redirect_stdouts=False,
    )
    import worker.tasks  # noqa: F401 - registers the shared tasks on this app

    # The one app of this worker and its pool processes: what the tasks send goes through it too.
    use_worker_app(settings, app)
    return app


@worker_process_init.connect
def _load_model_in_pool_process(sender: Any = None, **_: Any) -> None:
    settings = get_settings()
    configure_logging(level=settings.log_level, json_lines=settings.log_format == "json")
    from pipeline.errors import ModelError

    try:
        analyzer = load_analyzer(settings)
    except ModelError as exc:
        log_event(log, "worker.model.invalid", level=logging.CRITICAL, code=exc.code, detail=exc.message)
        # Every task would fail the same way: stop the whole worker instead of failing jobs.
        os.kill(os.getppid(), signal.SIGTERM)
        raise
    log_event(
        log,
        "worker.process.ready",
        pid=os.getpid(),
        model=analyzer.model_info.get("version"),
        device=str(analyzer.device),
    )
    # Only now: orchestrators take an open metrics port as "ready for work".
    monitoring.start_pool_process_monitoring(settings, node=sender)


@worker_ready.connect
def _recover_after_restart(sender: Any = None, **_: Any) -> None:
    hostname = getattr(sender, "hostname", None)
    context = context_for(hostname)
    try:
        recovered = recover_node_claims(context, booted_at=BOOTED_AT)
    except Exception as exc:  # recovery is an optimisation; the reconciler covers the same ground
        log_event(
            log, "worker.recovery.failed", level=logging.WARNING, error=f"{type(exc).__name__}: {exc}"[:300]
        )
        recovered = {}
    try:
        # Runs before this worker takes a message. Left to beat's first run (a reconcile interval
        # later), a fresh broker would be marked only after work had started, and the work then
        # in flight would be taken for lost and sent again.
        check_broker(context)
    except Exception as exc:  # beat's next reconcile run checks the broker all the same
        error = f"{type(exc).__name__}: {exc}"[:300]
        log_event(log, "worker.broker_check.failed", level=logging.WARNING, error=error)
    log_event(log, "worker.ready", node=context.hostname, **recovered)
