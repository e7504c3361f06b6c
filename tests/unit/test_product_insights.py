"""Reasons back to products: shop months, the "what to fix" score and scrubbed comments."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from portal.domain.errors import InvalidInput
from portal.domain.product_insights import (
    REMOVED,
    ProductMonth,
    fix_score,
    month_bounds,
    month_of,
    months_back,
    parse_month,
    rank_products,
    return_rate,
    scrub_comment,
)

SHANGHAI = "Asia/Shanghai"


@pytest.mark.parametrize(
    "text, month",
    [("2026-11", date(2026, 11, 1)), ("2026-01", date(2026, 1, 1)), (" 2027-12 ", date(2027, 12, 1))],
)
def test_parse_month(text, month):
    assert parse_month(text) == month


@pytest.mark.parametrize(
    "text", ["", None, "2026-13", "2026-00", "2026-1", "26-11", "2026/11", "1999-12", "nov", "2026-11-01"]
)
def test_bad_month_is_refused_with_a_message(text):
    with pytest.raises(InvalidInput) as caught:
        parse_month(text)
    assert "YYYY-MM" in caught.value.render()


def test_month_bounds_are_shanghai_midnights_in_utc():
    start, end = month_bounds(date(2026, 11, 1), SHANGHAI)
    assert start == datetime(2026, 10, 31, 16, 0, tzinfo=UTC)
    assert end == datetime(2026, 11, 30, 16, 0, tzinfo=UTC)
    december = month_bounds(date(2026, 12, 1), SHANGHAI)
    assert december == (datetime(2026, 11, 30, 16, 0, tzinfo=UTC), datetime(2026, 12, 31, 16, 0, tzinfo=UTC))


def test_a_return_at_half_past_eleven_shanghai_on_the_last_day_counts_in_that_month():
    late = datetime(2026, 11, 30, 15, 30, tzinfo=UTC)  # 23:30 on 30 November in Shanghai
    start, end = month_bounds(date(2026, 11, 1), SHANGHAI)
    assert start <= late < end
    assert month_of(late, SHANGHAI) == date(2026, 11, 1)
    assert month_of(late, "UTC") == date(2026, 11, 1)
    after_midnight = datetime(2026, 11, 30, 16, 0, tzinfo=UTC)  # 00:00 on 1 December in Shanghai
    assert not start <= after_midnight < end
    assert month_of(after_midnight, SHANGHAI) == date(2026, 12, 1)
    assert month_of(after_midnight, "UTC") == date(2026, 11, 1)


def test_month_bounds_follow_daylight_saving():
    start, end = month_bounds(date(2026, 3, 1), "Europe/Berlin")  # clocks go forward on 29 March
    assert start == datetime(2026, 2, 28, 23, 0, tzinfo=UTC)
    assert end == datetime(2026, 3, 31, 22, 0, tzinfo=UTC)


def test_months_back_cross_the_year():
    assert months_back(date(2026, 2, 1), 4) == [
        date(2025, 11, 1),
        date(2025, 12, 1),
        date(2026, 1, 1),
        date(2026, 2, 1),
    ]
    assert len(months_back(date(2026, 11, 1), 12)) == 12


@pytest.mark.parametrize(
    "returned, sold, rate, score",
    [(0, 10, 0.0, 0.0), (2, 4, 0.5, 1.0), (10, 100, 0.1, 1.0), (30, 60, 0.5, 15.0), (3, 0, None, 3.0)],
)
def test_rate_and_score(returned, sold, rate, score):
    assert return_rate(returned, sold) == rate
    assert fix_score(returned, sold) == pytest.approx(score)


def test_ranking_puts_high_rate_and_high_volume_first():
    rows = [
        ProductMonth("ONE-OFF", "One off", "tops", sold=1, returned=1, requests=1),  # 100 % of one unit: 1.0
        ProductMonth("BIG", "Big seller", "tops", sold=1000, returned=100, requests=90),  # 10 % of many: 10.0
        ProductMonth("BAD", "Bad fit", "tops", sold=100, returned=50, requests=40),  # 50 % of many: 25.0
        ProductMonth("FINE", "No returns", "tops", sold=500, returned=0, requests=0),
        ProductMonth("TIE-B", "Tie", "tops", sold=4, returned=2, requests=2),  # 1.0, same as ONE-OFF, more units
    ]
    ranked = rank_products(rows)
    assert [r.product_code for r in ranked] == ["BAD", "BIG", "TIE-B", "ONE-OFF"]
    assert ranked[0].score == pytest.approx(25.0)


@pytest.mark.parametrize(
    "comment, gone, kept",
    [
        ("Too small, write me at li.wei@example.com please", ["li.wei@example.com", "@"], ["Too small"]),
        ("mail: LI.WEI+shop@Example.co.uk.", ["example", "@"], ["mail:"]),
        ("call +86 138 0000 0000 any time", ["138", "0000"], ["call", "any time"]),
        ("phone 138-0000-0000 or (021) 5555-1234", ["138", "5555", "021"], ["phone", "or"]),
        ("my number is 13800000000", ["13800000000"], ["my number is"]),
        ("Sleeves 2 cm too short, size 38 fits", [], ["Sleeves 2 cm too short, size 38 fits"]),
    ],
)
def test_scrub_removes_emails_and_phone_numbers(comment, gone, kept):
    clean = scrub_comment(comment)
    for piece in gone:
        assert piece.lower() not in clean.lower()
    for piece in kept:
        assert piece in clean
    if gone:
        assert REMOVED in clean


def test_scrub_removes_the_orders_own_personal_values():
    known = ["SO-1001", "200001", "li.wei@example.com", "+86 138 0000 0000"]
    comment = "Li Wei here (order so-1001, postcode 200001): I like it but Wei's size is wrong"
    clean = scrub_comment(comment, known, ["Li Wei"])
    assert "Li Wei" not in clean and "SO-1001" not in clean.upper() and "200001" not in clean
    assert "Wei" not in clean
    assert "I like it" in clean  # "Li" only goes as a whole word
    chinese = scrub_comment("我是李伟，袖子太短", names=["李伟"])
    assert "李伟" not in chinese and "袖子太短" in chinese


def test_a_phone_number_goes_as_one_piece_and_other_values_are_not_split():
    clean = scrub_comment("Seam opened; call +86 138 0000 0000", ["+86 138 0000 0000", "PAY 1"])
    assert clean == f"Seam opened; call {REMOVED}"
    assert scrub_comment("I paid 1 time", ["PAY 1"]) == "I paid 1 time"  # only names are split into words
