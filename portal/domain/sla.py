"""SLA clocks measured in business hours.

A ``BusinessCalendar`` says when a team works: wall-clock intervals per
weekday in an IANA time zone, with dated exceptions for holidays and part
days. ``add_business_minutes`` and ``business_minutes_between`` do the
arithmetic; a ``Clock`` tracks one SLA metric (first response, resolution)
through pauses, policy and calendar changes, and an escalation ladder says
when each reminder or escalation is due.

Instants in and out are timezone-aware datetimes; every instant this module
returns is in UTC. Naive datetimes raise ``ValueError``.

How wall-clock hours become real time: each interval of a local date is
turned into one span of real instants. The span starts at the first moment
the local clock shows its start and ends at the last moment the clock shows
its end; an end of 24:00 is the first moment of the next date. A start or end
the clock skips (spring forward) is the moment of the jump. So a 09:00-17:00
day is 8 real hours on a DST-change day when the change happens outside it,
a 00:00-24:00 day is 23 or 25 hours, and a night shift 01:00-03:00 is 1 hour
on the London spring-forward night and 3 hours on the autumn-back night
(real elapsed time). Spans never overlap: where a repeated hour would make
two of them overlap, the later one starts where the earlier one ends.
"""

from __future__ import annotations

import bisect
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from portal.domain.errors import InvalidInput
from portal.domain.states import check
from portal.domain.text import N_

UTC: Final = UTC

END_OF_DAY: Final = time(0, 0)
"""As the end of an interval, midnight at the end of the day (24:00); as a start, 00:00."""

FULL_DAY: Final[tuple[tuple[time, time], ...]] = ((time(0, 0), END_OF_DAY),)
"""The intervals of a day worked round the clock (00:00-24:00)."""

WEEKDAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Day names used by ``BusinessCalendar.from_spec``; index = ``date.weekday()``."""

HORIZON_DAYS: Final = 3653
"""Longest run of days (ten years) searched for working time before giving up."""

METRICS: Final = ("first_response", "resolution")
"""The metrics a ``Clock`` can measure."""

Interval = tuple[time, time]
Hours = tuple[Interval, ...]

_DAY: Final = timedelta(days=1)
_WEEK: Final = timedelta(weeks=1)
_TICK: Final = timedelta(microseconds=1)
_ZERO: Final = timedelta(0)
_US_PER_MINUTE: Final = 60_000_000
_SPEC_KEYS: Final = ("timezone", "weekly", "exceptions")
_SPEC_TIME = re.compile(r"\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?")
_SPEC_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class CalendarError(ValueError):
    """A calendar that cannot be used, or arithmetic it cannot do; ``message`` says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ClockError(ValueError):
    """An operation a clock does not allow in its state, or a bad clock value."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --------------------------------------------------------------------------
# Calendar


def _seconds(value: time, *, end: bool) -> float:
    """Seconds after midnight; ``END_OF_DAY`` as an end is 86400."""
    if end and value == END_OF_DAY:
        return 86400.0
    return value.hour * 3600 + value.minute * 60 + value.second + value.microsecond / 1e6


def _format_time(value: time, *, end: bool) -> str:
    if end and value == END_OF_DAY:
        return "24:00"
    text = f"{value.hour:02d}:{value.minute:02d}"
    if value.second or value.microsecond:
        text += f":{value.second:02d}"
    if value.microsecond:
        text += f".{value.microsecond:06d}"
    return text


def _format_hours(hours: Hours) -> list[str]:
    return [f"{_format_time(s, end=False)}-{_format_time(e, end=True)}" for s, e in hours]


def _check_hours(where: str, value: object) -> Hours:
    """Validate one day's intervals: pairs of naive times, start < end, sorted, not overlapping."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise CalendarError(f"{where} must be a sequence of (start, end) time pairs")
    hours: list[Interval] = []
    previous_end = -1.0
    for item in value:
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise CalendarError(f"{where}: each interval must be a (start, end) pair, not {item!r}")
        start, end = item
        if not isinstance(start, time) or not isinstance(end, time):
            raise CalendarError(f"{where}: interval bounds must be times, not {item!r}")
        if start.tzinfo is not None or end.tzinfo is not None:
            raise CalendarError(f"{where}: interval times must be wall-clock times without a time zone")
        start, end = start.replace(fold=0), end.replace(fold=0)
        label = f"{_format_time(start, end=False)}-{_format_time(end, end=True)}"
        first, last = _seconds(start, end=False), _seconds(end, end=True)
        if first >= last:
            raise CalendarError(f"{where}: interval {label} must start before it ends")
        if first < previous_end:
            raise CalendarError(f"{where}: interval {label} overlaps or comes before the one before it")
        previous_end = last
        hours.append((start, end))
    return tuple(hours)


def _parse_time(where: str, text: str, *, end: bool) -> time:
    if text in ("24:00", "24:00:00"):
        if not end:
            raise CalendarError(f"{where}: 24:00 can only end an interval")
        return END_OF_DAY
    if not _SPEC_TIME.fullmatch(text):
        raise CalendarError(f'{where}: {text!r} is not a time such as "09:30"')
    try:
        return time.fromisoformat(text)
    except ValueError:
        raise CalendarError(f"{where}: {text!r} is not a valid time") from None


def _parse_hours(where: str, value: object) -> list[Interval]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise CalendarError(f'{where} must be a list of "HH:MM-HH:MM" strings')
    hours: list[Interval] = []
    for item in value:
        if not isinstance(item, str) or item.count("-") != 1:
            raise CalendarError(f'{where}: {item!r} is not an interval such as "09:00-17:30"')
        start, end = (part.strip() for part in item.split("-"))
        hours.append((_parse_time(where, start, end=False), _parse_time(where, end, end=True)))
    return hours


@dataclass(frozen=True)
class BusinessCalendar:
    """Working hours in a time zone; constructing a bad one raises ``CalendarError``.

    ``weekly`` maps weekday (0 = Monday) to that day's intervals; a missing
    weekday or an empty tuple is a day off. ``exceptions`` maps a date to
    intervals that replace the weekly ones for that date (an empty tuple is a
    holiday). An interval ending at ``END_OF_DAY`` (``time(0, 0)``) ends at
    24:00, so ``(time(0), END_OF_DAY)`` is a whole day and touches the next
    day's 00:00 start.

    Guarantees after construction: ``timezone`` names a real IANA zone;
    ``weekly`` is read-only with all seven weekdays; every day's intervals
    are tuples of naive times, each starting before it ends, sorted and not
    overlapping (touching is allowed); ``exceptions`` is read-only and sorted
    by date; and there is working time somewhere (weekly or in an exception).
    """

    timezone: str
    weekly: Mapping[int, Hours] = field(hash=False)
    exceptions: Mapping[date, Hours] = field(default_factory=lambda: MappingProxyType({}), hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.timezone, str) or not self.timezone:
            raise CalendarError('timezone must be an IANA time zone name such as "Europe/London"')
        try:
            tz = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise CalendarError(f"timezone {self.timezone!r} is not a known time zone") from None
        if not isinstance(self.weekly, Mapping):
            raise CalendarError("weekly must map weekday numbers (0 = Monday) to intervals")
        weekly: dict[int, Hours] = {day: () for day in range(7)}
        for day, hours in self.weekly.items():
            if isinstance(day, bool) or not isinstance(day, int) or not 0 <= day <= 6:
                raise CalendarError(f"weekly: {day!r} is not a weekday number 0 (Monday) to 6 (Sunday)")
            weekly[day] = _check_hours(f"weekly.{WEEKDAYS[day]}", hours)
        if not isinstance(self.exceptions, Mapping):
            raise CalendarError("exceptions must map dates to intervals")
        exceptions: dict[date, Hours] = {}
        for when in sorted(self.exceptions, key=_date_key):
            exceptions[when] = _check_hours(f"exceptions.{when.isoformat()}", self.exceptions[when])
        object.__setattr__(self, "weekly", MappingProxyType(weekly))
        object.__setattr__(self, "exceptions", MappingProxyType(exceptions))

        week = sum((_nominal(hours) for hours in weekly.values()), _ZERO)
        open_exceptions = [day for day, hours in exceptions.items() if hours]
        if not week and not open_exceptions:
            raise CalendarError("the calendar has no working time at all")
        # Derived, not fields: excluded from equality, repr and replace().
        object.__setattr__(self, "_tz", tz)
        object.__setattr__(self, "_week", week)
        object.__setattr__(self, "_exception_dates", tuple(exceptions))
        object.__setattr__(self, "_last_open_exception", open_exceptions[-1] if open_exceptions else None)

    @property
    def tz(self) -> ZoneInfo:
        """The calendar's time zone."""
        return self._tz  # type: ignore[attr-defined,no-any-return]

    @property
    def weekly_minutes(self) -> float:
        """Wall-clock working minutes in a week without exceptions or DST changes."""
        return self._week / timedelta(minutes=1)  # type: ignore[attr-defined,no-any-return]

    def hours_on(self, day: date) -> Hours:
        """The intervals worked on local date ``day``: its exception if any, else its weekday's."""
        hours = self.exceptions.get(day)
        return hours if hours is not None else self.weekly[day.weekday()]

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> BusinessCalendar:
        """Build from plain data; raises ``CalendarError`` (never another error) on any problem.

        ``{"timezone": "Europe/London", "weekly": {"mon": ["09:00-12:00", "13:00-17:30"]},
        "exceptions": {"2026-12-25": [], "2026-12-24": ["09:00-13:00"]}}``. Times are
        ``HH:MM`` (seconds allowed); ``24:00`` (or ``00:00``) as an end means end of day.
        Weekdays left out are days off; ``exceptions`` is optional.
        """
        if not isinstance(spec, Mapping):
            raise CalendarError("a calendar spec must be a mapping with timezone and weekly")
        unknown = sorted(str(key) for key in spec if key not in _SPEC_KEYS)
        if unknown:
            raise CalendarError(f"unknown key {unknown[0]!r} (allowed: {', '.join(_SPEC_KEYS)})")
        if "timezone" not in spec or "weekly" not in spec:
            raise CalendarError("a calendar spec needs timezone and weekly")
        weekly_spec = spec["weekly"]
        if not isinstance(weekly_spec, Mapping):
            raise CalendarError("weekly must map day names (mon..sun) to lists of intervals")
        weekly: dict[int, list[Interval]] = {}
        for name, hours in weekly_spec.items():
            if name not in WEEKDAYS:
                raise CalendarError(f"weekly: {name!r} is not a day name ({', '.join(WEEKDAYS)})")
            weekly[WEEKDAYS.index(name)] = _parse_hours(f"weekly.{name}", hours)
        exceptions_spec = spec.get("exceptions", {})
        if not isinstance(exceptions_spec, Mapping):
            raise CalendarError("exceptions must map dates (YYYY-MM-DD) to lists of intervals")
        exceptions: dict[date, list[Interval]] = {}
        for text, hours in exceptions_spec.items():
            try:
                if not isinstance(text, str) or not _SPEC_DATE.fullmatch(text):
                    raise ValueError
                day = date.fromisoformat(text)
            except ValueError:
                raise CalendarError(f'exceptions: {text!r} is not a date such as "2026-12-25"') from None
            exceptions[day] = _parse_hours(f"exceptions.{text}", hours)
        return cls(spec["timezone"], weekly, exceptions)  # type: ignore[arg-type]

    def to_spec(self) -> dict[str, Any]:
        """Plain data that ``from_spec`` turns back into an equal calendar (days off left out)."""
        return {
            "timezone": self.timezone,
            "weekly": {WEEKDAYS[day]: _format_hours(hours) for day, hours in self.weekly.items() if hours},
            "exceptions": {day.isoformat(): _format_hours(hours) for day, hours in self.exceptions.items()},
        }


def _date_key(day: object) -> date:
    if isinstance(day, datetime) or not isinstance(day, date):
        raise CalendarError(f"exceptions: {day!r} is not a date")
    return day


def _nominal(hours: Hours) -> timedelta:
    """Wall-clock length of a day's intervals."""
    return sum(
        (timedelta(seconds=_seconds(e, end=True) - _seconds(s, end=False)) for s, e in hours),
        _ZERO,
    )


# --------------------------------------------------------------------------
# Wall clock -> real instants


def _utc(value: datetime, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise ValueError(f"{name} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")
    return value.astimezone(UTC)


def _jump(tz: ZoneInfo, naive: datetime) -> datetime:
    """The instant the clocks jump over ``naive``, a wall time that does not exist."""
    low = naive.replace(tzinfo=tz, fold=1).astimezone(UTC)  # offset after the jump: earlier instant
    high = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)  # offset before the jump: later instant
    before = low.astimezone(tz).utcoffset()
    while high - low > _TICK:
        middle = low + (high - low) // 2
        if middle.astimezone(tz).utcoffset() == before:
            low = middle
        else:
            high = middle
    return high


def _instant(tz: ZoneInfo, day: date, wall: time, *, latest: bool) -> datetime:
    """The first (or, with ``latest``, last) instant the local clock shows ``wall`` on ``day``."""
    naive = datetime.combine(day, wall)
    instant = naive.replace(tzinfo=tz, fold=1 if latest else 0).astimezone(UTC)
    if instant.astimezone(tz).replace(tzinfo=None) != naive:
        return _jump(tz, naive)
    return instant


def _midnight(cal: BusinessCalendar, day: date) -> datetime:
    return _instant(cal.tz, day, time(0), latest=False)


def _day_spans(cal: BusinessCalendar, day: date) -> Iterator[tuple[datetime, datetime]]:
    """Real spans of ``day``'s intervals, in order (may overlap the day before; callers clip)."""
    tz = cal.tz
    for start, end in cal.hours_on(day):
        first = _instant(tz, day, start, latest=False)
        if end == END_OF_DAY:
            last = _instant(tz, day + _DAY, time(0), latest=False)
        else:
            last = _instant(tz, day, end, latest=True)
        if last > first:
            yield first, last


def _local_date(cal: BusinessCalendar, instant: datetime) -> date:
    return instant.astimezone(cal.tz).date()


def _steady_weeks(cal: BusinessCalendar, day: date, weeks: int) -> int:
    """How many of the next ``weeks`` whole weeks from ``day`` hold exactly the nominal weekly time.

    True for a week with no exception dates whose UTC offset is the same at
    every local midnight from its first day to the day after its last (no
    zone changes its offset and back again within one day).
    """
    limit = day + weeks * _WEEK
    dates: tuple[date, ...] = cal._exception_dates  # type: ignore[attr-defined]
    index = bisect.bisect_left(dates, day)
    if index < len(dates) and dates[index] < limit:
        limit = dates[index]
    tz = cal.tz
    offset = datetime.combine(day, time(0), tzinfo=tz).utcoffset()
    current = day + _DAY
    while current <= limit:
        if datetime.combine(current, time(0), tzinfo=tz).utcoffset() != offset:
            limit = current - _DAY  # the day before ``current`` changes offset
            break
        current += _DAY
    return (limit - day).days // 7


# --------------------------------------------------------------------------
# Business-time arithmetic


def _duration(minutes: object, name: str = "minutes") -> timedelta:
    if isinstance(minutes, bool) or not isinstance(minutes, (int, float)):
        raise ValueError(f"{name} must be a number, not {type(minutes).__name__}")
    if not math.isfinite(minutes) or minutes < 0:
        raise ValueError(f"{name} must be a finite number of minutes, not negative (got {minutes!r})")
    return timedelta(microseconds=round(minutes * _US_PER_MINUTE))


def _add(cal: BusinessCalendar, start: datetime, amount: timedelta) -> datetime:
    if amount <= _ZERO:
        return start
    week: timedelta = cal._week  # type: ignore[attr-defined]
    last_open_exception: date | None = cal._last_open_exception  # type: ignore[attr-defined]
    need = amount
    cursor = start
    day = _local_date(cal, start) - _DAY
    last_worked = day
    try:
        while True:
            if week and need > week and cursor <= _midnight(cal, day):
                weeks = _steady_weeks(cal, day, (need - _TICK) // week)
                if weeks:
                    need -= weeks * week
                    day += weeks * _WEEK
                    cursor = _midnight(cal, day)
                    last_worked = day
                    continue
            for first, last in _day_spans(cal, day):
                first = max(first, cursor)
                if last <= first:
                    continue
                if need <= last - first:
                    return first + need
                need -= last - first
                cursor = last
                last_worked = day
            day += _DAY
            if not week and (last_open_exception is None or day > last_open_exception):
                raise CalendarError(
                    f"the calendar has no working time after {last_open_exception}; "
                    f"{need / timedelta(minutes=1):g} business minutes are still to count"
                )
            if (day - last_worked).days > HORIZON_DAYS:
                raise CalendarError(f"no working time in the {HORIZON_DAYS} days after {last_worked}")
    except OverflowError:
        raise CalendarError("the result is beyond the supported date range") from None


def _between(cal: BusinessCalendar, a: datetime, b: datetime) -> timedelta:
    if b <= a:
        return _ZERO
    week: timedelta = cal._week  # type: ignore[attr-defined]
    total = _ZERO
    cursor = a
    day = _local_date(cal, a) - _DAY
    last_day = _local_date(cal, b) + _DAY
    while day <= last_day:
        if week and (last_day - day).days > 15 and cursor <= _midnight(cal, day):
            weeks = _steady_weeks(cal, day, ((last_day - day).days - 8) // 7)
            if weeks:
                total += weeks * week
                day += weeks * _WEEK
                cursor = _midnight(cal, day)
                continue
        for first, last in _day_spans(cal, day):
            first, last = max(first, cursor), min(last, b)
            if last > first:
                total += last - first
                cursor = last
        day += _DAY
    return total


def add_business_minutes(cal: BusinessCalendar, start: datetime, minutes: int | float) -> datetime:
    """The first instant (UTC) by which ``minutes`` of business time have passed since ``start``.

    Counting starts at ``start`` if it is inside working hours, else at the
    next opening. A result is never later than needed: a target used up
    exactly at closing time gives the closing time, not the next opening.
    ``minutes=0`` gives ``start`` itself (in UTC), so adding is additive:
    ``add(add(s, a), b) == add(s, a + b)``. Whole weeks without exceptions or
    offset changes are skipped in one step. Raises ``ValueError`` for
    negative or non-finite minutes or a naive ``start``, and ``CalendarError``
    when no working time is found for ``HORIZON_DAYS`` days.
    """
    return _add(cal, _utc(start, "start"), _duration(minutes))


def business_minutes_between(cal: BusinessCalendar, a: datetime, b: datetime) -> float:
    """Business minutes in the half-open range [``a``, ``b``); 0 when ``b <= a``."""
    return _between(cal, _utc(a, "a"), _utc(b, "b")) / timedelta(minutes=1)


# --------------------------------------------------------------------------
# Clocks


class ClockState(StrEnum):
    """Where a clock is; whether it is breached is a separate fact (``is_breached``)."""

    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"


CLOCK_TRANSITIONS: dict[ClockState, frozenset[ClockState]] = {
    # running -> running: a new running segment after a target or calendar change.
    ClockState.RUNNING: frozenset({ClockState.RUNNING, ClockState.PAUSED, ClockState.STOPPED}),
    ClockState.PAUSED: frozenset({ClockState.RUNNING, ClockState.PAUSED, ClockState.STOPPED}),
    ClockState.STOPPED: frozenset({ClockState.RUNNING}),  # reopened
}


def check_clock(current: str, target: str) -> ClockState:
    """``target`` as a ClockState when the move is allowed, else IllegalTransition."""
    return check(CLOCK_TRANSITIONS, ClockState, current, target)


class ChangeReason(StrEnum):
    """Why a clock's deadline changed."""

    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    RETARGET = "retarget"
    RECALENDAR = "recalendar"
    REOPEN = "reopen"


def _minutes_us(minutes: float) -> int:
    return round(minutes * _US_PER_MINUTE)


def _check_target(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ClockError(f"target_minutes must be a number, not {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise ClockError(f"target_minutes must be a positive number of minutes (got {value!r})")
    return value


def _check_instant(name: str, value: object, *, optional: bool = False) -> datetime | None:
    if value is None and optional:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ClockError(f"{name} must be a timezone-aware datetime")
    return value.astimezone(UTC)


@dataclass(frozen=True)
class Clock:
    """One SLA metric's clock; transitions return new clocks and never change this one.

    ``used_minutes`` is the business time consumed before ``running_since``
    (for a stopped clock, all of it). ``deadline`` is the instant the target
    is (or was) used up while running: set while running, ``None`` while
    paused, kept as it was when a running clock stops. If the target was
    already used up before the current running segment began, the deadline
    is the start of that segment. ``breached_at`` records, once any
    transition sees the clock past its target, the deadline it missed (or
    the instant of the change that put it past); it is never cleared.
    ``met`` is set when the clock stops. ``changed_at`` is the instant of the
    last transition; transitions earlier than it raise ``ClockError``.
    Constructing an inconsistent clock raises ``ClockError``; instants are
    stored in UTC.
    """

    metric: str
    target_minutes: float
    started_at: datetime
    changed_at: datetime
    state: ClockState
    used_minutes: float = 0.0
    running_since: datetime | None = None
    deadline: datetime | None = None
    stopped_at: datetime | None = None
    met: bool | None = None
    breached_at: datetime | None = None

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ClockError(f"metric must be one of {', '.join(METRICS)} (got {self.metric!r})")
        _check_target(self.target_minutes)
        try:
            object.__setattr__(self, "state", ClockState(self.state))
        except ValueError:
            raise ClockError(f"unknown clock state {self.state!r}") from None
        for name in ("started_at", "changed_at"):
            object.__setattr__(self, name, _check_instant(name, getattr(self, name)))
        for name in ("running_since", "deadline", "stopped_at", "breached_at"):
            object.__setattr__(self, name, _check_instant(name, getattr(self, name), optional=True))
        used = self.used_minutes
        if isinstance(used, bool) or not isinstance(used, (int, float)) or not math.isfinite(used) or used < 0:
            raise ClockError(f"used_minutes must be a non-negative number (got {used!r})")
        running = self.state is ClockState.RUNNING
        stopped = self.state is ClockState.STOPPED
        if (self.running_since is None) == running or (running and self.deadline is None):
            raise ClockError("a running clock (and only a running clock) has running_since and a deadline")
        if self.state is ClockState.PAUSED and self.deadline is not None:
            raise ClockError("a paused clock has no deadline")
        if (self.stopped_at is None) == stopped or (self.met is None) == stopped:
            raise ClockError("a stopped clock (and only a stopped clock) has stopped_at and met")

    @property
    def frozen(self) -> bool:
        """Whether the clock is stopped (only ``reopen`` changes it)."""
        return self.state is ClockState.STOPPED


@dataclass(frozen=True)
class DeadlineChange:
    """What an audit event needs when a transition moves a clock's deadline."""

    metric: str
    reason: ChangeReason
    at: datetime
    old_deadline: datetime | None
    new_deadline: datetime | None

    def as_dict(self) -> dict[str, str | None]:
        """Plain data with ISO 8601 instants, ready for an audit record."""
        return {
            "metric": self.metric,
            "reason": self.reason.value,
            "at": self.at.isoformat(),
            "old_deadline": self.old_deadline.isoformat() if self.old_deadline else None,
            "new_deadline": self.new_deadline.isoformat() if self.new_deadline else None,
        }


Transition = tuple[Clock, DeadlineChange | None]
"""A new clock and the deadline change to audit (``None`` when the deadline did not move)."""


def _change(old: Clock | None, new: Clock, reason: ChangeReason, at: datetime) -> Transition:
    before = old.deadline if old is not None else None
    if before == new.deadline:
        return new, None
    return new, DeadlineChange(new.metric, reason, at, before, new.deadline)


def _deadline(cal: BusinessCalendar, since: datetime, target: float, used_us: int) -> datetime:
    left = _minutes_us(target) - used_us
    return since if left <= 0 else _add(cal, since, timedelta(microseconds=left))


def _used_us(cal: BusinessCalendar, clock: Clock, at: datetime) -> int:
    used = _minutes_us(clock.used_minutes)
    if clock.state is ClockState.RUNNING and clock.running_since is not None:
        used += _between(cal, clock.running_since, at) // _TICK
    return used


def _over(clock: Clock, at: datetime) -> bool:
    """Past the target at ``at`` (ignoring ``breached_at``): running past the deadline, or over in time."""
    if _minutes_us(clock.used_minutes) > _minutes_us(clock.target_minutes):
        return True
    return clock.state is ClockState.RUNNING and clock.deadline is not None and at > clock.deadline


def _observed_breach(clock: Clock, at: datetime) -> datetime | None:
    """``breached_at`` after looking at the clock at ``at``."""
    if clock.breached_at is not None or clock.state is ClockState.STOPPED or not _over(clock, at):
        return clock.breached_at
    if clock.state is ClockState.RUNNING and clock.deadline is not None:
        return min(clock.deadline, at)
    return at


def _at(clock: Clock, at: datetime) -> datetime:
    when = _utc(at, "at")
    if when < clock.changed_at:
        raise ClockError(f"{when.isoformat()} is before the clock's last change ({clock.changed_at.isoformat()})")
    return when


def _require(clock: Clock, action: str, *states: ClockState) -> None:
    if clock.state not in states:
        raise ClockError(f"cannot {action} a {clock.state.value} clock")


def start_clock(cal: BusinessCalendar, metric: str, target_minutes: int | float, at: datetime) -> Transition:
    """A running clock started at ``at`` whose deadline is ``target_minutes`` business minutes later."""
    target = _check_target(target_minutes)
    when = _utc(at, "at")
    clock = Clock(
        metric=metric,
        target_minutes=target,
        started_at=when,
        changed_at=when,
        state=ClockState.RUNNING,
        running_since=when,
        deadline=_deadline(cal, when, target, 0),
    )
    return _change(None, clock, ChangeReason.START, when)


def pause(cal: BusinessCalendar, clock: Clock, at: datetime) -> Transition:
    """Stop consuming time: the business time used so far is kept and the deadline cleared."""
    _require(clock, "pause", ClockState.RUNNING)
    when = _at(clock, at)
    paused = replace(
        clock,
        state=ClockState.PAUSED,
        changed_at=when,
        used_minutes=_used_us(cal, clock, when) / _US_PER_MINUTE,
        running_since=None,
        deadline=None,
        breached_at=_observed_breach(clock, when),
    )
    return _change(clock, paused, ChangeReason.PAUSE, when)


def resume(cal: BusinessCalendar, clock: Clock, at: datetime) -> Transition:
    """Run again from ``at``; the new deadline is the remaining business time counted from ``at``."""
    _require(clock, "resume", ClockState.PAUSED)
    when = _at(clock, at)
    running = replace(
        clock,
        state=ClockState.RUNNING,
        changed_at=when,
        running_since=when,
        deadline=_deadline(cal, when, clock.target_minutes, _minutes_us(clock.used_minutes)),
    )
    return _change(clock, running, ChangeReason.RESUME, when)


def stop(cal: BusinessCalendar, clock: Clock, at: datetime) -> Transition:
    """The metric is done: freeze the clock, met unless it is past its target (or was ever breached).

    A running clock is met when ``at <= deadline``; a paused one when its used
    time is at most the target. The deadline is kept for the record.
    """
    _require(clock, "stop", ClockState.RUNNING, ClockState.PAUSED)
    when = _at(clock, at)
    breached_at = _observed_breach(clock, when)
    stopped = replace(
        clock,
        state=ClockState.STOPPED,
        changed_at=when,
        used_minutes=_used_us(cal, clock, when) / _US_PER_MINUTE,
        running_since=None,
        stopped_at=when,
        met=breached_at is None,
        breached_at=breached_at,
    )
    return stopped, None


def reopen(cal: BusinessCalendar, clock: Clock, at: datetime) -> Transition:
    """Run a stopped clock again from ``at`` with its used time; breached at once if that is the whole target."""
    _require(clock, "reopen", ClockState.STOPPED)
    when = _at(clock, at)
    used = _minutes_us(clock.used_minutes)
    breached_at = clock.breached_at
    if breached_at is None and used >= _minutes_us(clock.target_minutes):
        breached_at = when
    running = replace(
        clock,
        state=ClockState.RUNNING,
        changed_at=when,
        running_since=when,
        deadline=_deadline(cal, when, clock.target_minutes, used),
        stopped_at=None,
        met=None,
        breached_at=breached_at,
    )
    return _change(clock, running, ChangeReason.REOPEN, when)


def retarget(cal: BusinessCalendar, clock: Clock, new_target_minutes: int | float, at: datetime) -> Transition:
    """Apply a new target (policy change) at ``at``, keeping used and paused time.

    A running clock gets the deadline the new target gives for its current
    running segment; a paused one gets none until it resumes; a stopped clock
    is returned unchanged. A breach already seen under the old target stays.
    """
    target = _check_target(new_target_minutes)
    if clock.frozen:
        return clock, None
    when = _at(clock, at)
    breached_at = _observed_breach(clock, when)
    deadline = None
    if clock.state is ClockState.RUNNING and clock.running_since is not None:
        deadline = _deadline(cal, clock.running_since, target, _minutes_us(clock.used_minutes))
    updated = replace(clock, target_minutes=target, changed_at=when, deadline=deadline, breached_at=breached_at)
    updated = replace(updated, breached_at=_observed_breach(updated, when))
    return _change(clock, updated, ChangeReason.RETARGET, when)


def recalendar(old_cal: BusinessCalendar, new_cal: BusinessCalendar, clock: Clock, at: datetime) -> Transition:
    """Switch calendars at ``at``: time used so far is measured in ``old_cal``, the rest in ``new_cal``.

    A running clock starts a new running segment at ``at``; a paused clock
    only records the change; a stopped clock is returned unchanged.
    """
    if clock.frozen:
        return clock, None
    when = _at(clock, at)
    if clock.state is not ClockState.RUNNING:
        return replace(clock, changed_at=when), None
    breached_at = _observed_breach(clock, when)
    used = _used_us(old_cal, clock, when)
    updated = replace(
        clock,
        changed_at=when,
        used_minutes=used / _US_PER_MINUTE,
        running_since=when,
        deadline=_deadline(new_cal, when, clock.target_minutes, used),
        breached_at=breached_at,
    )
    updated = replace(updated, breached_at=_observed_breach(updated, when))
    return _change(clock, updated, ChangeReason.RECALENDAR, when)


def elapsed(cal: BusinessCalendar, clock: Clock, at: datetime) -> float:
    """Business minutes used by ``at`` (a paused or stopped clock's used time does not grow)."""
    return _used_us(cal, clock, _utc(at, "at")) / _US_PER_MINUTE


def remaining(cal: BusinessCalendar, clock: Clock, at: datetime) -> float:
    """Business minutes left at ``at``; negative once more than the target is used.

    Between a deadline at closing time and the next opening this is 0 while
    ``is_breached`` is already true: breach compares instants.
    """
    return clock.target_minutes - elapsed(cal, clock, at)


def fraction_used(cal: BusinessCalendar, clock: Clock, at: datetime) -> float:
    """Used business time as a fraction of the target (1.0 = all of it, above 1 when overdue)."""
    return elapsed(cal, clock, at) / clock.target_minutes


def is_breached(clock: Clock, at: datetime) -> bool:
    """Whether the clock has missed its target as of ``at`` (at or after its last change).

    A running clock is breached strictly after its deadline; a paused one when
    its used time exceeds the target; a stopped one when it was not met; any
    clock once ``breached_at`` is recorded.
    """
    when = _utc(at, "at")
    if clock.state is ClockState.STOPPED:
        return not clock.met
    return clock.breached_at is not None or _over(clock, when)


# --------------------------------------------------------------------------
# Escalation


class LadderAction(StrEnum):
    """What an escalation step does when it fires."""

    REMIND = "remind"  # tell the assignee
    MOVE_TO_LEAD = "move_to_lead"  # level 1: the team lead takes the ticket
    NOTIFY_MANAGER = "notify_manager"  # level 2: the team's managers are told


@dataclass(frozen=True)
class EscalationStep:
    """One rung of an escalation ladder; exactly one of ``at_fraction`` and ``after_breach_minutes``.

    ``at_fraction`` fires when that fraction of the target is used (0.75 =
    three quarters; above 1 is after the breach); ``after_breach_minutes``
    fires that many business minutes after the deadline (0 = at the deadline).
    """

    key: str
    at_fraction: float | None
    after_breach_minutes: int | float | None
    action: str

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key:
            raise ValueError("an escalation step needs a non-empty key")
        if not isinstance(self.action, str) or not self.action:
            raise ValueError(f"escalation step {self.key!r} needs a non-empty action")
        if (self.at_fraction is None) == (self.after_breach_minutes is None):
            raise ValueError(f"escalation step {self.key!r} needs exactly one of at_fraction, after_breach_minutes")
        if self.at_fraction is not None:
            value = self.at_fraction
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"escalation step {self.key!r}: at_fraction must be a positive number")
        else:
            _duration(self.after_breach_minutes, f"escalation step {self.key!r}: after_breach_minutes")

    def threshold_minutes(self, target_minutes: float) -> float:
        """Business minutes of use at which this step fires, for a clock with ``target_minutes``."""
        if self.at_fraction is not None:
            return self.at_fraction * target_minutes
        return target_minutes + (self.after_breach_minutes or 0)


def parse_ladder(data: object) -> list[EscalationStep]:
    """An escalation ladder from its stored form (a list of step mappings); InvalidInput says what is wrong."""
    if not isinstance(data, list):
        raise InvalidInput(N_("The ladder must be a list of steps."))
    steps = []
    for n, item in enumerate(data, 1):
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("key"), str)
            or not isinstance(item.get("action"), str)
        ):
            raise InvalidInput(N_("Step %(n)d needs a key and an action."), n=n)
        if item["action"] not in set(LadderAction):
            raise InvalidInput(
                N_("Step %(n)d: unknown action %(action)s (use %(known)s)."),
                n=n,
                action=item["action"][:40],
                known=", ".join(LadderAction),
            )
        try:
            steps.append(
                EscalationStep(item["key"], item.get("at_fraction"), item.get("after_breach_minutes"), item["action"])
            )
        except (ValueError, TypeError):
            raise InvalidInput(
                N_("Step %(n)d needs exactly one of at_fraction (above 0) and after_breach_minutes (0 or more)."), n=n
            ) from None
    if len({step.key for step in steps}) != len(steps):
        raise InvalidInput(N_("Each step needs its own key."))
    return steps


def parse_ladder_text(text: str) -> list[EscalationStep]:
    """An escalation ladder typed as JSON (a list of step objects); InvalidInput says what is wrong."""
    try:
        data = json.loads(text)
    except (ValueError, TypeError):
        raise InvalidInput(N_("The ladder must be JSON: a list of steps in square brackets.")) from None
    return parse_ladder(data)


def ladder_data(steps: Sequence[EscalationStep]) -> list[dict[str, Any]]:
    """The stored form of a ladder (what ``parse_ladder`` reads back)."""
    data: list[dict[str, Any]] = []
    for step in steps:
        item: dict[str, Any] = {"key": step.key}
        if step.at_fraction is not None:
            item["at_fraction"] = step.at_fraction
        else:
            item["after_breach_minutes"] = step.after_breach_minutes
        item["action"] = step.action
        data.append(item)
    return data


LADDER_KEY_MAX = 32  # the escalation record's step_key column
LADDER_MAX_PERCENT = 10000  # a step at most 100 targets in
LADDER_MAX_MINUTES = 1000000  # as long as the longest resolution target


class LadderWhen(StrEnum):
    """How a ladder row typed into the admin form says when its step fires."""

    USED = "used"  # a percentage of the target has been used (stored as ``at_fraction``)
    AFTER_DEADLINE = "after_deadline"  # business minutes after the deadline (``after_breach_minutes``)


@dataclass(frozen=True)
class LadderRow:
    """One row of the ladder form, as typed: ``amount`` is a percentage for ``used`` and business
    minutes for ``after_deadline``; an empty ``key`` gets one made from the action."""

    key: str
    when: str
    amount: str
    action: str


class LadderInputError(InvalidInput):
    """A ladder row that cannot be used; ``row`` counts from 1 and ``field`` is key, when, amount or action."""

    def __init__(self, row: int, field: str, message: str, /, **params: Any) -> None:
        super().__init__(message, row=row, **params)
        self.row = row
        self.field = field


def ladder_rows(steps: Sequence[EscalationStep]) -> list[LadderRow]:
    """The form rows that show a stored ladder (what ``parse_ladder_rows`` turns back into it)."""
    rows = []
    for step in steps:
        if step.at_fraction is not None:
            amount = Decimal(str(step.at_fraction)) * 100
            rows.append(LadderRow(step.key, LadderWhen.USED, _plain(amount), step.action))
        else:
            minutes = Decimal(str(step.after_breach_minutes))
            rows.append(LadderRow(step.key, LadderWhen.AFTER_DEADLINE, _plain(minutes), step.action))
    return rows


def _plain(number: Decimal) -> str:
    """75 rather than 75.00 or 7.5E+1."""
    return format(number.normalize(), "f")


def _amount(text: str) -> Decimal | None:
    try:
        number = Decimal((text or "").strip().replace(",", "."))
    except ArithmeticError:
        return None
    return number if number.is_finite() else None


def parse_ladder_rows(rows: Sequence[LadderRow]) -> list[EscalationStep]:
    """Ladder rows from the admin form into escalation steps, in the order given.

    Raises ``LadderInputError`` naming the row and the field; a blank key becomes the action plus
    the row number (made unique), so a new row needs no name.
    """
    keys: dict[str, int] = {}
    for n, row in enumerate(rows, 1):
        key = (row.key or "").strip()
        if len(key) > LADDER_KEY_MAX:
            raise LadderInputError(
                n, "key", N_("Step %(row)d, name: use at most %(max)d characters."), max=LADDER_KEY_MAX
            )
        if key:
            if key in keys:
                raise LadderInputError(
                    n, "key", N_("Step %(row)d, name: step %(other)d already has this name."), other=keys[key]
                )
            keys[key] = n
    steps = []
    for n, row in enumerate(rows, 1):
        if row.action not in set(LadderAction):
            raise LadderInputError(n, "action", N_("Step %(row)d, action: choose what happens."))
        amount = _amount(row.amount)
        if row.when == LadderWhen.USED:
            if amount is None or not 0 < amount <= LADDER_MAX_PERCENT:
                raise LadderInputError(
                    n,
                    "amount",
                    N_("Step %(row)d, threshold: give the percentage of the target used, above 0 and at most %(max)d."),
                    max=LADDER_MAX_PERCENT,
                )
            fraction, minutes = float(amount / 100), None
        elif row.when == LadderWhen.AFTER_DEADLINE:
            if amount is None or not 0 <= amount <= LADDER_MAX_MINUTES or amount != amount.to_integral_value():
                raise LadderInputError(
                    n,
                    "amount",
                    N_("Step %(row)d, threshold: give whole business minutes after the deadline, 0 to %(max)d."),
                    max=LADDER_MAX_MINUTES,
                )
            fraction, minutes = None, int(amount)
        else:
            raise LadderInputError(n, "when", N_("Step %(row)d, when: choose when the step fires."))
        key = (row.key or "").strip()
        if not key:
            base, suffix = f"{row.action}-{n}"[:LADDER_KEY_MAX], 1
            key = base
            while key in keys:
                suffix += 1
                key = f"{base[: LADDER_KEY_MAX - 3]}-{suffix}"
            keys[key] = n
        steps.append(EscalationStep(key, fraction, minutes, row.action))
    return steps


class CalendarInputError(InvalidInput):
    """Calendar input a person typed that cannot be used; ``field`` is the weekday (mon..sun) or
    ``"exceptions"`` the message is about."""

    def __init__(self, field: str, message: str, /, **params: Any) -> None:
        super().__init__(message, **params)
        self.field = field


@dataclass(frozen=True)
class CalendarInput:
    """Working hours as typed into the admin form, checked: what ``BusinessCalendar.from_spec`` and
    the calendar's exception rows take."""

    weekly: dict[str, list[str]]
    exceptions: dict[str, list[str]]
    notes: dict[str, str]


def _hour_ranges(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _valid_hours(hours: list[str]) -> bool:
    try:
        _check_hours("hours", _parse_hours("hours", hours))
    except CalendarError:
        return False
    return True


def parse_calendar_input(timezone_name: str, weekly: Mapping[str, str | None], exceptions: str | None) -> CalendarInput:
    """Weekly hours per day ("09:00-12:00, 13:00-18:00"; empty = day off) and exception lines
    ("YYYY-MM-DD hours note", hours ``closed`` or ranges) into checked calendar data.

    Raises ``CalendarInputError`` naming the input that is wrong; a later line for the same date wins.
    """
    week: dict[str, list[str]] = {}
    for day in WEEKDAYS:
        hours = _hour_ranges(weekly.get(day))
        if not _valid_hours(hours):
            raise CalendarInputError(
                day,
                N_(
                    "%(hours)s: write working hours as ranges such as 09:00-12:00, 13:00-18:00, each starting "
                    "before it ends, in order and not overlapping."
                ),
                hours=", ".join(hours)[:100],
            )
        week[day] = hours
    days: dict[str, list[str]] = {}
    notes: dict[str, str] = {}
    for n, line in enumerate((exceptions or "").splitlines(), start=1):
        parts = line.split(None, 2)
        if not parts:
            continue
        if len(parts) < 2:
            raise CalendarInputError("exceptions", N_("line %(n)d: give a date and hours"), n=n)
        day, hours_text = parts[0], parts[1]
        try:
            if not _SPEC_DATE.fullmatch(day):
                raise ValueError
            date.fromisoformat(day)
        except ValueError:
            raise CalendarInputError("exceptions", N_("line %(n)d: %(day)s is not a date"), n=n, day=day[:40]) from None
        hours = [] if hours_text.lower() == "closed" else _hour_ranges(hours_text)
        if not _valid_hours(hours):
            raise CalendarInputError(
                "exceptions",
                N_("line %(n)d: %(hours)s is not closed or working hours such as 09:00-13:00"),
                n=n,
                hours=hours_text[:100],
            )
        days[day] = hours
        notes[day] = parts[2].strip() if len(parts) > 2 else ""
    try:
        BusinessCalendar.from_spec({"timezone": timezone_name, "weekly": week, "exceptions": days})
    except CalendarError:
        raise CalendarInputError(
            "exceptions", N_("This calendar cannot be used; check its time zone and hours.")
        ) from None
    return CalendarInput(week, days, notes)


def step_fire_times(cal: BusinessCalendar, clock: Clock, steps: Sequence[EscalationStep]) -> list[tuple[str, datetime]]:
    """(step key, fire instant) for a running clock, earliest first (ties in ladder order).

    Instants follow from the clock's running segment, used time and current
    target, so they move with ``retarget``, ``resume`` and ``recalendar``. A
    step whose threshold was already passed before the segment began fires
    at the segment's start. Paused and stopped clocks have none. Duplicate
    keys raise ``ValueError``.

    A breach recorded in the current segment anchors the ``after_breach_minutes``
    steps: they fire that long after ``breached_at`` at the latest, so a later,
    longer target (a policy edited back) cannot push an escalation the breach
    already earned into the future.
    """
    keys = [step.key for step in steps]
    if len(set(keys)) != len(keys):
        raise ValueError("escalation step keys must be unique")
    if clock.state is not ClockState.RUNNING or clock.running_since is None:
        return []
    used = _minutes_us(clock.used_minutes)
    breached = clock.breached_at if clock.breached_at and clock.breached_at >= clock.running_since else None
    times = []
    for step in steps:
        when = _deadline(cal, clock.running_since, step.threshold_minutes(clock.target_minutes), used)
        if breached is not None and step.after_breach_minutes is not None:
            when = min(when, _add(cal, breached, _duration(step.after_breach_minutes)))
        times.append((step.key, when))
    return sorted(times, key=lambda item: item[1])


def observe_breach(clock: Clock, at: datetime) -> Clock:
    """The clock with its breach recorded if it is past its target at ``at`` (a recorded breach and
    its time never change; a stopped clock is returned as it is)."""
    breached_at = breach_seen(clock, at)
    return clock if breached_at == clock.breached_at else replace(clock, breached_at=breached_at)


def breach_seen(clock: Clock, at: datetime) -> datetime | None:
    """The ``breached_at`` that ``observe_breach`` would record at ``at``, without the new clock."""
    return _observed_breach(clock, _utc(at, "at"))


def due_steps(
    cal: BusinessCalendar,
    clock: Clock,
    steps: Sequence[EscalationStep],
    fired: Iterable[str],
    now: datetime,
) -> list[EscalationStep]:
    """Steps whose fire instant is at or before ``now`` and whose key is not in ``fired``, earliest first.

    A step is due from its fire instant itself, so a job scheduled for that
    instant finds it. Feeding back the keys acted on gives each step once.
    """
    when = _utc(now, "now")
    done = set(fired)
    by_key = {step.key: step for step in steps}
    return [by_key[key] for key, at in step_fire_times(cal, clock, steps) if at <= when and key not in done]
