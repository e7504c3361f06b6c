"""Money written by currency: Babel for people, the currency's minor unit for machines; the one return fee."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from portal.domain.money import format_money, plain_amount
from portal.domain.refunds import RETURN_SHIPPING_FEE, OrderLineMoney, RefundLine, ReturnFee, compute_refund
from portal.exports import reconciliation_csv


@pytest.mark.parametrize(
    ("amount", "currency", "locale", "expected"),
    [
        (D("1456.9700"), "CNY", "en", "CN¥1,456.97"),
        (D("1456.97"), "CNY", "zh_Hans", "¥1,456.97"),
        (D("1457"), "JPY", "en", "¥1,457"),
        (D("1456.97"), "JPY", "en", "¥1,457"),  # no decimals in yen: rounded half up
        (D("1457.0000"), "JPY", "zh_Hans", "JP¥1,457"),
        (D("12.3456"), "KWD", "en", "KWD12.346"),  # three decimals
        ("0.5", "CNY", "en", "CN¥0.50"),
    ],
)
def test_format_money_by_currency_and_locale(amount, currency, locale, expected) -> None:
    assert format_money(amount, currency, locale) == expected


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (D("1456.9700"), "CNY", "1456.97"),
        (D("1456.5"), "JPY", "1457"),
        (D("0"), "CNY", "0.00"),
        (D("1.2"), "KWD", "1.200"),
        (3, "JPY", "3"),
    ],
)
def test_plain_amount_has_the_currency_precision(amount, currency, expected) -> None:
    assert plain_amount(amount, currency) == expected


def test_reconciliation_csv_uses_each_currency_precision() -> None:
    rows = [
        ("2024-05-01", "alipay", "CNY", "refund", 2, D("1456.9700")),
        ("2024-05-01", "card", "JPY", "refund", 1, D("1457.0000")),
        ("2024-05-01", "card", "KWD", "refund", 1, 3.5),
    ]  # SQLite may sum to a float
    lines = reconciliation_csv(rows).splitlines()
    assert lines[1:] == [
        "2024-05-01,alipay,CNY,refund,2,1456.97",
        "2024-05-01,card,JPY,refund,1,1457",
        "2024-05-01,card,KWD,refund,1,3.500",
    ]


def test_return_fee_is_charged_when_a_line_is_not_the_shops_responsibility() -> None:
    fee = ReturnFee(D("8.00"))
    assert fee.charged(["customer"]) and fee.charged(["seller", "customer"])
    assert not fee.charged(["seller", "logistics"]) and not fee.charged([])
    assert not ReturnFee().charged(["customer"])  # no amount, no fee


@pytest.mark.parametrize("amount", [D("8.00"), D("12.50")])
def test_the_refund_deducts_the_fee_the_label_announces(amount) -> None:
    fee = ReturnFee(amount)
    preview = compute_refund(
        "CNY",
        [OrderLineMoney("L1", 1, D("100.00"))],
        D(0),
        [RefundLine("L1", 1, "customer")],
        settings=fee.refund_settings(),
    )
    assert fee.charged(["customer"])
    assert [i.amount for i in preview.items if i.kind == RETURN_SHIPPING_FEE] == [-amount]
    assert preview.refund_total == D("100.00") - amount


def test_return_fee_refuses_a_negative_amount() -> None:
    with pytest.raises(ValueError):
        ReturnFee(D("-1"))
