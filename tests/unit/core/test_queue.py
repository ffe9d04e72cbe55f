"""core.queue: a worker sends with its own Celery app; any other process builds one that only sends."""

from __future__ import annotations

from pathlib import Path

import pytest

from core import queue
from core.config import load_settings
from core.queue import get_celery, make_celery, use_worker_app


def test_a_worker_process_has_one_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queue, "_worker_app", None)
    settings = load_settings(work_dir=str(tmp_path))
    producer = get_celery(settings)
    assert get_celery(settings) is producer  # built once in this process

    app = make_celery(settings)
    use_worker_app(settings, app)
    assert get_celery(settings) is app

    other = load_settings(work_dir=str(tmp_path / "other"))
    assert get_celery(other) is not app  # settings of another deployment get their own
