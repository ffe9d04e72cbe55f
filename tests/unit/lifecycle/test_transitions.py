"""The state machines allow exactly the documented moves, and a move refuses any other source."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from core.states import TERMINAL_JOB_STATES, JobStatus, SegmentStatus
from lifecycle.batches import BATCH_TRANSITIONS, BatchStatus
from lifecycle.deliveries import DeliveryStatus
from lifecycle.transitions import (
    DELIVERY_ABANDON,
    DELIVERY_REDELIVER,
    DELIVERY_TRANSITIONS,
    JOB_CANCEL,
    JOB_CLAIM,
    JOB_FAIL,
    JOB_REQUEUE,
    JOB_SUCCEED,
    JOB_TRANSITIONS,
    SEGMENT_CLAIM,
    SEGMENT_COMPLETE,
    SEGMENT_TRANSITIONS,
    IllegalTransition,
    Transition,
    is_terminal,
    move,
)

TABLES = {
    "job": JOB_TRANSITIONS,
    "segment": SEGMENT_TRANSITIONS,
    "delivery": DELIVERY_TRANSITIONS,
    "batch": BATCH_TRANSITIONS,
}


@dataclass
class Row:
    status: str


def _moves(table: dict[str, Transition[Any]]) -> set[tuple[str, str]]:
    return {(source, t.target_value) for t in table.values() for source in t.source_values}


def test_job_moves_are_exactly_the_documented_ones() -> None:
    assert _moves(JOB_TRANSITIONS) == {
        ("queued", "processing"),
        ("processing", "processing"),  # a probe takes over a dead claim
        ("queued", "canceled"),
        ("queued", "failed"),
        ("processing", "succeeded"),
        ("processing", "failed"),
        ("processing", "canceled"),
        ("processing", "queued"),  # a retryable failure waits for its next attempt
    }


def test_segment_moves_are_exactly_the_documented_ones() -> None:
    assert _moves(SEGMENT_TRANSITIONS) == {
        ("pending", "running"),
        ("running", "running"),  # a dead claim taken over
        ("running", "pending"),
        ("pending", "done"),
        ("running", "done"),
        ("pending", "canceled"),
        ("running", "canceled"),
    }


def test_delivery_moves_are_exactly_the_documented_ones() -> None:
    assert _moves(DELIVERY_TRANSITIONS) == {
        ("pending", "succeeded"),
        ("pending", "pending"),
        ("pending", "failed"),
        # an attempt records its answer whatever happened to the row while it ran
        ("failed", "succeeded"),
        ("failed", "pending"),
        ("failed", "failed"),
        ("succeeded", "succeeded"),
        ("succeeded", "pending"),  # redelivered, or an attempt to retry
        ("succeeded", "failed"),
    }
    assert DELIVERY_ABANDON.source_values == ("pending",)
    assert DELIVERY_REDELIVER.source_values == ("failed", "succeeded")


def test_a_batch_ends_once_from_running() -> None:
    assert _moves(BATCH_TRANSITIONS) == {("running", "completed"), ("running", "canceled")}
    assert not any(t.allows(BatchStatus.COMPLETED) for t in BATCH_TRANSITIONS.values())


@pytest.mark.parametrize("terminal", sorted(TERMINAL_JOB_STATES))
@pytest.mark.parametrize("transition", list(JOB_TRANSITIONS.values()), ids=list(JOB_TRANSITIONS))
def test_ended_jobs_never_move(terminal: JobStatus, transition: Transition[JobStatus]) -> None:
    assert not transition.allows(terminal)


@pytest.mark.parametrize("finished", [SegmentStatus.DONE, SegmentStatus.CANCELED])
def test_finished_segments_never_move(finished: SegmentStatus) -> None:
    assert not any(t.allows(finished) for t in SEGMENT_TRANSITIONS.values())


def test_queued_cannot_succeed_without_processing() -> None:
    assert not JOB_SUCCEED.allows(JobStatus.QUEUED)


@pytest.mark.parametrize("kind", sorted(TABLES))
def test_tables_are_keyed_by_name(kind: str) -> None:
    table = TABLES[kind]
    assert all(name == transition.name for name, transition in table.items())


def test_states_of_each_machine_stay_in_it() -> None:
    for table, states in (
        (JOB_TRANSITIONS, JobStatus),
        (SEGMENT_TRANSITIONS, SegmentStatus),
        (DELIVERY_TRANSITIONS, DeliveryStatus),
        (BATCH_TRANSITIONS, BatchStatus),
    ):
        for transition in table.values():
            assert isinstance(transition.to_state, states)
            assert all(isinstance(state, states) for state in transition.from_states)


def test_source_values_are_stored_strings_in_a_stable_order() -> None:
    assert JOB_FAIL.source_values == ("processing", "queued")
    assert JOB_CANCEL.source_values == JOB_FAIL.source_values
    assert all(type(value) is str for value in JOB_FAIL.source_values)
    assert JOB_REQUEUE.target_value == "queued" and type(JOB_REQUEUE.target_value) is str


def test_only_moves_to_an_end_are_terminal() -> None:
    assert {name for name, t in JOB_TRANSITIONS.items() if is_terminal(t)} == {"succeed", "fail", "cancel"}


def test_move_sets_the_target() -> None:
    row = Row(status="queued")
    move(row, JOB_CLAIM)
    assert row.status == "processing"
    move(row, JOB_CLAIM)  # a takeover keeps it processing
    assert row.status == "processing"
    segment = Row(status="running")
    move(segment, SEGMENT_COMPLETE)
    assert segment.status == "done"


@pytest.mark.parametrize(
    ("status", "transition"),
    [
        ("succeeded", JOB_CANCEL),
        ("queued", JOB_SUCCEED),
        ("done", SEGMENT_CLAIM),
        ("canceled", SEGMENT_COMPLETE),
    ],
)
def test_move_refuses_a_source_it_does_not_allow(status: str, transition: Transition[JobStatus]) -> None:
    row = Row(status=status)
    with pytest.raises(IllegalTransition, match=transition.name):
        move(row, transition)
    assert row.status == status
