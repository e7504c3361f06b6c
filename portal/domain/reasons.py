"""The catalogue of return reasons, responsibilities and outcomes.

Guarantees: reason codes are unique and equal to their ``REASONS`` key; every
reason's responsibility is one of ``RESPONSIBILITIES``; sub-reason codes are
unique within their reason; every label is an English message id marked with
``N_`` for translation.

Responsibility says who caused the problem and drives returnless refunds and
reporting: ``seller`` (we sent the wrong or a faulty thing), ``logistics``
(the carrier lost, broke or delayed it), ``customer`` (nothing wrong with the
item). ``quality`` reasons get the longer quality window.

``missing_parts`` is a logistics reason (parts usually go missing from a
damaged or opened parcel) and is deliberately *not* a quality reason: a
missing part is obvious when the parcel is unpacked, so the general window is
long enough. It is still not the shopper's fault, so it qualifies for a
returnless refund under the default policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final, Literal

from portal.domain.text import N_

Responsibility = Literal["seller", "logistics", "customer"]

RESPONSIBILITIES: Final[tuple[str, ...]] = ("seller", "logistics", "customer")

RESPONSIBILITY_LABELS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "seller": N_("Our mistake"),
        "logistics": N_("Delivery problem"),
        "customer": N_("Customer's choice"),
    }
)


class Outcome(StrEnum):
    """What the shopper asks for in return for an item."""

    REFUND = "refund"
    STORE_CREDIT = "store_credit"
    EXCHANGE = "exchange"


OUTCOMES: Final[tuple[str, ...]] = tuple(Outcome)

OUTCOME_LABELS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "refund": N_("Refund to the original payment method"),
        "store_credit": N_("Store credit"),
        "exchange": N_("Exchange for another size or colour"),
    }
)


@dataclass(frozen=True)
class SubReason:
    """A more precise reason inside a reason; ``label`` is an ``N_`` message id."""

    code: str
    label: str


@dataclass(frozen=True)
class Reason:
    """One return reason: code, ``N_`` label, who is responsible, quality flag, sub-reasons."""

    code: str
    label: str
    responsibility: Responsibility
    quality: bool
    sub_reasons: tuple[SubReason, ...] = ()

    def sub_reason(self, code: str) -> SubReason | None:
        """The sub-reason with ``code``, or None when it does not belong to this reason."""
        for sub in self.sub_reasons:
            if sub.code == code:
                return sub
        return None


_CATALOGUE: tuple[Reason, ...] = (
    Reason(
        "defective",
        N_("The item is faulty"),
        "seller",
        True,
        (
            SubReason("stopped_working", N_("It stopped working")),
            SubReason("poor_stitching", N_("The stitching is coming apart")),
            SubReason("stain_on_arrival", N_("It had a stain when it arrived")),
        ),
    ),
    Reason(
        "damaged",
        N_("The item arrived damaged"),
        "logistics",
        True,
        (
            SubReason("crushed_parcel", N_("The parcel was crushed")),
            SubReason("broken_in_transit", N_("It was broken during delivery")),
        ),
    ),
    Reason(
        "wrong_item",
        N_("I received the wrong item"),
        "seller",
        True,
        (
            SubReason("wrong_size_sent", N_("Wrong size sent")),
            SubReason("wrong_colour_sent", N_("Wrong colour sent")),
            SubReason("different_product", N_("A different product was sent")),
        ),
    ),
    Reason(
        "not_as_described",
        N_("The item is not as described"),
        "seller",
        True,
        (
            SubReason("colour", N_("The colour is different from the photos")),
            SubReason("material", N_("The material is different from the description")),
            SubReason("size_chart", N_("The size does not match the size chart")),
        ),
    ),
    Reason(
        "missing_parts",
        N_("Parts or accessories are missing"),
        "logistics",
        False,
        (
            SubReason("missing_accessory", N_("An accessory is missing")),
            SubReason("incomplete_set", N_("Part of the set is missing")),
        ),
    ),
    Reason(
        "size_fit",
        N_("It doesn't fit"),
        "customer",
        False,
        (
            SubReason("too_small", N_("Too small")),
            SubReason("too_large", N_("Too large")),
        ),
    ),
    Reason(
        "changed_mind",
        N_("I changed my mind"),
        "customer",
        False,
        (
            SubReason("no_longer_needed", N_("I no longer need it")),
            SubReason("found_better_price", N_("I found a better price")),
            SubReason("ordered_by_mistake", N_("I ordered it by mistake")),
        ),
    ),
    Reason(
        "late_delivery",
        N_("It arrived too late"),
        "logistics",
        False,
    ),
)

REASONS: Final[dict[str, Reason]] = {reason.code: reason for reason in _CATALOGUE}
"""All reasons by code, in the order the shopper sees them."""

if len(REASONS) != len(_CATALOGUE):  # guards edits to the catalogue
    raise AssertionError("duplicate reason code in the catalogue")


def responsibility_of(code: str) -> str | None:
    """Who is responsible for reason ``code``; None for an unknown code (never raises)."""
    reason = REASONS.get(code)
    return reason.responsibility if reason is not None else None


def quality_reasons() -> frozenset[str]:
    """Codes of the reasons that get the longer quality window."""
    return frozenset(code for code, reason in REASONS.items() if reason.quality)
