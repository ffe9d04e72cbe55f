"""The platform tests' stack: one worker, both buckets, small limits and fast clocks.

Built by ``tests.utils.stack.running_stack`` (a fresh database, Redis under its own key prefix,
moto S3, the API and one real Celery worker), shared by the tests of a run. The model is a
randomly initialised small checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager as ContextManager
from pathlib import Path
from typing import Any

import pytest

from tests.utils.media import FaceVideo
from tests.utils.stack import SOURCE_BUCKET, TERMINAL, Stack, running_stack

__all__ = [
    "MAX_ATTEMPTS",
    "MAX_UPLOAD_BYTES",
    "SOURCE_BUCKET",
    "STORAGE_BUCKET",
    "TERMINAL",
    "TEST_SETTINGS",
    "WORKER_NAME",
    "platform_stack",
]

STORAGE_BUCKET = "dfs-test"
MAX_UPLOAD_BYTES = 2_000_000
MAX_ATTEMPTS = 3
WORKER_NAME = "worker1"

# Small limits and fast clocks so that faults and retries show within seconds.
TEST_SETTINGS = {
    "MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES),
    "MAX_DURATION_S": "600",
    "SOURCE_BUCKETS": SOURCE_BUCKET,
    "MAX_ATTEMPTS": str(MAX_ATTEMPTS),
    "RETRY_BACKOFF_S": "1",
    "TASK_SOFT_TIME_LIMIT_S": "120",
    "TASK_TIME_LIMIT_S": "150",
    "BROKER_VISIBILITY_TIMEOUT_S": "300",
    "BROKER_RESTORE_INTERVAL_S": "5",
    "RECONCILE_INTERVAL_S": "2",
    "RECONCILE_QUEUED_AFTER_S": "8",
    "DEFAULT_SAMPLE_FPS": "2",
    "DEFAULT_SEGMENT_SECONDS": "2",
}


def platform_stack(root: Path, *, settings: Mapping[str, str], **options: Any) -> ContextManager[Stack]:
    """The platform tests' stack: both buckets, worker ``worker1``, polls give up after 120 s."""
    return running_stack(
        root,
        settings=settings,
        bucket=STORAGE_BUCKET,
        source_bucket=SOURCE_BUCKET,
        worker_name=WORKER_NAME,
        wait_timeout_s=120.0,
        **options,
    )


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with platform_stack(tmp_path_factory.mktemp("platform"), settings=TEST_SETTINGS) as up:
        yield up


@pytest.fixture(scope="session")
def two_segment_video(platform: Stack) -> FaceVideo:
    """3 s with one face moving across; with segment_seconds=1.5 it makes exactly two segments."""
    return platform.face_video("two-segments.mp4", seconds=3.0)
