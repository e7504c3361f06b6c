"""The states of everything but the return request (that is ``lifecycle``): each an enum with its
transition table, checked by one function. Columns store the enum's value; code compares enums."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import TypeVar

from portal.domain.errors import Conflict
from portal.domain.text import N_

S = TypeVar("S", bound=StrEnum)


class IllegalTransition(Conflict):
    """A move the transition table does not allow (the thing is already past that point)."""

    default = N_(
        "That step is not possible any more: this has already moved on. Reload the page to see where it stands."
    )

    def __init__(self, current: str, target: str) -> None:
        super().__init__(current=str(current))
        self.target = str(target)


def check(table: Mapping[S, frozenset[S]], enum: type[S], current: str, target: str) -> S:
    """``target`` as the enum when ``table`` allows the move from ``current``, else IllegalTransition."""
    try:
        cur, tgt = enum(current), enum(target)
    except ValueError:
        raise IllegalTransition(current, target) from None
    if tgt not in table[cur]:
        raise IllegalTransition(current, target)
    return tgt


class TicketStatus(StrEnum):
    OPEN = "open"
    WAITING = "waiting"  # on the shopper; clocks paused
    CLOSED = "closed"


TICKET_STATUS_LABELS = {
    TicketStatus.OPEN: N_("in progress"),
    TicketStatus.WAITING: N_("waiting for the shopper"),
    TicketStatus.CLOSED: N_("closed"),
}


class TicketKind(StrEnum):
    """What a ticket is the work of: the return request itself, or a shopper's data request on it."""

    RETURN = "return"
    DATA_REQUEST = "data_request"


TICKET_TRANSITIONS: dict[TicketStatus, frozenset[TicketStatus]] = {
    TicketStatus.OPEN: frozenset({TicketStatus.WAITING, TicketStatus.CLOSED}),
    TicketStatus.WAITING: frozenset({TicketStatus.OPEN, TicketStatus.CLOSED}),
    # A warehouse discrepancy reopens a decided ticket.
    TicketStatus.CLOSED: frozenset({TicketStatus.OPEN}),
}


def check_ticket(current: str, target: str) -> TicketStatus:
    return check(TICKET_TRANSITIONS, TicketStatus, current, target)


class RefundStatus(StrEnum):
    AWAITING_SECOND = "awaiting_second"  # above the threshold: a second finance user must approve
    APPROVED = "approved"
    PROCESSING = "processing"  # claimed by one executor; the gateway call is under way
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # retried with the same idempotency key


REFUND_TRANSITIONS: dict[RefundStatus, frozenset[RefundStatus]] = {
    RefundStatus.AWAITING_SECOND: frozenset({RefundStatus.APPROVED}),
    RefundStatus.APPROVED: frozenset({RefundStatus.PROCESSING}),
    RefundStatus.PROCESSING: frozenset({RefundStatus.SUCCEEDED, RefundStatus.FAILED}),
    RefundStatus.FAILED: frozenset({RefundStatus.APPROVED}),
    RefundStatus.SUCCEEDED: frozenset(),
}

# A failed refund still counts against the order: it is retried with the same key (a timeout may even have paid).
REFUND_ACTIVE = frozenset(RefundStatus)


def check_refund(current: str, target: str) -> RefundStatus:
    return check(REFUND_TRANSITIONS, RefundStatus, current, target)


class StepStatus(StrEnum):
    """An escalation step: waits for its time, is claimed by one worker, fires once."""

    PENDING = "pending"
    CLAIMED = "claimed"
    DONE = "done"
    CANCELLED = "cancelled"  # the clock moved or stopped before the step was due


STEP_TRANSITIONS: dict[StepStatus, frozenset[StepStatus]] = {
    StepStatus.PENDING: frozenset({StepStatus.CLAIMED, StepStatus.CANCELLED}),
    # A claim that expired (worker killed) is claimed again by another worker.
    StepStatus.CLAIMED: frozenset({StepStatus.CLAIMED, StepStatus.DONE, StepStatus.CANCELLED}),
    StepStatus.DONE: frozenset(),
    StepStatus.CANCELLED: frozenset(),
}

# Steps that may still fire (a clock change cancels these).
STEP_OPEN = frozenset({StepStatus.PENDING, StepStatus.CLAIMED})


def check_step(current: str, target: str) -> StepStatus:
    return check(STEP_TRANSITIONS, StepStatus, current, target)


class ScoreState(StrEnum):
    """A photo's wear score: advice for staff, never a decision."""

    PENDING = "pending"
    SCORED = "scored"
    NOT_SCORED = "not_scored"  # no usable model, an unreadable photo, or a warehouse photo


SCORE_TRANSITIONS: dict[ScoreState, frozenset[ScoreState]] = {
    ScoreState.PENDING: frozenset({ScoreState.SCORED, ScoreState.NOT_SCORED}),
    ScoreState.SCORED: frozenset(),
    ScoreState.NOT_SCORED: frozenset(),
}


def check_score(current: str, target: str) -> ScoreState:
    return check(SCORE_TRANSITIONS, ScoreState, current, target)


class LineDecision(StrEnum):
    """A reviewer's decision on one line when approving only some of a request."""

    APPROVED = "approved"
    REJECTED = "rejected"


__all__ = [
    "IllegalTransition",
    "check",
    "TicketStatus",
    "TICKET_TRANSITIONS",
    "check_ticket",
    "RefundStatus",
    "REFUND_TRANSITIONS",
    "REFUND_ACTIVE",
    "check_refund",
    "StepStatus",
    "STEP_TRANSITIONS",
    "STEP_OPEN",
    "check_step",
    "ScoreState",
    "SCORE_TRANSITIONS",
    "check_score",
    "LineDecision",
]
