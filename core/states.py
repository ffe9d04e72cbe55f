"""Job and segment states (no database here); the moves between them are ``lifecycle.transitions``."""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "ACTIVE_JOB_STATES",
    "TERMINAL_JOB_STATES",
    "JobStatus",
    "SegmentStatus",
    "Verdict",
]


class JobStatus(StrEnum):
    QUEUED = "queued"  # stored and enqueued; no worker has started it (or it waits for a retry)
    PROCESSING = "processing"  # probed and planned, or being probed; segments running
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class SegmentStatus(StrEnum):
    PENDING = "pending"  # planned, message sent
    RUNNING = "running"  # a worker claimed it (attempts counts the claims)
    DONE = "done"  # results written
    CANCELED = "canceled"  # its job was canceled before the segment was done


class Verdict(StrEnum):
    FAKE = "fake"
    REAL = "real"
    # The score lies inside the checkpoint's band around the threshold, where calls were unreliable.
    INCONCLUSIVE = "inconclusive"
    NO_FACE = "no_face"


ACTIVE_JOB_STATES = frozenset({JobStatus.QUEUED, JobStatus.PROCESSING})
TERMINAL_JOB_STATES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED})
