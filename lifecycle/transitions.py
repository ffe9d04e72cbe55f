"""Every status change of a job, a segment and a webhook delivery, named with its allowed sources.

One table per state machine (a batch's, over its own states, is ``lifecycle.batches``'). Whoever
writes a status goes through a transition: a conditional UPDATE puts ``transition.source_values``
in its WHERE clause and ``transition.target_value`` in its SET, a row held under its lock is moved
by ``move``. No database here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, Protocol, TypeVar

from core.states import ACTIVE_JOB_STATES, TERMINAL_JOB_STATES, JobStatus, SegmentStatus
from lifecycle.deliveries import DeliveryStatus

__all__ = [
    "DELIVERY_ABANDON",
    "DELIVERY_FAIL",
    "DELIVERY_REDELIVER",
    "DELIVERY_RETRY",
    "DELIVERY_SUCCEED",
    "DELIVERY_TRANSITIONS",
    "JOB_CANCEL",
    "JOB_CLAIM",
    "JOB_FAIL",
    "JOB_REQUEUE",
    "JOB_SUCCEED",
    "JOB_TRANSITIONS",
    "SEGMENT_CANCEL",
    "SEGMENT_CLAIM",
    "SEGMENT_COMPLETE",
    "SEGMENT_RELEASE",
    "SEGMENT_TRANSITIONS",
    "IllegalTransition",
    "Transition",
    "is_terminal",
    "move",
]

State = TypeVar("State", bound=StrEnum)


class IllegalTransition(ValueError):  # noqa: N818 - named for what it refuses
    """A row was asked to make a move its current status does not allow."""


@dataclass(frozen=True)
class Transition(Generic[State]):
    name: str
    from_states: frozenset[State]
    to_state: State

    def allows(self, current: str) -> bool:
        """Whether a row in ``current`` may make this move."""
        return current in self.source_values

    @property
    def source_values(self) -> tuple[str, ...]:
        """The allowed sources as stored (for ``status IN (...)``), in a stable order."""
        return tuple(sorted(state.value for state in self.from_states))

    @property
    def target_value(self) -> str:
        return self.to_state.value


class _HasStatus(Protocol):
    status: str


def move(row: _HasStatus, transition: Transition[State]) -> None:
    """Moves a row its caller holds under lock; raises IllegalTransition from any other source."""
    if not transition.allows(row.status):
        raise IllegalTransition(f"{transition.name}: not allowed from {row.status}")
    row.status = transition.target_value


def _table(*transitions: Transition[State]) -> dict[str, Transition[State]]:
    return {transition.name: transition for transition in transitions}


# A probe claims a queued job, or takes over the claim of a processing one whose worker died.
JOB_CLAIM = Transition("claim", frozenset({JobStatus.QUEUED, JobStatus.PROCESSING}), JobStatus.PROCESSING)
# An unplanned job waits for its next attempt (a retryable failure, a node that restarted).
JOB_REQUEUE = Transition("requeue", frozenset({JobStatus.PROCESSING}), JobStatus.QUEUED)
JOB_SUCCEED = Transition("succeed", frozenset({JobStatus.PROCESSING}), JobStatus.SUCCEEDED)
JOB_FAIL = Transition("fail", ACTIVE_JOB_STATES, JobStatus.FAILED)
JOB_CANCEL = Transition("cancel", ACTIVE_JOB_STATES, JobStatus.CANCELED)
JOB_TRANSITIONS = _table(JOB_CLAIM, JOB_REQUEUE, JOB_SUCCEED, JOB_FAIL, JOB_CANCEL)

_UNFINISHED_SEGMENT = frozenset({SegmentStatus.PENDING, SegmentStatus.RUNNING})
# Running only for a takeover: the same message redelivered, or a claim past the time limit.
SEGMENT_CLAIM = Transition("claim", _UNFINISHED_SEGMENT, SegmentStatus.RUNNING)
SEGMENT_RELEASE = Transition("release", frozenset({SegmentStatus.RUNNING}), SegmentStatus.PENDING)
# Pending too: a segment released for a retry may still be stored by the attempt that outran it.
SEGMENT_COMPLETE = Transition("complete", _UNFINISHED_SEGMENT, SegmentStatus.DONE)
SEGMENT_CANCEL = Transition("cancel", _UNFINISHED_SEGMENT, SegmentStatus.CANCELED)
SEGMENT_TRANSITIONS = _table(SEGMENT_CLAIM, SEGMENT_RELEASE, SEGMENT_COMPLETE, SEGMENT_CANCEL)

# An attempt's answer is written whatever happened to the row while it ran (the receiver's answer is
# still what happened): failed when its endpoint was deleted or disabled meanwhile, even succeeded
# when a claim outlived its deadline and another attempt finished first.
_ATTEMPTED = frozenset(DeliveryStatus)
DELIVERY_SUCCEED = Transition("succeed", _ATTEMPTED, DeliveryStatus.SUCCEEDED)
# Another attempt is due later (the schedule is not spent).
DELIVERY_RETRY = Transition("retry", _ATTEMPTED, DeliveryStatus.PENDING)
# The schedule ran out, or the receiver answered what no retry changes (410 included).
DELIVERY_FAIL = Transition("fail", _ATTEMPTED, DeliveryStatus.FAILED)
# Never attempted again: its endpoint was deleted or disabled.
DELIVERY_ABANDON = Transition("abandon", frozenset({DeliveryStatus.PENDING}), DeliveryStatus.FAILED)
# A finished delivery starts a new series of attempts.
DELIVERY_REDELIVER = Transition(
    "redeliver", frozenset({DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED}), DeliveryStatus.PENDING
)
DELIVERY_TRANSITIONS = _table(
    DELIVERY_SUCCEED, DELIVERY_RETRY, DELIVERY_FAIL, DELIVERY_ABANDON, DELIVERY_REDELIVER
)


def is_terminal(transition: Transition[JobStatus]) -> bool:
    """Whether a job's move ends it (its end is recorded in the same transaction)."""
    return transition.to_state in TERMINAL_JOB_STATES
