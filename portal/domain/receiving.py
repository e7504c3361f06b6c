"""Warehouse receiving: grades, dispositions and discrepancies, checked before anything is saved."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from portal.domain.errors import InvalidInput
from portal.domain.lifecycle import Status
from portal.domain.text import N_

GRADES = {"A": N_("A · as new"), "B": N_("B · opened"), "C": N_("C · worn"), "D": N_("D · damaged")}
WORN_GRADES = frozenset({"C", "D"})
DISPOSITIONS = {
    "restock": N_("Restock"),
    "refurbish": N_("Refurbish"),
    "outlet": N_("Outlet"),
    "destroy": N_("Destroy"),
    "return_to_vendor": N_("Return to vendor"),
}
# Who is responsible for each discrepancy (decides who pays and which team sees it).
DISCREPANCIES = {
    "wrong_item": ("customer", N_("Wrong item in the parcel")),
    "missing": ("customer", N_("Item missing from the parcel")),
    "extra": ("customer", N_("Extra item in the parcel")),
    "damaged_in_transit": ("logistics", N_("Damaged in transit")),
    "short_quantity": ("customer", N_("Fewer units than expected")),
}


# What happens to an item the agent refuses after a discrepancy, as the shopper is told.
REFUSED_FATES = {
    "return_to_shopper": N_("We will send it back to you at our cost."),
    "hold_for_collection": N_("We keep it for you to collect for 30 days."),
    "dispose": N_("It cannot be resold or sent back and will be recycled."),
}


def check_refusal(line_ids: set[int], refusable: set[int], reason: str, fate: str) -> None:
    """Refusing items after a discrepancy needs lines that are still accepted, a reason the shopper
    will read and what happens to the items."""
    if not line_ids:
        raise InvalidInput(N_("Choose the items you refuse."))
    if not line_ids <= refusable:
        raise InvalidInput(N_("Only items still part of this return can be refused."))
    if not reason.strip():
        raise InvalidInput(N_("Tell the shopper why the items are refused."))
    if fate not in REFUSED_FATES:
        raise InvalidInput(N_("Choose what happens to the refused items."))


class ReceiptError(InvalidInput):
    """The warehouse input does not add up; nothing is saved. ``line_id`` names the line at fault and
    ``field`` what about it (quantity, grade, disposition, issue), so a form can show the error beside it."""

    def __init__(
        self, message: str, /, *, line_id: int | None = None, field: str | None = None, **params: object
    ) -> None:
        super().__init__(message, line=line_id or 0, **params)
        self.line_id = line_id
        self.field = field


def finding_units(kind: str, expected: int, received: int) -> int:
    """Units a discrepancy concerns: damage concerns the units that arrived, the other problems the
    units that did not (at least one, so an extra or wrong item is counted)."""
    received = max(received, 0)
    units = received if kind == "damaged_in_transit" else max(expected - received, 0)
    return units or 1


@dataclass(frozen=True)
class ReceivedLine:
    line_id: int
    quantity: int
    grade: str
    wear_confirmed: bool
    disposition: str
    note: str = ""


@dataclass(frozen=True)
class Finding:
    kind: str
    line_id: int | None
    quantity: int
    note: str

    @property
    def responsibility(self) -> str:
        return DISCREPANCIES[self.kind][0]


def check_receipt(
    expected: Mapping[int, int], lines: Sequence[ReceivedLine], findings: Sequence[Finding]
) -> list[Finding]:
    """Validate what was received against what was expected; returns all discrepancies.

    Fewer units than expected adds a ``short_quantity`` finding (or ``missing`` when
    none arrived) unless the worker already recorded one for that line. More units
    than expected is refused: extra items are recorded as an ``extra`` finding.
    """
    seen: set[int] = set()
    out = list(findings)
    for finding in findings:
        if finding.kind not in DISCREPANCIES:
            raise ReceiptError(N_("Choose a discrepancy from the list."), line_id=finding.line_id, field="issue")
        if finding.line_id is not None and finding.line_id not in expected:
            raise ReceiptError(N_("Line %(line)d is not in this parcel."), line_id=finding.line_id)
    noted = {(f.line_id, f.kind) for f in findings}
    for line in lines:
        if line.line_id not in expected:
            raise ReceiptError(N_("Line %(line)d is not in this parcel."), line_id=line.line_id)
        if line.line_id in seen:
            raise ReceiptError(N_("Line %(line)d is listed twice."), line_id=line.line_id)
        seen.add(line.line_id)
        if line.quantity < 0 or line.quantity > expected[line.line_id]:
            raise ReceiptError(
                N_("Line %(line)d: the received quantity must be between 0 and %(max)d."),
                line_id=line.line_id,
                field="quantity",
                max=expected[line.line_id],
            )
        if line.quantity and line.grade not in GRADES:
            raise ReceiptError(N_("Line %(line)d: choose a grade."), line_id=line.line_id, field="grade")
        if line.quantity and line.disposition not in DISPOSITIONS:
            raise ReceiptError(
                N_("Line %(line)d: choose what happens to the item."), line_id=line.line_id, field="disposition"
            )
        if line.quantity < expected[line.line_id] and not any(
            (line.line_id, k) in noted for k in ("short_quantity", "missing", "wrong_item")
        ):
            kind = "missing" if line.quantity == 0 else "short_quantity"
            out.append(
                Finding(
                    kind,
                    line.line_id,
                    finding_units(kind, expected[line.line_id], line.quantity),
                    "recorded by the count",
                )
            )
    missing_lines = set(expected) - seen
    if missing_lines:
        raise ReceiptError(
            N_("Some lines were not counted: %(lines)s."), lines=", ".join(map(str, sorted(missing_lines)))
        )
    return out


class ScanOutcome(StrEnum):
    """What a scanned code that matches a return means at the warehouse door."""

    RECEIVE = "receive"  # on its way (or handed in before the courier's scan): count it
    NOT_SHIPPED = "not_shipped"  # approved, but no pickup yet
    NOT_APPROVED = "not_approved"  # still being decided
    NO_RETURN = "no_return"  # settled without the item coming back
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    ALREADY_RECEIVED = "already"


# The staff's sentence for each outcome (with %(rma)s and %(status)s) and how loudly it speaks:
# "bad" means this parcel must not be received, "warn" that it need not be.
SCAN_MESSAGES: dict[ScanOutcome, tuple[str, str]] = {
    ScanOutcome.NOT_SHIPPED: (
        N_("Not shipped yet: %(rma)s is approved, but the courier has not picked it up."),
        "warn",
    ),
    ScanOutcome.NOT_APPROVED: (
        N_("Not approved yet: %(rma)s is %(status)s. Do not receive it; pass the parcel to customer service."),
        "bad",
    ),
    ScanOutcome.NO_RETURN: (
        N_("No parcel expected: %(rma)s is settled without sending the item back (%(status)s)."),
        "warn",
    ),
    ScanOutcome.CANCELLED: (
        N_("Cancelled: %(rma)s was cancelled. Do not receive it; pass the parcel to customer service."),
        "bad",
    ),
    ScanOutcome.REJECTED: (
        N_("Rejected: %(rma)s was not accepted. Do not receive it; pass the parcel to customer service."),
        "bad",
    ),
    ScanOutcome.ALREADY_RECEIVED: (N_("Already received: %(rma)s is %(status)s."), "warn"),
}

_UNDECIDED = frozenset({Status.SUBMITTED, Status.PENDING_REVIEW, Status.AWAITING_SHOPPER})
_SETTLED = frozenset({Status.REFUNDED, Status.EXCHANGED, Status.CLOSED})


def scan_outcome(status: str, returnless: bool, received: bool) -> ScanOutcome:
    """What to do with a scanned parcel, from its return's status, whether the return needs the item
    back at all, and whether the warehouse ever received it (a question to the shopper about a
    discrepancy comes after the receipt)."""
    current = Status(status)
    if received:
        return ScanOutcome.ALREADY_RECEIVED
    if current == Status.CANCELLED:
        return ScanOutcome.CANCELLED
    if current == Status.REJECTED:
        return ScanOutcome.REJECTED
    if current in _UNDECIDED:
        return ScanOutcome.NOT_APPROVED
    if returnless or current in _SETTLED:
        return ScanOutcome.NO_RETURN
    if current == Status.APPROVED:
        return ScanOutcome.NOT_SHIPPED
    if current in (Status.LABEL_ISSUED, Status.IN_TRANSIT):
        return ScanOutcome.RECEIVE
    return ScanOutcome.ALREADY_RECEIVED
