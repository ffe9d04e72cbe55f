"""`deepfakestream worker`: a Celery worker for the probe, analyze, webhooks and maintenance queues.

One pool process per GPU (``--concurrency``); each loads the model once. ``--beat`` also runs the
periodic reconciler's schedule in this worker (run it in exactly one worker).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

__all__ = ["add_arguments", "run"]

_QUEUES = ("probe", "analyze", "webhooks", "maintenance")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--queues",
        default="probe,analyze,webhooks,maintenance",
        help=f"comma-separated queues to consume (of {', '.join(_QUEUES)})",
    )
    parser.add_argument("--concurrency", type=int, default=1, help="pool processes; one per GPU (default: 1)")
    parser.add_argument(
        "--hostname",
        default="worker@%h",
        help="node name, stable across restarts so a restarted node recovers its claims",
    )
    parser.add_argument("--beat", action="store_true", help="also run the periodic schedule (reconciler)")
    parser.add_argument(
        "--max-tasks-per-child",
        type=int,
        default=0,
        help="replace a pool process after this many tasks (0: never)",
    )


def _check_model(path: Path) -> str | None:
    """A look at the checkpoint's header (no torch, no weights read), so a missing or foreign file
    stops the worker at start instead of failing every job."""
    from pipeline.checkpoint import read_model_config
    from pipeline.errors import ModelError

    try:
        read_model_config(path)
    except ModelError as exc:
        if exc.code == "model_not_found":
            return f"model file not found: {path} (set MODEL_PATH, or train one with `deepfakestream train`)"
        return exc.message
    return None


def run(args: argparse.Namespace) -> int:
    from core.config import get_settings
    from core.errors import ConfigError
    from core.logs import configure_logging, log_event

    try:
        settings = get_settings()
    except ConfigError as exc:
        print(f"deepfakestream worker: {exc}", file=sys.stderr)
        return 2
    queues = [q.strip() for q in args.queues.split(",") if q.strip()]
    unknown = sorted(set(queues) - set(_QUEUES))
    if unknown or not queues:
        print(
            f"deepfakestream worker: unknown queues {unknown}; choose from {', '.join(_QUEUES)}",
            file=sys.stderr,
        )
        return 2
    if args.concurrency < 1:
        print("deepfakestream worker: --concurrency must be at least 1", file=sys.stderr)
        return 2
    if {"probe", "analyze"} & set(queues):
        from pipeline.checkpoint import DEFAULT_MODEL_PATH

        problem = _check_model(settings.model_path or DEFAULT_MODEL_PATH)
        if problem is not None:
            print(f"deepfakestream worker: {problem}", file=sys.stderr)
            return 9
    configure_logging(level=settings.log_level, json_lines=settings.log_format == "json")
    settings.work_dir.mkdir(parents=True, exist_ok=True)

    from worker.app import create_worker_app

    app = create_worker_app(settings)
    argv = [
        "worker",
        "--pool",
        "prefork",
        "--concurrency",
        str(args.concurrency),
        "--queues",
        ",".join(queues),
        "--hostname",
        args.hostname,
        "--loglevel",
        settings.log_level,
        "--without-gossip",
        "--without-mingle",
    ]
    if args.max_tasks_per_child:
        argv += ["--max-tasks-per-child", str(args.max_tasks_per_child)]
    if args.beat:
        argv += ["--beat", "--schedule", str(settings.work_dir / "celerybeat-schedule")]
    else:
        # Said at start, not only by the health routes once the dispatcher's heartbeat is stale: a
        # deployment where no worker runs the schedule leaves retries and lost messages waiting.
        log_event(
            logging.getLogger("worker.cli"),
            "worker.start.without_beat",
            level=logging.WARNING,
            message="this worker runs no periodic schedule: one worker of the deployment must start "
            "with --beat, or webhook retries and the re-sending of lost job messages never run",
        )
    app.worker_main(argv)
    return 0
