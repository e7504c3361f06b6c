"""Return request states and the transitions between them."""

from __future__ import annotations

from enum import StrEnum

from portal.domain.states import IllegalTransition, check
from portal.domain.text import N_


class Status(StrEnum):
    SUBMITTED = "submitted"
    PENDING_REVIEW = "pending_review"
    APPROVED = "approved"
    AWAITING_SHOPPER = "awaiting_shopper"
    LABEL_ISSUED = "label_issued"
    IN_TRANSIT = "in_transit"
    RECEIVED = "received"
    INSPECTED = "inspected"
    DISCREPANCY = "discrepancy"
    REFUNDED = "refunded"
    EXCHANGED = "exchanged"
    CLOSED = "closed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


LABELS = {
    Status.SUBMITTED: N_("Submitted"),
    Status.PENDING_REVIEW: N_("Being reviewed"),
    Status.APPROVED: N_("Approved"),
    Status.AWAITING_SHOPPER: N_("Waiting for your reply"),
    Status.LABEL_ISSUED: N_("Pickup code issued"),
    Status.IN_TRANSIT: N_("On its way back"),
    Status.RECEIVED: N_("Received at the warehouse"),
    Status.INSPECTED: N_("Inspected"),
    Status.DISCREPANCY: N_("Being checked"),
    Status.REFUNDED: N_("Refunded"),
    Status.EXCHANGED: N_("Exchange sent"),
    Status.CLOSED: N_("Closed"),
    Status.REJECTED: N_("Not accepted"),
    Status.CANCELLED: N_("Cancelled"),
}

# Staff read the same statuses in their own words ("waiting for the shopper", not "for your reply").
STAFF_LABELS = {
    **LABELS,
    Status.PENDING_REVIEW: N_("Pending review"),
    Status.AWAITING_SHOPPER: N_("Waiting for the shopper"),
    Status.DISCREPANCY: N_("Discrepancy found"),
    Status.REJECTED: N_("Rejected"),
}

TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.SUBMITTED: frozenset({Status.APPROVED, Status.PENDING_REVIEW, Status.REJECTED, Status.CANCELLED}),
    Status.PENDING_REVIEW: frozenset({Status.APPROVED, Status.REJECTED, Status.AWAITING_SHOPPER, Status.CANCELLED}),
    # Asked during review, the answer goes back to review; asked about a discrepancy, back to it.
    Status.AWAITING_SHOPPER: frozenset({Status.PENDING_REVIEW, Status.DISCREPANCY, Status.CANCELLED}),
    Status.APPROVED: frozenset({Status.LABEL_ISSUED, Status.REFUNDED, Status.EXCHANGED, Status.CANCELLED}),
    Status.LABEL_ISSUED: frozenset({Status.IN_TRANSIT, Status.RECEIVED, Status.CANCELLED}),
    Status.IN_TRANSIT: frozenset({Status.RECEIVED}),
    Status.RECEIVED: frozenset({Status.INSPECTED, Status.DISCREPANCY}),
    Status.INSPECTED: frozenset({Status.REFUNDED, Status.EXCHANGED, Status.DISCREPANCY}),
    Status.DISCREPANCY: frozenset(
        {Status.INSPECTED, Status.AWAITING_SHOPPER, Status.REFUNDED, Status.EXCHANGED, Status.CLOSED}
    ),
    Status.REFUNDED: frozenset({Status.CLOSED}),
    Status.EXCHANGED: frozenset({Status.CLOSED}),
    Status.CLOSED: frozenset(),
    Status.REJECTED: frozenset(),
    Status.CANCELLED: frozenset(),
}

# The shopper may cancel while nothing has shipped.
CANCELLABLE = frozenset(
    {Status.SUBMITTED, Status.PENDING_REVIEW, Status.AWAITING_SHOPPER, Status.APPROVED, Status.LABEL_ISSUED}
)
# Requests in these states no longer hold quantity against the order.
RELEASED = frozenset({Status.CANCELLED, Status.REJECTED})


def check_transition(current: str, target: str) -> Status:
    """Return the target status if the move is allowed, else raise IllegalTransition."""
    return check(TRANSITIONS, Status, current, target)


# The statuses in which the shopper's status page keeps polling: something may change without them acting.
POLLING = frozenset(
    {
        Status.SUBMITTED,
        Status.PENDING_REVIEW,
        Status.AWAITING_SHOPPER,
        Status.APPROVED,
        Status.LABEL_ISSUED,
        Status.IN_TRANSIT,
        Status.RECEIVED,
        Status.INSPECTED,
        Status.DISCREPANCY,
    }
)

__all__ = [
    "Status",
    "LABELS",
    "TRANSITIONS",
    "CANCELLABLE",
    "RELEASED",
    "POLLING",
    "IllegalTransition",
    "check_transition",
]
