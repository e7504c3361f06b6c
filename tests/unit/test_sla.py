"""Business-hours SLA arithmetic, clocks and escalation, edge by edge."""

from __future__ import annotations

import time as stopwatch
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
import time_machine
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from portal.domain.sla import (
    END_OF_DAY,
    FULL_DAY,
    WEEKDAYS,
    BusinessCalendar,
    CalendarError,
    ChangeReason,
    Clock,
    ClockError,
    ClockState,
    DeadlineChange,
    EscalationStep,
    add_business_minutes,
    breach_seen,
    business_minutes_between,
    due_steps,
    elapsed,
    fraction_used,
    is_breached,
    observe_breach,
    pause,
    recalendar,
    remaining,
    reopen,
    resume,
    retarget,
    start_clock,
    step_fire_times,
    stop,
)

UTC = UTC
WORKWEEK = WEEKDAYS[:5]


def calendar(tz: str, weekly: dict[str, list[str]], exceptions: dict[str, list[str]] | None = None) -> BusinessCalendar:
    return BusinessCalendar.from_spec({"timezone": tz, "weekly": weekly, "exceptions": exceptions or {}})


def every(days: tuple[str, ...], *hours: str) -> dict[str, list[str]]:
    return {day: list(hours) for day in days}


def at(text: str) -> datetime:
    """An instant from ISO text with an explicit offset, e.g. ``2026-06-01T09:00+01:00``."""
    value = datetime.fromisoformat(text)
    assert value.tzinfo is not None, text
    return value


OFFICE = every(WORKWEEK, "09:00-17:00")
DAILY_OFFICE = every(WEEKDAYS, "09:00-17:00")
ROUND_THE_CLOCK = every(WEEKDAYS, "00:00-24:00")
NIGHT_SHIFT = every(WEEKDAYS, "01:00-03:00")
LONDON_OFFICE = calendar("Europe/London", OFFICE)
CHRISTMAS = calendar(
    "Europe/London",
    OFFICE,
    {"2026-12-24": ["09:00-13:00"], "2026-12-25": [], "2026-12-28": []},
)
SHANGHAI = calendar("Asia/Shanghai", every(WORKWEEK, "09:00-12:00", "13:00-18:00"))
TWO_DAYS = calendar("Europe/London", {"tue": ["10:00-12:00"], "thu": ["10:00-12:00"]})


# --------------------------------------------------------------------------
# Calendar construction


def test_spec_round_trip_and_normalisation() -> None:
    spec = {
        "timezone": "Europe/London",
        "weekly": {"mon": ["09:00-12:00", "13:00-17:30"], "sat": ["18:00-24:00"], "sun": ["00:00-06:00:30"]},
        "exceptions": {"2026-12-25": [], "2026-12-24": ["09:00-13:00"]},
    }
    cal = BusinessCalendar.from_spec(spec)
    assert cal.weekly[0] == ((time(9), time(12)), (time(13), time(17, 30)))
    assert cal.weekly[1] == ()
    assert cal.weekly[5] == ((time(18), END_OF_DAY),)
    assert list(cal.exceptions) == [date(2026, 12, 24), date(2026, 12, 25)]
    assert cal.hours_on(date(2026, 12, 25)) == ()
    assert cal.hours_on(date(2026, 12, 21)) == cal.weekly[0]
    assert cal.weekly_minutes == 3 * 60 + 4.5 * 60 + 6 * 60 + 6 * 60 + 0.5
    again = cal.to_spec()
    assert again["weekly"]["sat"] == ["18:00-24:00"]
    assert again["weekly"]["sun"] == ["00:00-06:00:30"]
    assert list(again["exceptions"]) == ["2026-12-24", "2026-12-25"]
    assert BusinessCalendar.from_spec(again) == cal
    # Direct construction with the same meaning is equal; "00:00" as an end is 24:00 too.
    assert BusinessCalendar("Europe/London", {0: [(time(9), time(12)), (time(13), time(17, 30))]}) == (
        calendar("Europe/London", {"mon": ["09:00-12:00", "13:00-17:30"]})
    )
    assert calendar("UTC", {"fri": ["18:00-00:00"]}).weekly[4] == ((time(18), END_OF_DAY),)
    assert calendar("UTC", every(WEEKDAYS, "00:00-24:00")).weekly[2] == FULL_DAY


def test_calendar_is_read_only() -> None:
    with pytest.raises(TypeError):
        LONDON_OFFICE.weekly[5] = FULL_DAY  # type: ignore[index]
    with pytest.raises(AttributeError):
        LONDON_OFFICE.timezone = "UTC"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"timezone": "Mars/Olympus", "weekly": OFFICE}, "not a known time zone"),
        ({"timezone": "UTC", "weekly": {"mon": ["12:00-13:00", "09:00-10:00"]}}, "overlaps or comes before"),
        ({"timezone": "UTC", "weekly": {"mon": ["09:00-12:00", "11:00-13:00"]}}, "overlaps or comes before"),
        ({"timezone": "UTC", "weekly": {"mon": ["09:00-09:00"]}}, "must start before it ends"),
        ({"timezone": "UTC", "weekly": {"mon": ["17:00-09:00"]}}, "must start before it ends"),
        ({"timezone": "UTC", "weekly": {"mon": ["24:00-24:00"]}}, "24:00 can only end"),
        ({"timezone": "UTC", "weekly": {"mon": ["9:00-17:00"]}}, "is not a time"),
        ({"timezone": "UTC", "weekly": {"mon": ["09:00-25:00"]}}, "not a valid time"),
        ({"timezone": "UTC", "weekly": {"mon": ["09:00 to 17:00"]}}, "is not an interval"),
        ({"timezone": "UTC", "weekly": {"mon": "09:00-17:00"}}, "must be a list"),
        ({"timezone": "UTC", "weekly": {"monday": ["09:00-17:00"]}}, "not a day name"),
        ({"timezone": "UTC", "weekly": {}}, "no working time at all"),
        ({"timezone": "UTC", "weekly": {"mon": []}, "exceptions": {"2026-12-25": []}}, "no working time at all"),
        ({"timezone": "UTC", "weekly": OFFICE, "exceptions": {"25/12/2026": []}}, "not a date"),
        ({"timezone": "UTC", "weekly": OFFICE, "exceptions": {"2026-02-30": []}}, "not a date"),
        ({"timezone": "UTC", "weekly": OFFICE, "holidays": {}}, "unknown key"),
        ({"weekly": OFFICE}, "needs timezone and weekly"),
        ({"timezone": 8, "weekly": OFFICE}, "IANA time zone name"),
    ],
)
def test_bad_specs_are_rejected(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(CalendarError, match=message):
        BusinessCalendar.from_spec(spec)


@pytest.mark.parametrize(
    ("weekly", "exceptions", "message"),
    [
        ({7: [(time(9), time(17))]}, {}, "not a weekday number"),
        ({True: [(time(9), time(17))]}, {}, "not a weekday number"),
        ({0: [(time(9), time(17, tzinfo=UTC))]}, {}, "without a time zone"),
        ({0: [(time(9), "17:00")]}, {}, "must be times"),
        ({0: [(time(9),)]}, {}, "must be a .start, end. pair"),
        ({0: [(time(9), time(17))]}, {datetime(2026, 12, 25): ()}, "is not a date"),
    ],
)
def test_bad_direct_construction_is_rejected(weekly: Any, exceptions: Any, message: str) -> None:
    with pytest.raises(CalendarError, match=message):
        BusinessCalendar("UTC", weekly, exceptions)


def test_touching_intervals_are_allowed_and_count_continuously() -> None:
    cal = calendar("UTC", {"mon": ["09:00-12:00", "12:00-17:00"]})
    assert add_business_minutes(cal, at("2026-06-01T11:00+00:00"), 120) == at("2026-06-01T13:00+00:00")


# --------------------------------------------------------------------------
# Arithmetic: DST, midnight, holidays, sparse weeks


@pytest.mark.parametrize(
    ("tz", "day", "weekly", "hours"),
    [
        # An interval spanning the change counts real time; one that does not is unaffected.
        ("Europe/London", "2026-03-29", ROUND_THE_CLOCK, 23),
        ("Europe/London", "2026-03-29", NIGHT_SHIFT, 1),
        ("Europe/London", "2026-03-29", DAILY_OFFICE, 8),
        ("Europe/London", "2026-10-25", ROUND_THE_CLOCK, 25),
        ("Europe/London", "2026-10-25", NIGHT_SHIFT, 3),
        ("Europe/London", "2026-10-25", DAILY_OFFICE, 8),
        ("America/New_York", "2026-03-08", ROUND_THE_CLOCK, 23),
        ("America/New_York", "2026-03-08", NIGHT_SHIFT, 1),
        ("America/New_York", "2026-03-08", DAILY_OFFICE, 8),
        ("America/New_York", "2026-11-01", ROUND_THE_CLOCK, 25),
        ("America/New_York", "2026-11-01", NIGHT_SHIFT, 3),
        ("America/New_York", "2026-11-01", DAILY_OFFICE, 8),
        ("Europe/London", "2026-06-07", ROUND_THE_CLOCK, 24),
        ("Europe/London", "2026-06-07", NIGHT_SHIFT, 2),
        # Clocks jump over the whole interval: it does not exist that night.
        ("Europe/London", "2026-03-29", every(WEEKDAYS, "01:15-01:45"), 0),
        # Midnight changes (Santiago): the day still ends where the next begins.
        ("America/Santiago", "2026-04-04", ROUND_THE_CLOCK, 25),
        ("America/Santiago", "2026-09-06", ROUND_THE_CLOCK, 23),
        ("Asia/Shanghai", "2026-03-29", ROUND_THE_CLOCK, 24),
    ],
)
def test_hours_in_a_day_across_dst(tz: str, day: str, weekly: dict[str, list[str]], hours: float) -> None:
    cal = calendar(tz, weekly)
    first = datetime.combine(date.fromisoformat(day), time(0), tzinfo=cal.tz)
    last = datetime.combine(date.fromisoformat(day) + timedelta(days=1), time(0), tzinfo=cal.tz)
    # A whole real week around it, so spans reaching over midnight are included.
    assert business_minutes_between(cal, first - timedelta(hours=12), last + timedelta(hours=12)) == (
        business_minutes_between(cal, first - timedelta(hours=12), first)
        + hours * 60
        + business_minutes_between(cal, last, last + timedelta(hours=12))
    )
    assert business_minutes_between(cal, first.astimezone(UTC), last.astimezone(UTC)) == hours * 60


@pytest.mark.parametrize(
    ("tz", "weekly", "start", "minutes", "expected"),
    [
        # Office hours on both sides of a change: 8 hours a day, local opening times.
        ("Europe/London", OFFICE, "2026-03-27T16:00+00:00", 120, "2026-03-30T10:00+01:00"),
        ("Europe/London", OFFICE, "2026-10-23T16:00+01:00", 120, "2026-10-26T10:00+00:00"),
        ("America/New_York", OFFICE, "2026-03-06T16:00-05:00", 120, "2026-03-09T10:00-04:00"),
        ("America/New_York", OFFICE, "2026-10-30T16:00-04:00", 120, "2026-11-02T10:00-05:00"),
        # Round the clock: business time is real time.
        ("Europe/London", ROUND_THE_CLOCK, "2026-03-28T23:00+00:00", 180, "2026-03-29T03:00+01:00"),
        ("Europe/London", ROUND_THE_CLOCK, "2026-10-24T23:00+01:00", 240, "2026-10-25T02:00+00:00"),
        ("America/New_York", ROUND_THE_CLOCK, "2026-11-01T00:00-04:00", 25 * 60, "2026-11-02T00:00-05:00"),
        # A night shift the change falls inside: the skipped hour does not exist...
        ("Europe/London", NIGHT_SHIFT, "2026-03-29T00:30+00:00", 30, "2026-03-29T02:30+01:00"),
        ("Europe/London", NIGHT_SHIFT, "2026-03-29T00:00+00:00", 61, "2026-03-30T01:01+01:00"),
        ("America/New_York", NIGHT_SHIFT, "2026-03-08T00:00-05:00", 90, "2026-03-09T01:30-04:00"),
        # ...and the repeated hour is counted as it elapses.
        ("Europe/London", NIGHT_SHIFT, "2026-10-25T00:30+01:00", 150, "2026-10-25T02:30+00:00"),
        ("America/New_York", NIGHT_SHIFT, "2026-11-01T00:00-04:00", 150, "2026-11-01T02:30-05:00"),
        # Lord Howe moves its clocks by half an hour.
        ("Australia/Lord_Howe", ROUND_THE_CLOCK, "2026-04-05T01:00+11:00", 120, "2026-04-05T02:30+10:30"),
    ],
)
def test_add_across_dst(tz: str, weekly: dict[str, list[str]], start: str, minutes: int, expected: str) -> None:
    cal = calendar(tz, weekly)
    result = add_business_minutes(cal, at(start), minutes)
    assert result == at(expected)
    assert result.tzinfo is UTC
    assert business_minutes_between(cal, at(start), result) == minutes


MIDNIGHT = calendar("Europe/London", {"mon": ["18:00-24:00"], "tue": ["00:00-06:00"], "wed": ["00:00-24:00"]})


@pytest.mark.parametrize(
    ("start", "minutes", "expected"),
    [
        ("2026-06-01T23:00+01:00", 120, "2026-06-02T01:00+01:00"),  # 24:00 runs on into 00:00
        ("2026-06-01T23:00+01:00", 60, "2026-06-02T00:00+01:00"),  # used up exactly at midnight
        ("2026-06-01T18:00+01:00", 720, "2026-06-02T06:00+01:00"),
        ("2026-06-02T05:00+01:00", 120, "2026-06-03T01:00+01:00"),  # Tuesday ends 06:00, Wednesday all day
        ("2026-06-03T00:00+01:00", 1440, "2026-06-04T00:00+01:00"),  # a full day is 24 hours
        ("2026-06-03T12:00+01:00", 721, "2026-06-08T18:01+01:00"),  # Thursday to Sunday closed
    ],
)
def test_midnight_and_24_00(start: str, minutes: int, expected: str) -> None:
    assert add_business_minutes(MIDNIGHT, at(start), minutes) == at(expected)


def test_between_over_midnight() -> None:
    assert business_minutes_between(MIDNIGHT, at("2026-06-01T18:00+01:00"), at("2026-06-02T06:00+01:00")) == 720
    assert business_minutes_between(MIDNIGHT, at("2026-06-01T00:00+01:00"), at("2026-06-08T00:00+01:00")) == (
        6 * 60 + 6 * 60 + 24 * 60
    )


@pytest.mark.parametrize(
    ("cal", "start", "minutes", "expected"),
    [
        # Two working days a week.
        (TWO_DAYS, "2026-06-01T08:00+01:00", 150, "2026-06-04T10:30+01:00"),
        (TWO_DAYS, "2026-06-04T11:30+01:00", 60, "2026-06-09T10:30+01:00"),
        (TWO_DAYS, "2026-06-02T10:00+01:00", 120, "2026-06-02T12:00+01:00"),
        (TWO_DAYS, "2026-06-02T10:00+01:00", 4 * 60 * 10 + 1, "2026-08-11T10:01+01:00"),
        # Christmas: half day on the 24th, closed on the 25th and the 28th.
        (CHRISTMAS, "2026-12-24T12:00+00:00", 120, "2026-12-29T10:00+00:00"),
        (CHRISTMAS, "2026-12-24T08:00+00:00", 240, "2026-12-24T13:00+00:00"),
        (CHRISTMAS, "2026-12-24T13:00+00:00", 1, "2026-12-29T09:01+00:00"),
        (CHRISTMAS, "2026-12-25T10:00+00:00", 30, "2026-12-29T09:30+00:00"),  # starting on a holiday
        (CHRISTMAS, "2026-12-29T07:00+00:00", 30, "2026-12-29T09:30+00:00"),  # before opening
        (CHRISTMAS, "2026-12-29T09:00+00:00", 30, "2026-12-29T09:30+00:00"),  # exactly at opening
        (CHRISTMAS, "2026-12-29T17:00+00:00", 30, "2026-12-30T09:30+00:00"),  # exactly at closing
        (CHRISTMAS, "2026-12-29T16:30+00:00", 30, "2026-12-29T17:00+00:00"),  # due at closing, not next morning
        (CHRISTMAS, "2026-12-26T12:00+00:00", 30, "2026-12-29T09:30+00:00"),  # weekend then holiday
        (CHRISTMAS, "2026-12-29T17:00+00:00", 0, "2026-12-29T17:00+00:00"),  # zero minutes: the start itself
        (CHRISTMAS, "2026-12-25T10:00+00:00", 0, "2026-12-25T10:00+00:00"),
        # Shanghai, no DST, with a lunch break.
        (SHANGHAI, "2026-06-01T11:30+08:00", 60, "2026-06-01T13:30+08:00"),
        (SHANGHAI, "2026-06-01T12:15+08:00", 60, "2026-06-01T14:00+08:00"),
        (SHANGHAI, "2026-06-01T11:00+08:00", 60, "2026-06-01T12:00+08:00"),
        (SHANGHAI, "2026-06-05T17:30+08:00", 60, "2026-06-08T09:30+08:00"),
        (SHANGHAI, "2026-06-01T09:00+08:00", 480 * 5, "2026-06-05T18:00+08:00"),
    ],
)
def test_add_business_minutes(cal: BusinessCalendar, start: str, minutes: int, expected: str) -> None:
    result = add_business_minutes(cal, at(start), minutes)
    assert result == at(expected)
    assert business_minutes_between(cal, at(start), result) == minutes


@pytest.mark.parametrize(
    ("cal", "a", "b", "minutes"),
    [
        (CHRISTMAS, "2026-12-21T00:00+00:00", "2026-12-31T00:00+00:00", 8 * 60 * 5 + 4 * 60),
        (CHRISTMAS, "2026-12-24T10:00+00:00", "2026-12-24T10:00+00:00", 0),
        (CHRISTMAS, "2026-12-24T11:00+00:00", "2026-12-24T10:00+00:00", 0),
        (CHRISTMAS, "2026-12-25T00:00+00:00", "2026-12-28T23:59+00:00", 0),
        (SHANGHAI, "2026-06-01T09:00+08:00", "2026-06-01T18:00+08:00", 480),
        (SHANGHAI, "2026-06-01T12:00+08:00", "2026-06-01T13:00+08:00", 0),
        (TWO_DAYS, "2026-06-01T00:00+01:00", "2027-05-31T00:00+01:00", 52 * 4 * 60),
        # Inputs in other offsets are the same instants.
        (SHANGHAI, "2026-06-01T01:00+00:00", "2026-06-01T06:00-04:00", 480),
    ],
)
def test_business_minutes_between(cal: BusinessCalendar, a: str, b: str, minutes: float) -> None:
    assert business_minutes_between(cal, at(a), at(b)) == minutes


def test_ten_thousand_business_hours_is_fast_and_exact() -> None:
    start = at("2026-01-05T09:00+00:00")
    began = stopwatch.perf_counter()
    result = add_business_minutes(LONDON_OFFICE, start, 10_000 * 60)
    back = business_minutes_between(LONDON_OFFICE, start, result)
    sparse = add_business_minutes(TWO_DAYS, start, 10_000 * 60)
    assert stopwatch.perf_counter() - began < 1.0
    # 1250 working days = 250 weeks: the Friday closing of the 250th week, in summer time.
    assert result == at("2030-10-18T17:00+01:00")
    assert back == 10_000 * 60
    assert sparse.astimezone(TWO_DAYS.tz).time() == time(12, 0)
    assert business_minutes_between(TWO_DAYS, start, sparse) == 10_000 * 60


def _day_by_day(cal: BusinessCalendar, first: date, last: date) -> BusinessCalendar:
    """The same calendar with every date an exception, so no week can be skipped."""
    days = (first + timedelta(days=n) for n in range((last - first).days))
    spec = cal.to_spec()
    spec["exceptions"] = {day.isoformat(): spec["weekly"].get(WEEKDAYS[day.weekday()], []) for day in days}
    return BusinessCalendar.from_spec(spec)


@pytest.mark.parametrize(
    "cal",
    [
        LONDON_OFFICE,
        calendar("America/New_York", NIGHT_SHIFT),
        calendar("Australia/Lord_Howe", {"mon": ["00:00-24:00"], "sun": ["01:00-03:00", "20:00-24:00"]}),
        calendar("America/Santiago", {"sat": ["22:00-24:00"], "sun": ["00:00-02:00"]}),
    ],
)
def test_skipping_weeks_matches_walking_day_by_day(cal: BusinessCalendar) -> None:
    slow = _day_by_day(cal, date(2025, 12, 1), date(2029, 1, 1))
    week = cal.weekly_minutes
    starts = [at("2026-01-01T10:00+00:00"), at("2026-03-27T23:30+00:00"), at("2026-10-31T02:15+00:00")]
    for start in starts:
        for minutes in (1, 479, week * 10 + 7, week * 52, week * 100 - 1):
            fast_result = add_business_minutes(cal, start, minutes)
            assert fast_result < at("2029-01-01T00:00+00:00")
            assert fast_result == add_business_minutes(slow, start, minutes)
            assert business_minutes_between(cal, start, fast_result) == minutes
            assert business_minutes_between(slow, start, fast_result) == minutes


def test_calendar_without_working_time_ahead_raises() -> None:
    one_day = calendar("UTC", {}, {"2026-06-01": ["09:00-10:00"]})
    assert add_business_minutes(one_day, at("2026-05-01T00:00+00:00"), 30) == at("2026-06-01T09:30+00:00")
    with pytest.raises(CalendarError, match="no working time after 2026-06-01"):
        add_business_minutes(one_day, at("2026-05-01T00:00+00:00"), 61)
    closed = {(date(2026, 6, 1) + timedelta(days=n)).isoformat(): [] for n in range(3700)}
    closed_for_years = calendar("UTC", OFFICE, closed)
    with pytest.raises(CalendarError, match="no working time in the 3653 days"):
        add_business_minutes(closed_for_years, at("2026-06-01T00:00+00:00"), 1)
    with pytest.raises(CalendarError, match="beyond the supported date range"):
        add_business_minutes(LONDON_OFFICE, at("9990-01-01T00:00+00:00"), 10**9)


@pytest.mark.parametrize("minutes", [-1, float("nan"), float("inf"), True, "30"])
def test_bad_minutes_are_rejected(minutes: Any) -> None:
    with pytest.raises(ValueError):
        add_business_minutes(LONDON_OFFICE, at("2026-06-01T09:00+01:00"), minutes)


def test_naive_datetimes_are_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        add_business_minutes(LONDON_OFFICE, datetime(2026, 6, 1, 9), 30)
    with pytest.raises(ValueError, match="timezone-aware"):
        business_minutes_between(LONDON_OFFICE, at("2026-06-01T09:00+01:00"), datetime(2026, 6, 2))


# --------------------------------------------------------------------------
# Properties

ZONES = ["Europe/London", "America/New_York", "Asia/Shanghai", "Australia/Lord_Howe", "America/Santiago", "UTC"]
CHANGE_DAYS = [
    datetime(2026, 3, 29, tzinfo=UTC),
    datetime(2026, 10, 25, tzinfo=UTC),
    datetime(2026, 3, 8, 5, tzinfo=UTC),
    datetime(2026, 11, 1, 4, tzinfo=UTC),
    datetime(2026, 4, 5, 3, tzinfo=UTC),
    datetime(2026, 9, 6, 4, tzinfo=UTC),
    datetime(2026, 4, 4, 15, tzinfo=UTC),
    datetime(2026, 10, 3, 15, tzinfo=UTC),
]


def _quarter(n: int) -> time:
    return END_OF_DAY if n == 96 else time(n // 4, n % 4 * 15)


@st.composite
def calendars(draw: st.DrawFn) -> BusinessCalendar:
    weekly: dict[int, tuple[tuple[time, time], ...]] = {}
    for day in range(7):
        marks = sorted(draw(st.lists(st.integers(0, 96), max_size=4, unique=True)))
        marks = marks[: len(marks) // 2 * 2]
        weekly[day] = tuple((_quarter(a), _quarter(b)) for a, b in zip(marks[::2], marks[1::2], strict=True))
    assume(any(weekly.values()))
    exceptions = draw(
        st.dictionaries(
            st.dates(date(2026, 1, 1), date(2026, 12, 31)),
            st.sampled_from([(), ((time(9), time(13)),), ((time(0), END_OF_DAY),), ((time(1), time(3)),)]),
            max_size=3,
        )
    )
    return BusinessCalendar(draw(st.sampled_from(ZONES)), weekly, exceptions)


instants = st.one_of(
    st.datetimes(datetime(2025, 12, 1), datetime(2027, 1, 31), timezones=st.just(UTC)),
    st.builds(
        lambda day, minutes: day + timedelta(minutes=minutes),
        st.sampled_from(CHANGE_DAYS),
        st.integers(-2 * 1440, 2 * 1440),
    ),
)
PROPERTY = settings(max_examples=60, deadline=None)


@PROPERTY
@given(cal=calendars(), start=instants, minutes=st.one_of(st.integers(0, 6000), st.floats(0, 6000)))
def test_between_inverts_add(cal: BusinessCalendar, start: datetime, minutes: float) -> None:
    end = add_business_minutes(cal, start, minutes)
    assert end >= start
    assert abs(business_minutes_between(cal, start, end) - minutes) < 1e-6


@PROPERTY
@given(cal=calendars(), start=instants, a=st.integers(0, 3000), b=st.integers(0, 3000))
def test_add_is_additive_and_monotonic(cal: BusinessCalendar, start: datetime, a: int, b: int) -> None:
    first = add_business_minutes(cal, start, a)
    both = add_business_minutes(cal, start, a + b)
    assert add_business_minutes(cal, first, b) == both
    assert first <= both
    if b:
        assert first < both


@PROPERTY
@given(cal=calendars(), a=instants, b=instants, c=instants)
def test_between_is_additive(cal: BusinessCalendar, a: datetime, b: datetime, c: datetime) -> None:
    a, b, c = sorted((a, b, c))
    total = business_minutes_between(cal, a, c)
    assert total == pytest.approx(business_minutes_between(cal, a, b) + business_minutes_between(cal, b, c))
    assert 0 <= total <= (c - a) / timedelta(minutes=1) + 1e-9


@PROPERTY
@given(tz=st.sampled_from(ZONES), start=instants, minutes=st.integers(0, 5000))
def test_round_the_clock_is_real_time(tz: str, start: datetime, minutes: int) -> None:
    cal = calendar(tz, ROUND_THE_CLOCK)
    assert add_business_minutes(cal, start, minutes) == start + timedelta(minutes=minutes)


# --------------------------------------------------------------------------
# Clocks (London office, Mon-Fri 09:00-17:00; June is BST, +01:00)


def started(target: float = 240, when: str = "2026-06-05T15:00+01:00", metric: str = "resolution") -> Clock:
    clock, change = start_clock(LONDON_OFFICE, metric, target, at(when))
    assert change is not None and change.reason is ChangeReason.START and change.old_deadline is None
    return clock


def test_start_sets_deadline_and_audit_event() -> None:
    clock, change = start_clock(LONDON_OFFICE, "first_response", 240, at("2026-06-05T15:00+01:00"))
    assert clock.state is ClockState.RUNNING
    assert clock.deadline == at("2026-06-08T11:00+01:00")
    assert clock.deadline is not None and clock.deadline.tzinfo is UTC
    assert change == DeadlineChange(
        "first_response", ChangeReason.START, at("2026-06-05T15:00+01:00"), None, clock.deadline
    )
    assert change.as_dict() == {
        "metric": "first_response",
        "reason": "start",
        "at": "2026-06-05T14:00:00+00:00",
        "old_deadline": None,
        "new_deadline": "2026-06-08T10:00:00+00:00",
    }


def test_pause_over_weekend_consumes_nothing_and_resume_gives_remaining_time() -> None:
    clock = started()
    paused, change = pause(LONDON_OFFICE, clock, at("2026-06-05T16:00+01:00"))
    assert change is not None and change.reason is ChangeReason.PAUSE
    assert (change.old_deadline, change.new_deadline) == (clock.deadline, None)
    assert paused.state is ClockState.PAUSED and paused.used_minutes == 60 and paused.deadline is None
    # Nothing is consumed while paused, not even Monday morning's business hour.
    for moment in ("2026-06-06T12:00+01:00", "2026-06-08T10:00+01:00"):
        assert elapsed(LONDON_OFFICE, paused, at(moment)) == 60
        assert remaining(LONDON_OFFICE, paused, at(moment)) == 180
    resumed, change = resume(LONDON_OFFICE, paused, at("2026-06-08T10:00+01:00"))
    assert resumed.deadline == at("2026-06-08T13:00+01:00")
    assert change is not None and change.reason is ChangeReason.RESUME and change.old_deadline is None
    assert elapsed(LONDON_OFFICE, resumed, at("2026-06-08T12:00+01:00")) == 180
    assert fraction_used(LONDON_OFFICE, resumed, at("2026-06-08T12:00+01:00")) == 0.75
    assert clock.state is ClockState.RUNNING  # the original is untouched


def test_retarget_during_pause_keeps_used_time() -> None:
    paused, _ = pause(LONDON_OFFICE, started(), at("2026-06-05T16:00+01:00"))
    retargeted, change = retarget(LONDON_OFFICE, paused, 480, at("2026-06-06T10:00+01:00"))
    assert change is None  # no deadline while paused, so none moved
    assert retargeted.target_minutes == 480 and retargeted.used_minutes == 60 and retargeted.deadline is None
    resumed, _ = resume(LONDON_OFFICE, retargeted, at("2026-06-08T10:00+01:00"))
    assert resumed.deadline == at("2026-06-08T17:00+01:00")


def test_retarget_running_clock_moves_deadline() -> None:
    clock = started()
    shorter, change = retarget(LONDON_OFFICE, clock, 60, at("2026-06-05T15:30+01:00"))
    assert shorter.deadline == at("2026-06-05T16:00+01:00")
    assert change == DeadlineChange(
        "resolution", ChangeReason.RETARGET, at("2026-06-05T15:30+01:00"), clock.deadline, shorter.deadline
    )
    assert not is_breached(shorter, at("2026-06-05T16:00+01:00"))
    assert is_breached(shorter, at("2026-06-05T16:00:01+01:00"))
    same, change = retarget(LONDON_OFFICE, clock, 240, at("2026-06-05T15:30+01:00"))
    assert change is None and same.deadline == clock.deadline
    # Cutting the target below the time already used breaches at once.
    paused, _ = pause(LONDON_OFFICE, clock, at("2026-06-05T16:30+01:00"))
    cut, _ = retarget(LONDON_OFFICE, paused, 60, at("2026-06-05T18:00+01:00"))
    assert cut.breached_at == at("2026-06-05T18:00+01:00") and is_breached(cut, at("2026-06-05T18:00+01:00"))


def test_breach_seen_under_old_target_stays_after_retarget() -> None:
    clock = started(target=60, when="2026-06-05T15:00+01:00")
    longer, change = retarget(LONDON_OFFICE, clock, 480, at("2026-06-05T16:30+01:00"))
    assert change is not None and longer.deadline == at("2026-06-08T15:00+01:00")
    assert longer.breached_at == at("2026-06-05T16:00+01:00")
    assert is_breached(longer, at("2026-06-05T16:30+01:00"))
    stopped, _ = stop(LONDON_OFFICE, longer, at("2026-06-05T16:45+01:00"))
    assert stopped.met is False


@pytest.mark.parametrize(
    ("stop_at", "met", "used"),
    [
        ("2026-06-08T10:59+01:00", True, 239),
        ("2026-06-08T11:00+01:00", True, 240),  # exactly at the deadline is met
        ("2026-06-08T11:00:00.000001+01:00", False, 240 + 1 / 60_000_000),
        ("2026-06-08T12:00+01:00", False, 300),
    ],
)
def test_stop_met_or_breached(stop_at: str, met: bool, used: float) -> None:
    stopped, change = stop(LONDON_OFFICE, started(), at(stop_at))
    assert change is None
    assert stopped.state is ClockState.STOPPED and stopped.met is met and stopped.frozen
    assert stopped.used_minutes == pytest.approx(used)
    assert stopped.deadline == at("2026-06-08T11:00+01:00")  # kept for the record
    assert is_breached(stopped, at("2030-01-01T00:00+00:00")) is not met
    assert (stopped.breached_at is None) is met


def test_deadline_at_closing_is_breached_overnight() -> None:
    clock = started(target=120, when="2026-06-05T15:00+01:00")
    assert clock.deadline == at("2026-06-05T17:00+01:00")
    evening = at("2026-06-05T17:30+01:00")
    assert remaining(LONDON_OFFICE, clock, evening) == 0
    assert is_breached(clock, evening)
    # Pausing after the deadline does not hide the breach.
    paused, _ = pause(LONDON_OFFICE, clock, evening)
    assert paused.used_minutes == 120 and paused.breached_at == clock.deadline
    assert is_breached(paused, evening)
    assert stop(LONDON_OFFICE, paused, at("2026-06-06T09:00+01:00"))[0].met is False
    # Paused exactly at the deadline is not a breach.
    on_time, _ = pause(LONDON_OFFICE, clock, at("2026-06-05T17:00+01:00"))
    assert not is_breached(on_time, evening)
    assert stop(LONDON_OFFICE, on_time, evening)[0].met is True


def test_stop_paused_clock_uses_used_time() -> None:
    clock = started(target=60, when="2026-06-01T09:00+01:00")
    paused, _ = pause(LONDON_OFFICE, clock, at("2026-06-01T09:45+01:00"))
    stopped, _ = stop(LONDON_OFFICE, paused, at("2026-06-10T12:00+01:00"))
    assert stopped.met is True and stopped.used_minutes == 45 and stopped.deadline is None


def test_reopen_after_the_deadline() -> None:
    clock = started(target=120, when="2026-06-01T09:00+01:00")
    done, _ = stop(LONDON_OFFICE, clock, at("2026-06-01T10:00+01:00"))
    assert done.met is True
    # Reopened two days later, long after the original deadline: only the unused hour is left.
    reopened, change = reopen(LONDON_OFFICE, done, at("2026-06-03T15:00+01:00"))
    assert reopened.state is ClockState.RUNNING and reopened.used_minutes == 60
    assert reopened.deadline == at("2026-06-03T16:00+01:00")
    assert change is not None and change.reason is ChangeReason.REOPEN
    assert (change.old_deadline, change.new_deadline) == (at("2026-06-01T11:00+01:00"), reopened.deadline)
    assert not is_breached(reopened, at("2026-06-03T15:30+01:00"))
    assert reopened.stopped_at is None and reopened.met is None


@pytest.mark.parametrize("stop_at", ["2026-06-01T11:00+01:00", "2026-06-01T12:00+01:00"])
def test_reopen_with_target_used_up_is_breached_at_once(stop_at: str) -> None:
    done, _ = stop(LONDON_OFFICE, started(target=120, when="2026-06-01T09:00+01:00"), at(stop_at))
    when = at("2026-06-02T09:00+01:00")
    reopened, _ = reopen(LONDON_OFFICE, done, when)
    assert reopened.deadline == when
    assert is_breached(reopened, when)
    assert stop(LONDON_OFFICE, reopened, when)[0].met is False


def test_frozen_clocks_are_unchanged_by_retarget_and_recalendar() -> None:
    done, _ = stop(LONDON_OFFICE, started(), at("2026-06-08T10:00+01:00"))
    assert retarget(LONDON_OFFICE, done, 30, at("2026-06-09T10:00+01:00")) == (done, None)
    assert recalendar(LONDON_OFFICE, SHANGHAI, done, at("2026-06-09T10:00+01:00")) == (done, None)
    assert elapsed(LONDON_OFFICE, done, at("2027-01-01T00:00+00:00")) == 180


def test_recalendar_measures_old_time_in_old_calendar() -> None:
    clock = started(target=600, when="2026-06-01T09:00+01:00")
    assert clock.deadline == at("2026-06-02T11:00+01:00")
    always = calendar("Europe/London", ROUND_THE_CLOCK)
    moved, change = recalendar(LONDON_OFFICE, always, clock, at("2026-06-01T10:00+01:00"))
    assert moved.used_minutes == 60 and moved.running_since == at("2026-06-01T10:00+01:00")
    assert moved.deadline == at("2026-06-01T19:00+01:00")
    assert change == DeadlineChange(
        "resolution", ChangeReason.RECALENDAR, at("2026-06-01T10:00+01:00"), clock.deadline, moved.deadline
    )
    assert elapsed(always, moved, at("2026-06-01T12:00+01:00")) == 180
    # A paused clock only records the change; its remaining time counts in the new calendar on resume.
    paused, _ = pause(LONDON_OFFICE, clock, at("2026-06-01T10:00+01:00"))
    moved_paused, change = recalendar(LONDON_OFFICE, always, paused, at("2026-06-01T20:00+01:00"))
    assert change is None and moved_paused.used_minutes == 60
    resumed, _ = resume(always, moved_paused, at("2026-06-06T00:00+01:00"))
    assert resumed.deadline == at("2026-06-06T09:00+01:00")


def _paused() -> Clock:
    return pause(LONDON_OFFICE, started(), at("2026-06-05T16:00+01:00"))[0]


def _stopped() -> Clock:
    return stop(LONDON_OFFICE, started(), at("2026-06-05T16:00+01:00"))[0]


@pytest.mark.parametrize(
    ("make", "operation"),
    [
        (_paused, lambda c, t: pause(LONDON_OFFICE, c, t)),
        (started, lambda c, t: resume(LONDON_OFFICE, c, t)),
        (started, lambda c, t: reopen(LONDON_OFFICE, c, t)),
        (_paused, lambda c, t: reopen(LONDON_OFFICE, c, t)),
        (_stopped, lambda c, t: pause(LONDON_OFFICE, c, t)),
        (_stopped, lambda c, t: resume(LONDON_OFFICE, c, t)),
        (_stopped, lambda c, t: stop(LONDON_OFFICE, c, t)),
    ],
)
def test_illegal_transitions(make: Any, operation: Any) -> None:
    with pytest.raises(ClockError, match="cannot"):
        operation(make(), at("2026-06-09T10:00+01:00"))


def test_transitions_cannot_go_back_in_time() -> None:
    paused = _paused()
    with pytest.raises(ClockError, match="before the clock's last change"):
        resume(LONDON_OFFICE, paused, at("2026-06-05T15:59+01:00"))
    with pytest.raises(ClockError, match="before the clock's last change"):
        retarget(LONDON_OFFICE, paused, 30, at("2026-06-05T15:59+01:00"))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"metric": "happiness"}, "metric must be one of"),
        ({"target_minutes": 0}, "positive number"),
        ({"target_minutes": True}, "must be a number"),
        ({"state": "sleeping"}, "unknown clock state"),
        ({"started_at": datetime(2026, 6, 1)}, "timezone-aware"),
        ({"used_minutes": -1}, "non-negative"),
        ({"running_since": None}, "running clock"),
        ({"state": ClockState.PAUSED}, "running clock"),
        ({"state": ClockState.STOPPED, "running_since": None}, "stopped clock"),
    ],
)
def test_inconsistent_clocks_are_rejected(changes: dict[str, Any], message: str) -> None:
    values: dict[str, Any] = {
        "metric": "resolution",
        "target_minutes": 60,
        "started_at": at("2026-06-01T09:00+01:00"),
        "changed_at": at("2026-06-01T09:00+01:00"),
        "state": ClockState.RUNNING,
        "running_since": at("2026-06-01T09:00+01:00"),
        "deadline": at("2026-06-01T10:00+01:00"),
    }
    values.update(changes)
    with pytest.raises(ClockError, match=message):
        Clock(**values)


# --------------------------------------------------------------------------
# Escalation

LADDER = (
    EscalationStep("remind", 0.75, None, "remind_assignee"),
    EscalationStep("lead", None, 0, "move_to_lead"),
    EscalationStep("manager", None, 60, "notify_manager"),
)


def now() -> datetime:
    return datetime.now(UTC)


def test_fire_times_follow_business_hours() -> None:
    clock = started(target=480, when="2026-06-01T13:00+01:00")
    assert step_fire_times(LONDON_OFFICE, clock, LADDER) == [
        ("remind", at("2026-06-02T11:00+01:00")),
        ("lead", at("2026-06-02T13:00+01:00")),
        ("manager", at("2026-06-02T14:00+01:00")),
    ]
    assert dict(step_fire_times(LONDON_OFFICE, clock, LADDER))["lead"] == clock.deadline


def test_due_steps_fire_once_each() -> None:
    clock = started(target=240, when="2026-06-01T09:00+01:00")
    fired: set[str] = set()
    seen: list[tuple[str, str]] = []
    for tick in ("10:00", "12:00", "12:30", "13:00", "13:59", "14:00", "16:00"):
        with time_machine.travel(at(f"2026-06-01T{tick}+01:00"), tick=False):
            for step in due_steps(LONDON_OFFICE, clock, LADDER, fired, now()):
                seen.append((tick, step.key))
                fired.add(step.key)
    assert seen == [("12:00", "remind"), ("13:00", "lead"), ("14:00", "manager")]
    with time_machine.travel(at("2026-06-01T16:00+01:00"), tick=False):
        assert due_steps(LONDON_OFFICE, clock, LADDER, set(), now()) == list(LADDER)
        assert due_steps(LONDON_OFFICE, clock, LADDER, {"lead"}, now()) == [LADDER[0], LADDER[2]]


def test_paused_and_stopped_clocks_have_no_due_steps() -> None:
    clock = started(target=240, when="2026-06-01T09:00+01:00")
    paused, _ = pause(LONDON_OFFICE, clock, at("2026-06-01T12:30+01:00"))
    done, _ = stop(LONDON_OFFICE, clock, at("2026-06-01T12:30+01:00"))
    with time_machine.travel(at("2026-06-03T12:00+01:00"), tick=False):
        assert step_fire_times(LONDON_OFFICE, paused, LADDER) == []
        assert due_steps(LONDON_OFFICE, paused, LADDER, set(), now()) == []
        assert due_steps(LONDON_OFFICE, done, LADDER, set(), now()) == []
    # On resume, a step already passed is due at once; the rest are pushed back by the pause.
    resumed, _ = resume(LONDON_OFFICE, paused, at("2026-06-02T09:00+01:00"))
    assert step_fire_times(LONDON_OFFICE, resumed, LADDER) == [
        ("remind", at("2026-06-02T09:00+01:00")),
        ("lead", at("2026-06-02T09:30+01:00")),
        ("manager", at("2026-06-02T10:30+01:00")),
    ]


def test_retarget_moves_fire_times() -> None:
    clock = started(target=240, when="2026-06-01T09:00+01:00")
    longer, _ = retarget(LONDON_OFFICE, clock, 480, at("2026-06-01T10:00+01:00"))
    assert step_fire_times(LONDON_OFFICE, longer, LADDER) == [
        ("remind", at("2026-06-01T15:00+01:00")),
        ("lead", at("2026-06-01T17:00+01:00")),
        ("manager", at("2026-06-02T10:00+01:00")),
    ]
    with time_machine.travel(at("2026-06-01T14:00+01:00"), tick=False):
        assert due_steps(LONDON_OFFICE, clock, LADDER, set(), now()) == list(LADDER)
        assert due_steps(LONDON_OFFICE, longer, LADDER, set(), now()) == []


@pytest.mark.parametrize(
    "args",
    [
        ("", 0.5, None, "remind"),
        ("remind", 0.5, None, ""),
        ("remind", 0.5, 10, "remind"),
        ("remind", None, None, "remind"),
        ("remind", 0, None, "remind"),
        ("remind", None, -5, "remind"),
    ],
)
def test_bad_escalation_steps(args: tuple[Any, ...]) -> None:
    with pytest.raises(ValueError):
        EscalationStep(*args)


def test_duplicate_step_keys_are_rejected() -> None:
    with pytest.raises(ValueError, match="unique"):
        step_fire_times(LONDON_OFFICE, started(), (LADDER[0], LADDER[0]))


def test_a_recorded_breach_keeps_its_escalation_times_when_the_target_grows_back() -> None:
    """Tightened, breached, then edited back: the deadline moves, the breach and its steps do not."""
    clock = started(target=480, when="2026-06-01T09:00+01:00")
    tight, _ = retarget(LONDON_OFFICE, clock, 60, at("2026-06-01T09:30+01:00"))  # due 10:00
    seen = observe_breach(tight, at("2026-06-01T10:05+01:00"))
    assert seen.breached_at == at("2026-06-01T10:00+01:00")
    assert observe_breach(seen, at("2026-06-01T11:00+01:00")) is seen  # recorded once, never moved
    assert breach_seen(tight, at("2026-06-01T10:05+01:00")) == seen.breached_at  # the same, without the clock
    assert breach_seen(seen, at("2026-06-01T11:00+01:00")) == seen.breached_at
    restored, change = retarget(LONDON_OFFICE, seen, 480, at("2026-06-01T10:30+01:00"))
    assert change is not None and restored.deadline == at("2026-06-01T17:00+01:00")
    assert restored.breached_at == at("2026-06-01T10:00+01:00") and is_breached(restored, at("2026-06-01T10:30+01:00"))
    times = dict(step_fire_times(LONDON_OFFICE, restored, LADDER))
    # The breach steps stay where the breach put them; the reminder before the deadline moves with it.
    assert (times["lead"], times["manager"]) == (at("2026-06-01T10:00+01:00"), at("2026-06-01T11:00+01:00"))
    assert times["remind"] == at("2026-06-01T15:00+01:00")


def test_observing_a_clock_before_its_deadline_records_nothing() -> None:
    clock = started(target=60, when="2026-06-01T09:00+01:00")
    assert observe_breach(clock, at("2026-06-01T10:00+01:00")) is clock  # at the deadline is not past it
    assert breach_seen(clock, at("2026-06-01T10:00+01:00")) is None
    later, _ = retarget(LONDON_OFFICE, clock, 120, at("2026-06-01T09:50+01:00"))
    assert later.breached_at is None and dict(step_fire_times(LONDON_OFFICE, later, LADDER))["lead"] == later.deadline
