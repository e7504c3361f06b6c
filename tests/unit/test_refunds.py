"""Refund amounts: worked examples, caps, rounding per currency, and properties.

Each worked example writes its arithmetic in comments. Amounts are CNY
(2 places) unless a test says otherwise; JPY has 0 places and KWD 3.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portal.domain.money import round_money
from portal.domain.refunds import (
    DESTINATIONS,
    ITEM_KINDS,
    OrderLineMoney,
    PriorRefunds,
    RefundLine,
    RefundPreview,
    RefundSettings,
    compute_refund,
)

D = Decimal
NO_FEES = RefundSettings(restocking_fees={})


def run(
    order: list[OrderLineMoney] | tuple[OrderLineMoney, ...],
    lines: list[RefundLine],
    shipping: str = "0",
    prior: PriorRefunds | None = None,
    refund_settings: RefundSettings | None = None,
    currency: str = "CNY",
) -> RefundPreview:
    return compute_refund(currency, order, D(shipping), lines, prior, refund_settings)


def items(preview: RefundPreview) -> list[tuple[str, str | None, str]]:
    """(kind, line id, amount) of every item, for compact comparisons."""
    return [(i.kind, i.line_id, str(i.amount)) for i in preview.items]


def in_sequence(order, requests, shipping="0", refund_settings=None, currency="CNY", prior=None):
    """Run several requests one after the other; returns the previews and the final prior."""
    prior = prior or PriorRefunds()
    previews = []
    for lines in requests:
        preview = run(order, lines, shipping, prior, refund_settings, currency)
        previews.append(preview)
        prior = prior.after(preview)
    return previews, prior


def check_totals(preview: RefundPreview) -> None:
    """Totals are sums of the rounded items, per destination."""
    for destination, total in (
        ("refund", preview.refund_total),
        ("store_credit", preview.store_credit_total),
        ("owed", -preview.owed_by_shopper),
    ):
        assert sum((i.amount for i in preview.items if i.destination == destination), D(0)) == total
    assert preview.refund_total >= 0 and preview.store_credit_total >= 0 and preview.owed_by_shopper >= 0
    for item in preview.items:
        assert item.kind in ITEM_KINDS and item.destination in DESTINATIONS and item.amount != 0


# --------------------------------------------------------------------------
# Partial quantities


def test_two_unit_line_with_discount_and_tax_refund_one_then_one() -> None:
    # 2 x 59.99 = 119.98, discount 10.00, tax 7.81 -> line total 117.79.
    # Unit 1: price 59.99, discount 10.00*1/2 = 5.00, tax round(3.905) = 3.91 -> 58.90
    # Unit 2: price 59.99, discount 10.00-5.00 = 5.00, tax 7.81-3.91 = 3.90   -> 58.89
    # 58.90 + 58.89 = 117.79 exactly.
    order = [OrderLineMoney("L1", 2, D("59.99"), D("10.00"), D("7.81"))]
    (first, second), prior = in_sequence(order, [[RefundLine("L1", 1, "seller")]] * 2)
    assert items(first) == [("goods", "L1", "59.99"), ("discount", "L1", "-5.00"), ("tax", "L1", "3.91")]
    assert first.refund_total == D("58.90")
    assert items(second) == [("goods", "L1", "59.99"), ("discount", "L1", "-5.00"), ("tax", "L1", "3.90")]
    assert second.refund_total == D("58.89")
    assert first.refund_total + second.refund_total == D("117.79")
    assert prior.per_line["L1"] == D("117.79") and prior.units["L1"] == 2 and prior.total == D("117.79")
    check_totals(first)
    check_totals(second)


@pytest.mark.parametrize(
    ("split", "expected"),
    [
        # 3 x 40.00 = 120.00, discount 20.00 -> 100.00; cumulative discount:
        # round(20/3) = 6.67, round(40/3) = 13.33, 20.00 -> 6.67, 6.66, 6.67.
        ((1, 1, 1), ["33.33", "33.34", "33.33"]),
        ((1, 2), ["33.33", "66.67"]),  # 80.00 - 13.33 for the last two
        ((2, 1), ["66.67", "33.33"]),  # the last unit: 100.00 - 66.67
        ((3,), ["100.00"]),
    ],
)
def test_three_units_totalling_100_sum_exactly_whatever_the_split(split: tuple[int, ...], expected: list[str]) -> None:
    order = [OrderLineMoney("L1", 3, D("40.00"), D("20.00"), D("0"))]
    previews, prior = in_sequence(order, [[RefundLine("L1", k, "seller")] for k in split])
    assert [str(p.refund_total) for p in previews] == expected
    assert sum(p.refund_total for p in previews) == D("100.00") == prior.per_line["L1"]


def test_unit_price_with_more_places_than_the_currency() -> None:
    # 3 x 33.3333 = 99.9999 -> line total 100.00; price shares 33.33, 66.67-33.33, 100.00-66.67.
    order = [OrderLineMoney("L1", 3, D("33.3333"))]
    previews, _ = in_sequence(order, [[RefundLine("L1", 1, "seller")]] * 3)
    assert [str(p.refund_total) for p in previews] == ["33.33", "33.34", "33.33"]


def test_same_line_twice_in_one_request_with_different_grades() -> None:
    # 2 x 50.00, customer: unit 1 grade A (0%), unit 2 grade D (30% of 50.00 = 15.00) -> 85.00.
    order = [OrderLineMoney("L1", 2, D("50.00"))]
    preview = run(order, [RefundLine("L1", 1, "customer", "A"), RefundLine("L1", 1, "customer", "D")])
    assert items(preview) == [
        ("goods", "L1", "50.00"),
        ("goods", "L1", "50.00"),
        ("restocking_fee", "L1", "-15.00"),
    ]
    assert preview.refund_total == D("85.00")
    assert dict(preview.units) == {"L1": 2} and dict(preview.line_amounts) == {"L1": D("100.00")}


# --------------------------------------------------------------------------
# Discounts, responsibility, shipping


def test_order_level_discount_already_allocated_to_lines() -> None:
    # Coupon 10.00 on an order of 60.00 + 40.00, allocated 6.00 / 4.00 by the shop.
    # Returning L2: 40.00 - 4.00 = 36.00; customer grade A pays no fee and gets no shipping.
    order = [OrderLineMoney("L1", 1, D("60.00"), D("6.00")), OrderLineMoney("L2", 1, D("40.00"), D("4.00"))]
    preview = run(order, [RefundLine("L2", 1, "customer", "A")], shipping="8.00")
    assert items(preview) == [("goods", "L2", "40.00"), ("discount", "L2", "-4.00")]
    assert preview.refund_total == D("36.00")


@pytest.mark.parametrize(
    ("responsibility", "grade", "fee", "shipping", "total"),
    [
        # One line 80.00, shipping 10.00: the whole order comes back.
        ("seller", "D", None, "10.00", "90.00"),  # no fee for the seller's fault, shipping back
        ("logistics", "C", None, "10.00", "90.00"),
        ("customer", "A", None, None, "80.00"),  # 0%
        ("customer", "B", "-4.00", None, "76.00"),  # 5% of 80.00
        ("customer", "C", "-12.00", None, "68.00"),  # 15% of 80.00
        ("customer", "D", "-24.00", None, "56.00"),  # 30% of 80.00
        ("customer", None, None, None, "80.00"),  # not graded yet: no fee
    ],
)
def test_responsibility_decides_shipping_and_restocking_fee(
    responsibility: str, grade: str | None, fee: str | None, shipping: str | None, total: str
) -> None:
    order = [OrderLineMoney("L1", 1, D("80.00"))]
    preview = run(order, [RefundLine("L1", 1, responsibility, grade)], shipping="10.00")
    expected = [("goods", "L1", "80.00")]
    if fee:
        expected.append(("restocking_fee", "L1", fee))
    if shipping:
        expected.append(("shipping", None, shipping))
    assert items(preview) == expected
    assert preview.refund_total == D(total)
    check_totals(preview)


def test_restocking_fees_are_configurable_data() -> None:
    custom = RefundSettings(restocking_fees={"customer": {"B": D("10")}, "seller": {"D": D("2.5")}})
    order = [OrderLineMoney("L1", 1, D("80.00"))]
    assert run(order, [RefundLine("L1", 1, "customer", "B")], refund_settings=custom).refund_total == D("72.00")
    assert run(order, [RefundLine("L1", 1, "customer", "C")], refund_settings=custom).refund_total == D("80.00")
    # 2.5% of 80.00 = 2.00
    assert run(order, [RefundLine("L1", 1, "seller", "D")], refund_settings=custom).refund_total == D("78.00")


def test_original_shipping_pro_rata_over_several_refunds() -> None:
    # Order 60.00 + 40.00 = 100.00, shipping 8.00.
    # First L2 (40.00): 8.00 * 40/100 = 3.20. Then L1: cumulative 8.00 * 100/100 = 8.00, minus 3.20 -> 4.80.
    order = [OrderLineMoney("L1", 1, D("60.00")), OrderLineMoney("L2", 1, D("40.00"))]
    (first, second), prior = in_sequence(
        order, [[RefundLine("L2", 1, "seller")], [RefundLine("L1", 1, "logistics")]], shipping="8.00"
    )
    assert items(first) == [("goods", "L2", "40.00"), ("shipping", None, "3.20")]
    assert items(second) == [("goods", "L1", "60.00"), ("shipping", None, "4.80")]
    assert prior.shipping == D("8.00") and prior.total == D("108.00")


def test_original_shipping_thirds_sum_exactly() -> None:
    # Three equal lines of 10.00, shipping 10.00: 3.33, then 6.67 - 3.33 = 3.34, then 10.00 - 6.67 = 3.33.
    order = [OrderLineMoney(f"L{i}", 1, D("10.00")) for i in (1, 2, 3)]
    previews, prior = in_sequence(order, [[RefundLine(f"L{i}", 1, "seller")] for i in (1, 2, 3)], shipping="10.00")
    assert [str(p.shipping) for p in previews] == ["3.33", "3.34", "3.33"]
    assert prior.shipping == D("10.00")


def test_customer_part_of_the_order_keeps_its_shipping_share() -> None:
    # 50.00 + 50.00, shipping 10.00: the customer's return of L1 gets no shipping;
    # the seller's return of L2 gets only its half, 10.00 * 50/100 = 5.00.
    order = [OrderLineMoney("L1", 1, D("50.00")), OrderLineMoney("L2", 1, D("50.00"))]
    (first, second), prior = in_sequence(
        order, [[RefundLine("L1", 1, "customer", "A")], [RefundLine("L2", 1, "seller")]], shipping="10.00"
    )
    assert first.shipping == 0 and second.shipping == D("5.00")
    assert prior.total == D("105.00")


def test_shipping_of_an_order_of_free_items_is_shared_by_units() -> None:
    # Two free samples, shipping 5.00: nothing to weigh by value, so 1 of 2 units -> 2.50.
    order = [OrderLineMoney("L1", 1, D("0.00")), OrderLineMoney("L2", 1, D("0.00"))]
    (first, second), prior = in_sequence(
        order, [[RefundLine("L1", 1, "seller")], [RefundLine("L2", 1, "seller")]], shipping="5.00"
    )
    assert (first.refund_total, second.refund_total, prior.shipping) == (D("2.50"), D("2.50"), D("5.00"))


def test_return_shipping_fee_for_customer_returns_only() -> None:
    fee = RefundSettings(return_shipping_fee=D("6.00"))
    order = [OrderLineMoney("L1", 1, D("80.00")), OrderLineMoney("L2", 1, D("20.00"))]
    # Customer: 80.00 + 20.00 - 6.00 once for the request = 94.00.
    both = [RefundLine("L1", 1, "customer", "A"), RefundLine("L2", 1, "customer", "A")]
    customer = run(order, both, refund_settings=fee)
    assert items(customer)[-1] == ("return_shipping_fee", None, "-6.00")
    assert customer.refund_total == D("94.00")
    # Seller: no fee.
    seller = run(order, [RefundLine("L1", 1, "seller")], refund_settings=fee)
    assert seller.refund_total == D("80.00")
    # Exchanges never pay it.
    exchange = run(order, [RefundLine("L1", 1, "customer", "A", "exchange")], refund_settings=fee)
    assert exchange.items == () and exchange.refund_total == 0


# --------------------------------------------------------------------------
# Store credit and exchanges


def test_store_credit_with_five_percent_bonus() -> None:
    bonus = RefundSettings(store_credit_bonus_percent=D("5"))
    order = [OrderLineMoney("L1", 1, D("80.00")), OrderLineMoney("L2", 1, D("20.00"))]
    # Grade A: 80.00 credit + 5% = 4.00 -> 84.00 credit, nothing to the card.
    preview = run(order, [RefundLine("L1", 1, "customer", "A", "store_credit")], refund_settings=bonus)
    assert items(preview) == [("goods", "L1", "80.00"), ("store_credit_bonus", None, "4.00")]
    assert (preview.store_credit_total, preview.refund_total) == (D("84.00"), D("0.00"))
    assert preview.counted_total == D("80.00")  # the bonus is not part of what was paid back
    # Grade C: 80.00 - 12.00 = 68.00, + 5% = 3.40 -> 71.40 credit; L2 by card: 20.00 (no bonus).
    mixed = run(
        order,
        [RefundLine("L1", 1, "customer", "C", "store_credit"), RefundLine("L2", 1, "customer", "A", "refund")],
        refund_settings=bonus,
    )
    assert mixed.store_credit_total == D("71.40") and mixed.refund_total == D("20.00")
    assert [i.destination for i in mixed.items] == ["store_credit", "store_credit", "refund", "store_credit"]
    check_totals(mixed)


def test_store_credit_gets_its_shipping_share_as_credit() -> None:
    order = [OrderLineMoney("L1", 1, D("90.00"))]
    preview = run(order, [RefundLine("L1", 1, "seller", None, "store_credit")], shipping="10.00")
    assert preview.store_credit_total == D("100.00") and preview.refund_total == 0


@pytest.mark.parametrize(
    ("difference", "expected_items", "refund", "owed"),
    [
        (None, [], "0", "0"),
        (D("0"), [], "0", "0"),
        # New size is 7.50 cheaper: refund 7.50.
        (D("7.50"), [("exchange_difference", "L1", "7.50")], "7.50", "0"),
        # New item costs 12.00 more: the shopper owes 12.00, nothing is refunded.
        (D("-12.00"), [("exchange_difference", "L1", "-12.00")], "0", "12.00"),
        # A "difference" larger than what was paid (50.00) is capped at 50.00.
        (D("70.00"), [("exchange_difference", "L1", "70.00"), ("line_cap", "L1", "-20.00")], "50.00", "0"),
    ],
)
def test_exchange_moves_money_only_for_a_price_difference(
    difference: Decimal | None, expected_items: list[Any], refund: str, owed: str
) -> None:
    order = [OrderLineMoney("L1", 1, D("50.00"))]
    preview = run(order, [RefundLine("L1", 1, "customer", "A", "exchange", exchange_price_difference=difference)])
    assert items(preview) == expected_items
    assert preview.refund_total == D(refund) and preview.owed_by_shopper == D(owed)
    assert preview.store_credit_total == 0
    assert dict(preview.units) == {"L1": 1}
    check_totals(preview)


def test_owed_difference_is_not_netted_against_a_refund() -> None:
    order = [OrderLineMoney("L1", 1, D("50.00")), OrderLineMoney("L2", 1, D("30.00"))]
    preview = run(
        order,
        [
            RefundLine("L1", 1, "customer", "A", "exchange", exchange_price_difference=D("-5.00")),
            RefundLine("L2", 1, "customer", "A"),
        ],
    )
    assert (preview.refund_total, preview.owed_by_shopper) == (D("30.00"), D("5.00"))
    # All items together: what the shopper gets net.
    assert sum(i.amount for i in preview.items) == D("25.00")


def test_exchanged_units_still_count_for_later_partial_refunds() -> None:
    # 3 x 40.00 - 20.00 = 100.00; unit 1 exchanged, then units 2 and 3 refunded: 100.00 - 33.33 = 66.67.
    order = [OrderLineMoney("L1", 3, D("40.00"), D("20.00"))]
    (_, refund), _ = in_sequence(
        order, [[RefundLine("L1", 1, "customer", "A", "exchange")], [RefundLine("L1", 2, "customer", "A")]]
    )
    assert refund.refund_total == D("66.67")


# --------------------------------------------------------------------------
# Rounding per currency


def test_jpy_has_no_decimals() -> None:
    # 3 x 1000 - 100 + 290 = 3190 yen.
    # Discount round(100/3) = 33, round(200/3) = 67, 100; tax round(290/3) = 97, round(580/3) = 193, 290.
    # Unit 1: 1000 - 33 + 97 = 1064; unit 2: 1000 - 34 + 96 = 1062; unit 3: 1000 - 33 + 97 = 1064.
    # Customer grade B, 5%: 53.2 -> 53, 53.1 -> 53, 53.2 -> 53.
    order = [OrderLineMoney("L1", 3, D("1000"), D("100"), D("290"))]
    previews, prior = in_sequence(order, [[RefundLine("L1", 1, "customer", "B")]] * 3, currency="JPY")
    assert items(previews[0]) == [
        ("goods", "L1", "1000"),
        ("discount", "L1", "-33"),
        ("tax", "L1", "97"),
        ("restocking_fee", "L1", "-53"),
    ]
    assert [str(p.refund_total) for p in previews] == ["1011", "1009", "1011"]
    assert prior.per_line["L1"] == D("3190")


def test_kwd_has_three_decimals() -> None:
    # 3 x 1.250 - 0.100 = 3.650 KWD; discount 0.033, 0.067 - 0.033 = 0.034, 0.100 - 0.067 = 0.033.
    # Customer grade B, 5%: 1.217 * 0.05 = 0.06085 -> 0.061; 1.216 * 0.05 = 0.0608 -> 0.061.
    # Shipping 1.500 is not refunded to the customer.
    order = [OrderLineMoney("L1", 3, D("1.250"), D("0.100"))]
    requests = [[RefundLine("L1", 1, "customer", "B")]] * 3
    previews, prior = in_sequence(order, requests, shipping="1.500", currency="KWD")
    assert items(previews[1]) == [
        ("goods", "L1", "1.250"),
        ("discount", "L1", "-0.034"),
        ("restocking_fee", "L1", "-0.061"),
    ]
    assert [str(p.refund_total) for p in previews] == ["1.156", "1.155", "1.156"]
    assert prior.per_line["L1"] == D("3.650")


def test_cny_seller_refund_with_shipping_rounds_half_up() -> None:
    # 19.99 + 10.00 = 29.99 order, shipping 5.00; L1 back: 5.00 * 19.99 / 29.99 = 3.3327... -> 3.33.
    order = [OrderLineMoney("L1", 1, D("19.99")), OrderLineMoney("L2", 1, D("10.00"))]
    preview = run(order, [RefundLine("L1", 1, "seller")], shipping="5.00")
    assert preview.refund_total == D("23.32")


# --------------------------------------------------------------------------
# Caps


def test_fees_larger_than_the_goods_are_capped_at_zero() -> None:
    # 3.00 back, grade D fee 0.90, return shipping fee 6.00: 3.00 - 0.90 - 6.00 = -3.90 -> +3.90 -> 0.
    settings_ = RefundSettings(return_shipping_fee=D("6.00"))
    order = [OrderLineMoney("L1", 1, D("3.00"))]
    preview = run(order, [RefundLine("L1", 1, "customer", "D")], refund_settings=settings_)
    assert items(preview) == [
        ("goods", "L1", "3.00"),
        ("restocking_fee", "L1", "-0.90"),
        ("return_shipping_fee", None, "-6.00"),
        ("fee_capped", None, "3.90"),
    ]
    assert preview.refund_total == D("0.00") and preview.counted_total == 0
    check_totals(preview)


def test_prior_refunds_reduce_what_a_line_can_refund() -> None:
    # Line 100.00, 30.00 already refunded on it (a goodwill partial refund): at most 70.00 more.
    order = [OrderLineMoney("L1", 1, D("100.00"))]
    prior = PriorRefunds(per_line={"L1": D("30.00")}, total=D("30.00"))
    preview = run(order, [RefundLine("L1", 1, "seller")], prior=prior)
    assert items(preview) == [("goods", "L1", "100.00"), ("line_cap", "L1", "-30.00")]
    assert preview.refund_total == D("70.00") and preview.line_amounts["L1"] == D("70.00")


def test_prior_refunds_on_the_order_reduce_the_order_total() -> None:
    # Order 2 x 50.00 + shipping 10.00 = 110.00; 30.00 refunded on the order before (not on a line).
    # Seller return of everything: 100.00 + 10.00 = 110.00, capped at 110.00 - 30.00 = 80.00.
    order = [OrderLineMoney("L1", 2, D("50.00"))]
    prior = PriorRefunds(total=D("30.00"))
    preview = run(order, [RefundLine("L1", 2, "seller")], shipping="10.00", prior=prior)
    assert items(preview)[-1] == ("order_cap", None, "-30.00")
    assert preview.refund_total == D("80.00")


def test_order_cap_takes_from_the_refund_then_the_store_credit() -> None:
    order = [OrderLineMoney("L1", 1, D("50.00")), OrderLineMoney("L2", 1, D("50.00"))]
    prior = PriorRefunds(total=D("70.00"))  # 30.00 left
    preview = run(
        order,
        [RefundLine("L1", 1, "customer", "A"), RefundLine("L2", 1, "customer", "A", "store_credit")],
        prior=prior,
    )
    assert items(preview)[-2:] == [("order_cap", None, "-50.00"), ("order_cap", None, "-20.00")]
    assert (preview.refund_total, preview.store_credit_total) == (D("0.00"), D("30.00"))


def test_several_requests_on_one_order_never_exceed_the_order_total() -> None:
    # 3 x 33.33 = 99.99, shipping 6.01: 106.00 paid. Three seller refunds, then a stray repeat claim.
    order = [OrderLineMoney("L1", 3, D("33.33"))]
    previews, prior = in_sequence(order, [[RefundLine("L1", 1, "seller")]] * 3, shipping="6.01")
    assert sum(p.refund_total for p in previews) == D("106.00") == prior.total
    # Nothing is left: the same claim again refunds nothing (even if the units were not tracked).
    untracked = PriorRefunds(prior.per_line, prior.shipping, prior.total)
    again = run(order, [RefundLine("L1", 1, "seller")], "6.01", untracked)
    assert again.refund_total == 0


def test_too_many_units_is_an_error() -> None:
    order = [OrderLineMoney("L1", 2, D("10.00"))]
    with pytest.raises(ValueError, match="not yet settled"):
        run(order, [RefundLine("L1", 1, "seller")], prior=PriorRefunds(units={"L1": 2}))
    with pytest.raises(ValueError, match="not yet settled"):
        run(order, [RefundLine("L1", 2, "seller"), RefundLine("L1", 1, "seller")])


# --------------------------------------------------------------------------
# Validation, serialisation, basis hash


@pytest.mark.parametrize(
    "make",
    [
        lambda: OrderLineMoney("L1", 0, D("1")),
        lambda: OrderLineMoney("L1", 1, 1.5),  # type: ignore[arg-type]
        lambda: OrderLineMoney("L1", 1, D("10"), D("11")),
        lambda: OrderLineMoney("L1", 1, D("NaN")),
        lambda: RefundLine("L1", 1, "nobody"),
        lambda: RefundLine("L1", 1, "seller", "E"),
        lambda: RefundLine("L1", 1, "seller", None, "cash"),
        lambda: RefundLine("L1", -1, "seller"),
        lambda: RefundLine("L1", 1, "seller", None, "refund", exchange_price_difference=D("1")),
        lambda: RefundSettings(restocking_fees={"customer": {"B": D("101")}}),
        lambda: RefundSettings(restocking_fees={"customer": {"X": D("1")}}),
        lambda: RefundSettings(store_credit_bonus_percent=D("-1")),
        lambda: RefundSettings(refund_original_shipping_for=frozenset({"nobody"})),
        lambda: PriorRefunds(per_line={"L1": D("-1")}),
    ],
)
def test_bad_inputs_are_rejected(make) -> None:
    with pytest.raises(ValueError):
        make()


def test_bad_request_is_rejected() -> None:
    order = [OrderLineMoney("L1", 1, D("10.00"))]
    with pytest.raises(ValueError, match="unknown currency"):
        run(order, [], currency="XYZ1")
    with pytest.raises(ValueError, match="not on the order"):
        run(order, [RefundLine("L9", 1, "seller")])
    with pytest.raises(ValueError, match="listed twice"):
        run(order * 2, [])


def test_to_dict_is_json_safe_and_round_trips() -> None:
    order = [OrderLineMoney("L1", 2, D("59.99"), D("10.00"), D("7.81"))]
    preview = run(
        order,
        [RefundLine("L1", 1, "customer", "C", "store_credit")],
        shipping="5.00",
        refund_settings=RefundSettings(store_credit_bonus_percent=D("5")),
    )
    data = json.loads(json.dumps(preview.to_dict()))
    assert data["store_credit_total"] == str(preview.store_credit_total)
    assert all(isinstance(i["amount"], str) for i in data["items"])
    assert RefundPreview.from_dict(data) == preview


def test_basis_hash_tracks_the_amount_inputs() -> None:
    order = [OrderLineMoney("L1", 2, D("50.00"), D("5.00"), D("4.00"))]
    line = RefundLine("L1", 1, "customer", "B", reason="size_fit")
    base = run(order, [line], "8.00").basis_hash
    # Equal inputs written differently give the same hash.
    same = [OrderLineMoney("L1", 2, D("50.0"), D("5"), D("4.000"))]
    assert run(same, [RefundLine("L1", 1, "customer", "B", reason="size_fit")], "8").basis_hash == base
    assert run(order, [line], "8.00", PriorRefunds(per_line={"L1": D("0")})).basis_hash == base
    # The reason alone does not change the amounts.
    assert run(order, [RefundLine("L1", 1, "customer", "B", reason="changed_mind")], "8.00").basis_hash == base
    changed = [
        run(order, [RefundLine("L1", 2, "customer", "B")], "8.00"),
        run(order, [RefundLine("L1", 1, "customer", "C")], "8.00"),
        run(order, [RefundLine("L1", 1, "seller", "B")], "8.00"),
        run(order, [RefundLine("L1", 1, "customer", "B", "store_credit")], "8.00"),
        run(order, [line], "9.00"),
        run(order, [line], "8.00", PriorRefunds(units={"L1": 1})),
        run(order, [line], "8.00", refund_settings=RefundSettings(return_shipping_fee=D("1"))),
        run([OrderLineMoney("L1", 2, D("50.00"), D("6.00"), D("4.00"))], [line], "8.00"),
        run(order, [line], "8.00", currency="HKD"),
    ]
    hashes = {p.basis_hash for p in changed}
    assert base not in hashes and len(hashes) == len(changed)


# --------------------------------------------------------------------------
# Properties

PLACES = {"CNY": 2, "JPY": 0, "KWD": 3}
PROPERTY = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def minor(draw, places: int, low: int, high: int) -> Decimal:
    """A Decimal with exactly the currency's places, between low and high minor units."""
    return D(draw(st.integers(low, high))).scaleb(-places)


@st.composite
def orders(draw) -> tuple[str, tuple[OrderLineMoney, ...], Decimal]:
    currency = draw(st.sampled_from(sorted(PLACES)))
    places = PLACES[currency]
    lines = []
    for number in range(draw(st.integers(1, 5))):
        quantity = draw(st.integers(1, 5))
        price = draw(st.integers(0, 5 * 10 ** (places + 3)))
        discount = minor(draw, places, 0, price * quantity)
        tax = minor(draw, places, 0, price * quantity // 4)
        lines.append(OrderLineMoney(f"L{number + 1}", quantity, D(price).scaleb(-places), discount, tax))
    return currency, tuple(lines), minor(draw, places, 0, 3 * 10 ** (places + 1))


def plan(draw, currency: str, order: tuple[OrderLineMoney, ...], *, refund_only: bool) -> list[list[RefundLine]]:
    """Requests that together return every unit, in random partial steps."""
    places = PLACES[currency]
    remaining = {line.line_id: line.quantity for line in order}
    requests = []
    while any(remaining.values()):
        open_ids = [line_id for line_id, left in remaining.items() if left]
        chosen = draw(st.lists(st.sampled_from(open_ids), min_size=1, max_size=len(open_ids), unique=True))
        request = []
        for line_id in chosen:
            count = draw(st.integers(1, remaining[line_id]))
            remaining[line_id] -= count
            if refund_only:
                request.append(RefundLine(line_id, count, "seller"))
                continue
            outcome = draw(st.sampled_from(("refund", "store_credit", "exchange")))
            difference = None
            if outcome == "exchange" and draw(st.booleans()):
                difference = minor(draw, places, -(10 ** (places + 3)), 10 ** (places + 3))
            request.append(
                RefundLine(
                    line_id,
                    count,
                    draw(st.sampled_from(("seller", "logistics", "customer"))),
                    draw(st.sampled_from((None, "A", "B", "C", "D"))),
                    outcome,
                    exchange_price_difference=difference,
                )
            )
        requests.append(request)
    return requests


@st.composite
def refund_settings(draw, currency: str) -> RefundSettings:
    return RefundSettings(
        store_credit_bonus_percent=D(draw(st.sampled_from((0, 5, 10)))),
        return_shipping_fee=minor(draw, PLACES[currency], 0, 2 * 10 ** (PLACES[currency] + 1)),
    )


def assert_on_grid(preview: RefundPreview) -> None:
    places = PLACES[preview.currency]
    amounts = [i.amount for i in preview.items]
    amounts += [preview.refund_total, preview.store_credit_total, preview.owed_by_shopper, preview.shipping]
    amounts += list(preview.line_amounts.values())
    for amount in amounts:
        assert amount.as_tuple().exponent >= -places or amount == 0, amount
        assert round_money(amount, preview.currency) == amount


@PROPERTY
@given(order=orders(), data=st.data())
def test_property_caps_and_rounding_hold_for_any_sequence(order, data) -> None:
    currency, lines, shipping = order
    requests = plan(data.draw, currency, lines, refund_only=False)
    settings_ = data.draw(refund_settings(currency))
    previews, prior = in_sequence(lines, requests, str(shipping), settings_, currency)
    line_totals = {line.line_id: line.paid_total(currency) for line in lines}
    paid_out = {line_id: D(0) for line_id in line_totals}
    counted = D(0)
    for preview in previews:
        check_totals(preview)
        assert_on_grid(preview)  # (4)
        for item in preview.items:
            if item.line_id is not None and item.destination != "owed":
                paid_out[item.line_id] += item.amount
        counted += preview.counted_total
        assert preview.counted_total >= 0
        # (2) never more than the order's paid total, request after request
        assert counted <= sum(line_totals.values()) + shipping
    for line_id, total in line_totals.items():
        # (1) neither the line's money nor its counted value exceeds what was paid
        assert paid_out[line_id] <= total
        assert prior.per_line.get(line_id, D(0)) <= total
    assert prior.shipping <= shipping
    assert prior.total == counted


@PROPERTY
@given(order=orders(), data=st.data())
def test_property_returning_everything_refunds_exactly_what_was_paid(order, data) -> None:
    currency, lines, shipping = order
    requests = plan(data.draw, currency, lines, refund_only=True)
    previews, prior = in_sequence(lines, requests, str(shipping), NO_FEES, currency)
    for line in lines:
        # (3) the line's items over all partial refunds sum to its paid total
        refunded = sum(i.amount for p in previews for i in p.items if i.line_id == line.line_id)
        assert refunded == line.paid_total(currency)
        assert prior.units[line.line_id] == line.quantity
    for preview in previews:
        assert_on_grid(preview)
        assert all(i.kind in ("goods", "discount", "tax", "shipping") for i in preview.items)
    assert prior.shipping == shipping
    assert sum(p.refund_total for p in previews) == sum(line.paid_total(currency) for line in lines) + shipping


@PROPERTY
@given(order=orders(), data=st.data())
def test_property_caps_hold_whatever_was_refunded_before(order, data) -> None:
    currency, lines, shipping = order
    places = PLACES[currency]
    per_line = {line.line_id: minor(data.draw, places, 0, 10 ** (places + 4)) for line in lines}
    prior = PriorRefunds(
        per_line=per_line,
        shipping=minor(data.draw, places, 0, 10 ** (places + 2)),
        total=minor(data.draw, places, 0, 10 ** (places + 5)),
    )
    request = plan(data.draw, currency, lines, refund_only=False)[0]
    preview = run(lines, request, str(shipping), prior, data.draw(refund_settings(currency)), currency)
    check_totals(preview)
    for line in lines:
        left = max(D(0), line.paid_total(currency) - per_line[line.line_id])
        assert preview.line_amounts.get(line.line_id, D(0)) <= left
    order_total = sum(line.paid_total(currency) for line in lines) + shipping
    assert preview.counted_total <= max(D(0), order_total - prior.total)
    assert preview.shipping <= max(D(0), shipping - prior.shipping)


def copy_line(line: RefundLine, quantity: int | None = None) -> RefundLine:
    return RefundLine(
        line.line_id,
        line.quantity_received if quantity is None else quantity,
        line.responsibility,
        line.grade,
        line.outcome,
        exchange_price_difference=line.exchange_price_difference,
    )


@PROPERTY
@given(order=orders(), data=st.data())
def test_property_basis_hash_is_stable_and_follows_quantities(order, data) -> None:
    currency, lines, shipping = order
    request = plan(data.draw, currency, lines, refund_only=False)[0]
    first = run(lines, request, str(shipping), None, None, currency)
    # (5) equal inputs, rebuilt from scratch, give the same hash and the same amounts
    rebuilt = tuple(OrderLineMoney(o.line_id, o.quantity, o.unit_price, o.discount, o.tax) for o in lines)
    again = run(rebuilt, [copy_line(r) for r in request], str(shipping), PriorRefunds(), RefundSettings(), currency)
    assert again == first
    # ... and a different quantity received or ordered changes it
    target = request[0]
    if target.quantity_received > 1:
        fewer = [copy_line(target, target.quantity_received - 1), *request[1:]]
        assert run(lines, fewer, str(shipping), None, None, currency).basis_hash != first.basis_hash
    more = tuple(
        OrderLineMoney(o.line_id, o.quantity + 1, o.unit_price, o.discount, o.tax) if o.line_id == target.line_id else o
        for o in lines
    )
    assert run(more, request, str(shipping), None, None, currency).basis_hash != first.basis_hash
