"""Job and segment states, and which moves between them are allowed (no database here)."""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "ACTIVE_JOB_STATES",
    "TERMINAL_JOB_STATES",
    "JobStatus",
    "SegmentStatus",
    "Verdict",
    "can_transition",
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

_ALLOWED: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.PROCESSING, JobStatus.FAILED, JobStatus.CANCELED}),
    # back to queued when a retryable failure waits for its next attempt
    JobStatus.PROCESSING: frozenset(
        {JobStatus.QUEUED, JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED}
    ),
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELED: frozenset(),
}


def can_transition(current: JobStatus | str, target: JobStatus | str) -> bool:
    return JobStatus(target) in _ALLOWED[JobStatus(current)]
