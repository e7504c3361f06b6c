"""Reasons back to products: months in the shop's time zone, the "what to fix" score, and
shoppers' comments made safe to show to the product team.

Pure functions over plain values; the queries live in ``portal.services.product_insights``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from portal.domain.errors import InvalidInput
from portal.domain.insights import local_day, local_midnight
from portal.domain.text import N_

_MONTH = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")
FIRST_YEAR, LAST_YEAR = 2000, 2999
BAD_MONTH = N_("Choose a month as YYYY-MM, for example 2026-11.")

# What replaces anything taken out of a comment (the same in every language).
REMOVED = "[…]"
_EMAIL = re.compile(r"[\w.+'-]+\s*(?:@|\(at\)|\[at\])\s*[\w-]+(?:\s*\.\s*[\w-]+)+", re.IGNORECASE)
# Seven or more digits, possibly split by spaces, dots, dashes, slashes or brackets, maybe with a "+".
_PHONE = re.compile(r"(?<![\w])\+?\(?\d(?:[\s().\-/]{0,3}\d){6,}(?![\w])")


def parse_month(value: str | None) -> date:
    """The first day of the month written ``YYYY-MM``; anything else is refused."""
    match = _MONTH.fullmatch((value or "").strip())
    if match is None or not FIRST_YEAR <= int(match.group(1)) <= LAST_YEAR:
        raise InvalidInput(BAD_MONTH)
    return date(int(match.group(1)), int(match.group(2)), 1)


def month_key(month: date) -> str:
    return f"{month.year:04d}-{month.month:02d}"


def next_month(month: date) -> date:
    return date(month.year + (month.month == 12), month.month % 12 + 1, 1)


def previous_month(month: date) -> date:
    return date(month.year - (month.month == 1), (month.month - 2) % 12 + 1, 1)


def months_back(month: date, count: int) -> list[date]:
    """``count`` months ending with ``month``, oldest first."""
    out = [date(month.year, month.month, 1)]
    while len(out) < count:
        out.insert(0, previous_month(out[0]))
    return out


def month_bounds(month: date, timezone: str) -> tuple[datetime, datetime]:
    """The month as a half-open UTC interval [start, end): midnight on its first day to midnight on
    the next month's first day, both in ``timezone`` (the shop's)."""
    return local_midnight(month.replace(day=1), timezone), local_midnight(next_month(month), timezone)


def month_of(instant: datetime, timezone: str) -> date:
    """The shop's month an instant (timezone-aware) falls in."""
    return local_day(instant, timezone).replace(day=1)


def return_rate(returned: int, sold: int) -> float | None:
    """Units returned per unit sold in the month; None when nothing was sold in it."""
    return returned / sold if sold else None


def fix_score(returned: int, sold: int) -> float:
    """Return rate times return volume: a product many people send back, and a large share of
    those who bought it, comes first. With no sales in the month every return counts whole."""
    rate = return_rate(returned, sold)
    return returned * (rate if rate is not None else 1.0)


@dataclass(frozen=True)
class ProductMonth:
    """One product's month: units sold, units sent back and the requests they came in."""

    product_code: str
    name: str
    category: str
    sold: int
    returned: int
    requests: int

    @property
    def rate(self) -> float | None:
        return return_rate(self.returned, self.sold)

    @property
    def score(self) -> float:
        return fix_score(self.returned, self.sold)


def rank_products(rows: Iterable[ProductMonth]) -> list[ProductMonth]:
    """Products with returns, highest score first (then most returned, then by code)."""
    with_returns = [row for row in rows if row.returned > 0]
    return sorted(with_returns, key=lambda r: (-r.score, -r.returned, r.product_code))


def _known_pattern(value: str) -> re.Pattern[str] | None:
    value = value.strip()
    if len(value) < 2:
        return None
    escaped = re.escape(value)
    if value.isascii():  # whole words only, so "Li" does not eat "like"
        return re.compile(rf"(?<!\w){escaped}(?!\w)", re.IGNORECASE)
    return re.compile(escaped, re.IGNORECASE)


def scrub_comment(text: str, known: Sequence[str] = (), names: Sequence[str] = ()) -> str:
    """A shopper's comment without email addresses or phone numbers, and without the ``known``
    personal values of its order (order number, postcode, ...) or its shopper's ``names`` (whole,
    and each part of a name on its own)."""
    out = _PHONE.sub(REMOVED, _EMAIL.sub(REMOVED, text or ""))
    words = [value for value in (*known, *names) if value]
    for name in names:
        words.extend(part for part in (name or "").split() if part != name)
    for value in sorted(set(words), key=len, reverse=True):
        pattern = _known_pattern(value)
        if pattern is not None:
            out = pattern.sub(REMOVED, out)
    return out.strip()
