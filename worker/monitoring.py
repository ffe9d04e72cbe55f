"""A worker's process monitoring: metrics port, resource reports and each task's log context.

Resource reports (CPU, memory, GPU memory) go to Redis; every line a task logs carries its job and
segment.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Any

from celery.signals import task_postrun, task_prerun, worker_ready, worker_shutdown

from core import metrics
from core.config import Settings, get_settings
from core.logs import log_context
from core.queue import TaskName
from core.resources import ResourceReporter

__all__ = ["gpu_usage", "start_pool_process_monitoring"]

log = logging.getLogger(__name__)

_reporters: list[ResourceReporter] = []
_task_contexts: dict[str, contextlib.ExitStack] = {}


def gpu_usage() -> dict[str, Any] | None:
    """GPU memory of this process and its device, when torch is loaded and CUDA is in use; the
    figures also go to the ``deepfakestream_gpu_memory_bytes`` gauge."""
    torch = sys.modules.get("torch")  # never import torch here: the main process must not load it
    if torch is None or not torch.cuda.is_available():
        return None
    device = torch.cuda.current_device()
    free, total = torch.cuda.mem_get_info(device)
    usage = {
        "device": torch.cuda.get_device_name(device),
        "index": int(device),
        "allocated_bytes": int(torch.cuda.memory_allocated(device)),
        "reserved_bytes": int(torch.cuda.memory_reserved(device)),
        "device_used_bytes": int(total - free),
        "device_total_bytes": int(total),
    }
    for kind in ("allocated", "reserved"):
        metrics.GPU_MEMORY_BYTES.labels(kind).set(usage[f"{kind}_bytes"])
    metrics.GPU_MEMORY_BYTES.labels("device_used").set(usage["device_used_bytes"])
    metrics.GPU_MEMORY_BYTES.labels("device_total").set(usage["device_total_bytes"])
    return usage


def _settings() -> Settings:
    return get_settings()


def _pool_index() -> int:
    from celery.utils.log import current_process_index

    index = current_process_index(base=0)
    return int(index) if index is not None else 0


def start_pool_process_monitoring(settings: Settings, *, node: str | None) -> None:
    """The pool process's metrics port and resource reports; called once its model has loaded."""
    node = str(node or f"worker@{os.uname().nodename}")
    if settings.worker_metrics_port:
        # One port per pool process (base + index): each process has its own counters.
        metrics.serve_metrics(settings.worker_metrics_port + _pool_index())
    _reporters.append(ResourceReporter(settings, node=node, role="pool", gpu_probe=gpu_usage).start())


@worker_ready.connect
def _monitor_main_process(sender: Any = None, **_: Any) -> None:
    hostname = getattr(sender, "hostname", None) or f"worker@{os.uname().nodename}"
    _reporters.append(ResourceReporter(_settings(), node=str(hostname), role="main").start())


@worker_shutdown.connect
def _stop_reports(**_: Any) -> None:
    while _reporters:
        _reporters.pop().stop()


def _task_fields(name: str, args: Any) -> dict[str, Any]:
    args = list(args or [])
    if name in (TaskName.PROBE.value, TaskName.ANALYZE.value) and args:
        fields: dict[str, Any] = {"job_id": str(args[0])[:64]}
        if name == TaskName.ANALYZE.value and len(args) > 1:
            fields["segment"] = args[1]
        return fields
    if name == TaskName.DELIVER_WEBHOOK.value and args:
        return {"delivery_id": str(args[0])[:64]}
    return {}


@task_prerun.connect
def _bind_task_context(task_id: str | None = None, task: Any = None, args: Any = None, **_: Any) -> None:
    """Every line a task logs, Celery's own included, carries its job and segment."""
    if task_id is None or task is None:
        return
    stack = contextlib.ExitStack()
    stack.enter_context(log_context(task_id=task_id, **_task_fields(getattr(task, "name", ""), args)))
    _task_contexts[task_id] = stack


@task_postrun.connect
def _unbind_task_context(task_id: str | None = None, **_: Any) -> None:
    stack = _task_contexts.pop(task_id or "", None)
    if stack is not None:
        stack.close()
