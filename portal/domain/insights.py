"""The arithmetic of the insights dashboard: periods in the shop's time zone, rates, percentiles and
the alert thresholds. Pure: the queries that feed it live in ``portal.services.insights``, so daily
rollups can replace them later without touching these rules."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from portal.domain.text import N_

PERIOD_DAYS = {"7": 7, "30": 30, "90": 90}
PERIODS = ("7", "30", "90", "month")
PERIOD_LABELS = {
    "7": N_("Last 7 days"),
    "30": N_("Last 30 days"),
    "90": N_("Last 90 days"),
    "month": N_("Calendar month"),
}
DEFAULT_PERIOD = "30"

# Backlog age buckets, in hours since the ticket was opened (upper bounds; the last is open-ended).
AGE_BUCKETS = (("lt1d", 24), ("1to3d", 72), ("3to7d", 168), ("gt7d", None))
AGE_LABELS = {
    "lt1d": N_("Under a day"),
    "1to3d": N_("1 to 3 days"),
    "3to7d": N_("3 to 7 days"),
    "gt7d": N_("Over 7 days"),
}

# Net promoter score: 9-10 promote, 0-6 detract.
PROMOTER_FROM = 9
DETRACTOR_UPTO = 6


class PeriodError(ValueError):
    """A period or month in the address that does not exist."""


@dataclass(frozen=True)
class Period:
    """Local calendar days ``first``..``last`` (inclusive) in ``tz``, and the UTC instants they span."""

    kind: str
    first: date
    last: date
    tz: str

    @property
    def start(self) -> datetime:
        return local_midnight(self.first, self.tz)

    @property
    def end(self) -> datetime:
        """Exclusive: the first instant of the day after ``last``."""
        return local_midnight(self.last + timedelta(days=1), self.tz)

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range((self.last - self.first).days + 1)]

    @property
    def key(self) -> str:
        """Names the period in an alert's once-only key."""
        return f"{self.kind}:{self.first.isoformat()}:{self.last.isoformat()}"


def local_midnight(day: date, tz: str) -> datetime:
    """The UTC instant a local day begins (midnight always exists in the zones shops use)."""
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(tz)).astimezone(UTC)


def local_day(at: datetime, tz: str) -> date:
    """The shop's calendar day of an instant: 23:30 in Shanghai is that day, not the UTC one."""
    return at.astimezone(ZoneInfo(tz)).date()


def parse_month(value: str) -> date:
    """``YYYY-MM`` to the first day of that month."""
    try:
        year, month = value.split("-")
        return date(int(year), int(month), 1)
    except ValueError as exc:
        raise PeriodError(value) from exc


def period_for(kind: str, today: date, tz: str, month: str | None = None) -> Period:
    """The last 7, 30 or 90 days up to and including ``today``, or a calendar month (this one by default)."""
    if kind in PERIOD_DAYS:
        return Period(kind, today - timedelta(days=PERIOD_DAYS[kind] - 1), today, tz)
    if kind == "month":
        first = parse_month(month) if month else today.replace(day=1)
        following = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
        return Period(kind, first, following - timedelta(days=1), tz)
    raise PeriodError(kind)


def _offset_minutes(at: datetime, zone: ZoneInfo) -> int:
    offset = at.astimezone(zone).utcoffset()
    return int(offset.total_seconds() // 60) if offset is not None else 0


def offset_segments(start: datetime, end: datetime, tz: str) -> list[tuple[datetime, datetime, int]]:
    """Split ``[start, end)`` into stretches with one UTC offset each: ``(from, to, minutes east of UTC)``.

    Within a stretch the local day of an instant is the UTC date of ``instant + offset``, which any
    database can compute; a period crosses at most a few daylight-saving changes."""
    zone = ZoneInfo(tz)
    segments: list[tuple[datetime, datetime, int]] = []
    cursor = start
    while cursor < end:
        offset = _offset_minutes(cursor, zone)
        step = cursor
        # Walk a day at a time to the first day whose end has another offset, then bisect to the minute.
        while step < end and _offset_minutes(min(step + timedelta(days=1), end), zone) == offset:
            step = min(step + timedelta(days=1), end)
        if step >= end:
            segments.append((cursor, end, offset))
            break
        low, high = step, min(step + timedelta(days=1), end)
        while high - low > timedelta(minutes=1):
            middle = low + (high - low) / 2
            if _offset_minutes(middle, zone) == offset:
                low = middle
            else:
                high = middle
        change = high.replace(second=0, microsecond=0)
        if _offset_minutes(change, zone) == offset:
            change += timedelta(minutes=1)
        segments.append((cursor, change, offset))
        cursor = change
    return segments


def rank_index(count: int, percentile: float) -> int | None:
    """Nearest-rank: the 0-based position of the ``percentile`` in ``count`` sorted values."""
    if count <= 0:
        return None
    return max(math.ceil(percentile / 100 * count), 1) - 1


def nearest_rank(values: Sequence[float], percentile: float) -> float | None:
    """The nearest-rank percentile of ``values`` (the p90 of 1..10 is 9, of 1..20 is 18)."""
    index = rank_index(len(values), percentile)
    return None if index is None else sorted(values)[index]


def rate(part: int | Decimal, whole: int | Decimal) -> Decimal | None:
    """``part`` of ``whole`` in percent, to one decimal place; None when there is nothing to divide by."""
    if not whole:
        return None
    return (Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def mean(total: float | None, count: int) -> float | None:
    return None if not count or total is None else round(total / count, 1)


def nps(promoters: int, detractors: int, answers: int) -> int | None:
    """Net promoter score: percent promoters minus percent detractors, from -100 to 100."""
    if not answers:
        return None
    return round((promoters - detractors) * 100 / answers)


def rate_alert(rate_percent: Decimal | None, orders: int, limit_percent: Decimal, min_orders: int) -> bool:
    """A return rate worth a lead's attention: above the line, over enough orders to mean something."""
    return rate_percent is not None and orders >= min_orders and rate_percent > limit_percent


def minutes_alert(mean_minutes: float | None, limit_minutes: float) -> bool:
    return mean_minutes is not None and mean_minutes > limit_minutes


def age_bucket(hours: float) -> str:
    for key, upper in AGE_BUCKETS:
        if upper is None or hours < upper:
            return key
    return AGE_BUCKETS[-1][0]


def tenth_up(minutes: float) -> float:
    """Minutes to one decimal place, half up (the percentiles' precision; the rollups count whole tenths)."""
    return math.floor(minutes * 10 + 0.5) / 10


def percentile_of_tenths(counts: Sequence[tuple[int, int]], percentile: float) -> float | None:
    """The nearest-rank percentile from ``(value in tenths, how many)`` pairs."""
    total = sum(n for _, n in counts)
    index = rank_index(total, percentile)
    if index is None:
        return None
    seen = 0
    for value, n in sorted(counts):
        seen += n
        if seen > index:
            return value / 10
    return None
