"""The guided return: one step per screen (items, reasons, details, outcome, review), then submit.

The choices travel with the form: each step shows its own fields and carries the others as hidden
fields, so Back, a reload and a refused submit keep them without any state on the server; photos
are kept by ``staging``. Each step checks only its own choices, marks the field and names the
item; a later step is shown only when every earlier one is complete.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from flask_babel import gettext

from portal.domain.reasons import REASONS, Outcome
from portal.domain.text import N_
from portal.web.shop.forms import ReturnForm

STEPS = ("items", "reasons", "details", "outcome", "review")
STEP_LABELS = {
    "items": N_("Items"),
    "reasons": N_("Reason"),
    "details": N_("Details"),
    "outcome": N_("Your choice"),
    "review": N_("Review"),
}
# The fields each step shows; every other field of a line is carried as a hidden input.
STEP_FIELDS = {
    "items": ("quantity",),
    "reasons": ("reason",),
    "details": ("sub_reason", "comment"),
    "outcome": ("outcome", "exchange_sku"),
    "review": (),
}
CARRIED = ("quantity", "reason", "sub_reason", "comment", "outcome", "exchange_sku")


@dataclass(frozen=True)
class Rules:
    """What the checks need to know besides the form."""

    photo_reasons: Collection[str]
    photos_kept: Mapping[str, int]  # line id -> photos kept for it
    outcomes: Collection[str]  # the outcomes this order allows
    exchange_options: Mapping[str, Collection[str]]  # line id -> SKUs it can be exchanged for


def apply_picks(form: ReturnForm, posted: Mapping[str, str]) -> None:
    """On the items step a card's checkbox says whether the line goes back, and its quantity (shown
    only when more than one unit can go back) how many; an unticked card returns nothing."""
    for entry in form.lines.entries:
        if f"{entry.name}-pick" not in posted:
            entry.quantity.data = 0
        elif not isinstance(entry.quantity.data, int) or entry.quantity.data < 1:
            entry.quantity.data = 1


def chosen(form: ReturnForm) -> list:
    """The entries of the lines going back."""
    return [e for e in form.lines.entries if isinstance(e.quantity.data, int) and e.quantity.data > 0]


def needs_photos(entry, rules: Rules) -> bool:
    return entry.reason.data in rules.photo_reasons


def _mark(field, message: str, name: str, found: list[str]) -> None:
    field.errors = [*field.errors, message]
    found.append(f"{name}: {message}")


def problems(step: str, form: ReturnForm, rules: Rules) -> list[str]:
    """What is missing or wrong on ``step``: each field is marked and each message names the item."""
    found: list[str] = []
    if step == "items":
        for entry in form.lines.entries:
            for error in entry.quantity.errors:
                found.append(str(error))
        if not found and not chosen(form):
            found.append(gettext("Choose at least one item to return."))
        return found
    for entry in chosen(form):
        line = getattr(entry, "order_line", None)
        name = line.product_name if line is not None else entry.line_id.data
        reason = REASONS.get(entry.reason.data or "")
        if step == "reasons" and reason is None:
            _mark(entry.reason, gettext("Choose a reason."), name, found)
        elif step == "details" and reason is not None:
            if entry.sub_reason.data and reason.sub_reason(entry.sub_reason.data) is None:
                entry.sub_reason.data = ""  # left from another reason: not a problem, just gone
            if needs_photos(entry, rules) and not rules.photos_kept.get(entry.line_id.data, 0):
                _mark(entry.photos, gettext("Please add at least one photo that shows the problem."), name, found)
        elif step == "outcome":
            outcome = entry.outcome.data or ""
            options = rules.exchange_options.get(entry.line_id.data, ())
            if outcome not in rules.outcomes or (outcome == Outcome.EXCHANGE and not options):
                _mark(entry.outcome, gettext("Choose what you would like."), name, found)
            elif outcome == Outcome.EXCHANGE and entry.exchange_sku.data not in options:
                _mark(entry.exchange_sku, gettext("Choose the size or colour you want instead."), name, found)
    return found


def first_incomplete(form: ReturnForm, rules: Rules) -> str:
    """The first step with something missing, or "review" when every choice is made."""
    for step in STEPS[:-1]:
        if problems(step, form, rules):
            return step
    return "review"


def clear_marks(form: ReturnForm) -> None:
    for entry in form.lines.entries:
        for name in (*CARRIED, "photos"):
            getattr(entry, name).errors = []


def target_step(current: str, go: str, complete_until: str, current_ok: bool) -> tuple[str, bool]:
    """Where the shopper lands, and whether the current step's problems are shown.

    ``go`` is "next", "back" or a step already passed (the review page's Change buttons); the
    shopper never lands past ``complete_until``, the first incomplete step.
    """
    here = STEPS.index(current)
    if go == "back":
        wanted = max(here - 1, 0)
    elif go in STEPS and STEPS.index(go) <= here:
        wanted = STEPS.index(go)
    elif current_ok:
        wanted = min(here + 1, len(STEPS) - 1)
    else:
        wanted = here
    landed = min(wanted, STEPS.index(complete_until))
    show = landed == here and go == "next" or landed < wanted
    return STEPS[landed], show
