"""Warehouse receiving: grades, dispositions and discrepancies, checked before anything is saved."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

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


class ReceiptError(ValueError):
    """The warehouse input does not add up; nothing is saved."""


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


def check_receipt(expected: Mapping[int, int], lines: Sequence[ReceivedLine], findings: Sequence[Finding]) -> list[Finding]:
    """Validate what was received against what was expected; returns all discrepancies.

    Fewer units than expected adds a ``short_quantity`` finding (or ``missing`` when
    none arrived) unless the worker already recorded one for that line. More units
    than expected is refused: extra items are recorded as an ``extra`` finding.
    """
    seen: set[int] = set()
    out = list(findings)
    for finding in findings:
        if finding.kind not in DISCREPANCIES:
            raise ReceiptError(f"unknown discrepancy {finding.kind!r}")
        if finding.line_id is not None and finding.line_id not in expected:
            raise ReceiptError(f"line {finding.line_id} is not in this parcel")
    noted = {(f.line_id, f.kind) for f in findings}
    for line in lines:
        if line.line_id not in expected:
            raise ReceiptError(f"line {line.line_id} is not in this parcel")
        if line.line_id in seen:
            raise ReceiptError(f"line {line.line_id} is listed twice")
        seen.add(line.line_id)
        if line.quantity < 0 or line.quantity > expected[line.line_id]:
            raise ReceiptError(f"line {line.line_id}: received quantity must be between 0 and {expected[line.line_id]}")
        if line.quantity and line.grade not in GRADES:
            raise ReceiptError(f"line {line.line_id}: choose a grade")
        if line.quantity and line.disposition not in DISPOSITIONS:
            raise ReceiptError(f"line {line.line_id}: choose what happens to the item")
        short = expected[line.line_id] - line.quantity
        if short and not any((line.line_id, k) in noted for k in ("short_quantity", "missing", "wrong_item")):
            kind = "missing" if line.quantity == 0 else "short_quantity"
            out.append(Finding(kind, line.line_id, short, "recorded by the count"))
    missing_lines = set(expected) - seen
    if missing_lines:
        raise ReceiptError(f"lines {sorted(missing_lines)} were not counted")
    return out
