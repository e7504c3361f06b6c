"""The dashboard's arithmetic: periods in the shop's zone (daylight saving included), rates,
nearest-rank percentiles and the alert lines."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from portal.domain import insights as calc


@pytest.mark.parametrize(
    ("kind", "today", "month", "first", "last"),
    [
        ("7", date(2026, 11, 29), None, date(2026, 11, 23), date(2026, 11, 29)),
        ("30", date(2026, 3, 1), None, date(2026, 1, 31), date(2026, 3, 1)),
        ("90", date(2026, 11, 29), None, date(2026, 9, 1), date(2026, 11, 29)),
        ("month", date(2026, 2, 14), None, date(2026, 2, 1), date(2026, 2, 28)),
        ("month", date(2026, 11, 29), "2024-02", date(2024, 2, 1), date(2024, 2, 29)),
        ("month", date(2026, 11, 29), "2026-12", date(2026, 12, 1), date(2026, 12, 31)),
    ],
)
def test_period_days(kind, today, month, first, last):
    period = calc.period_for(kind, today, "Asia/Shanghai", month)
    assert (period.first, period.last) == (first, last)
    assert len(period.days) == (last - first).days + 1


@pytest.mark.parametrize(("kind", "month"), [("14", None), ("month", "2026-13"), ("month", "soon"), ("", None)])
def test_unknown_periods_are_refused(kind, month):
    with pytest.raises(calc.PeriodError):
        calc.period_for(kind, date(2026, 11, 29), "Asia/Shanghai", month)


def test_shanghai_days_begin_at_16_utc():
    period = calc.period_for("7", date(2026, 11, 29), "Asia/Shanghai")
    assert period.start == datetime(2026, 11, 22, 16, 0, tzinfo=UTC)
    assert period.end == datetime(2026, 11, 29, 16, 0, tzinfo=UTC)
    # 23:30 in Shanghai on the 29th is 15:30 UTC: that day, inside the period.
    late = datetime(2026, 11, 29, 15, 30, tzinfo=UTC)
    assert calc.local_day(late, "Asia/Shanghai") == date(2026, 11, 29)
    assert period.start <= late < period.end
    assert calc.local_day(period.end, "Asia/Shanghai") == date(2026, 11, 30)


def test_london_month_across_the_end_of_march():
    """March 2026 in London: midnight GMT on the 1st, midnight BST (23:00 UTC) at the end of the 31st."""
    period = calc.period_for("month", date(2026, 3, 10), "Europe/London")
    assert period.start == datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
    assert period.end == datetime(2026, 3, 31, 23, 0, tzinfo=UTC)
    segments = calc.offset_segments(period.start, period.end, "Europe/London")
    # Clocks go forward at 01:00 UTC on Sunday 29 March.
    assert segments == [
        (period.start, datetime(2026, 3, 29, 1, 0, tzinfo=UTC), 0),
        (datetime(2026, 3, 29, 1, 0, tzinfo=UTC), period.end, 60),
    ]
    # 23:30 BST on the 30th is 22:30 UTC: the 30th in London.
    assert calc.local_day(datetime(2026, 3, 30, 22, 30, tzinfo=UTC), "Europe/London") == date(2026, 3, 30)


def test_segments_cover_the_period_and_agree_with_the_zone():
    for tz in ("Europe/London", "Asia/Shanghai", "America/New_York"):
        period = calc.period_for("90", date(2026, 11, 29), tz)
        segments = calc.offset_segments(period.start, period.end, tz)
        assert segments[0][0] == period.start and segments[-1][1] == period.end
        assert all(a[1] == b[0] for a, b in zip(segments, segments[1:], strict=False))
        for start, end, minutes in segments:
            for at in (start, end - timedelta(minutes=1), start + (end - start) / 2):
                shifted = (at + timedelta(minutes=minutes)).date()
                assert shifted == calc.local_day(at, tz), (tz, at)
    assert len(calc.offset_segments(*_bounds("Asia/Shanghai"), "Asia/Shanghai")) == 1


def _bounds(tz):
    period = calc.period_for("90", date(2026, 11, 29), tz)
    return period.start, period.end


@pytest.mark.parametrize(
    ("values", "percentile", "expected"),
    [
        (list(range(1, 11)), 90, 9),
        (list(range(1, 21)), 90, 18),
        ([5.0], 90, 5.0),
        ([3, 1, 2], 90, 3),
        ([10, 20, 30, 40], 50, 20),
        ([], 90, None),
    ],
)
def test_nearest_rank_percentile(values, percentile, expected):
    assert calc.nearest_rank(values, percentile) == expected


@pytest.mark.parametrize(
    ("part", "whole", "expected"),
    [(1, 8, Decimal("12.5")), (2, 3, Decimal("66.7")), (0, 5, Decimal("0.0")), (3, 0, None), (1, 1000, Decimal("0.1"))],
)
def test_rate_in_percent(part, whole, expected):
    assert calc.rate(part, whole) == expected


@pytest.mark.parametrize(
    ("rate", "orders", "expected"),
    [
        (Decimal("8.1"), 20, True),
        (Decimal("8.0"), 50, False),  # on the line is not above it
        (Decimal("30"), 19, False),  # too few orders to mean anything
        (None, 100, False),
    ],
)
def test_return_rate_alert(rate, orders, expected):
    assert calc.rate_alert(rate, orders, Decimal(8), 20) is expected


def test_first_response_alert_and_nps():
    assert calc.minutes_alert(30.1, 30) and not calc.minutes_alert(30.0, 30) and not calc.minutes_alert(None, 30)
    assert calc.nps(promoters=6, detractors=2, answers=10) == 40
    assert calc.nps(0, 0, 0) is None
    assert [calc.age_bucket(h) for h in (1, 24, 100, 500)] == ["lt1d", "1to3d", "3to7d", "gt7d"]
