"""Amounts in emails, pages and labels are written by currency and locale, from the one money formatter."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from portal.i18n import money
from portal.jobs import build_email
from portal.services.refunds import preview_refund, refund_settings
from tests.helpers import email_text, inspected, login_shopper


def refunded_email(app, locale, amount, currency, store_credit="0", code=None):
    message = SimpleNamespace(
        event_id="ev-1",
        created_at=datetime(2026, 11, 28, 9, 30, tzinfo=UTC),
        payload={
            "template": "return_refunded",
            "to": "li.wei@example.com",
            "locale": locale,
            "context": {
                "rma": "R-1",
                "amount": amount,
                "store_credit": store_credit,
                "code": code,
                "currency": currency,
            },
        },
    )
    return email_text(build_email(app, message))


@pytest.mark.parametrize(
    ("locale", "amount", "currency", "expected"),
    [
        ("en", "1456.97", "CNY", "CN¥1,456.97"),
        ("zh_Hans", "1456.97", "CNY", "¥1,456.97"),
        ("en", "1457", "JPY", "¥1,457"),
        ("en", "1456.9700", "CNY", "CN¥1,456.97"),
    ],
)
def test_refund_email_formats_the_amount_in_the_shoppers_locale(app, locale, amount, currency, expected) -> None:
    body = refunded_email(app, locale, amount, currency)
    assert expected in body
    assert f"{amount} {currency}" not in body and "1456.9700" not in body


def test_refund_email_in_chinese(app) -> None:
    assert "原路退回：¥1,456.97。" in refunded_email(app, "zh_Hans", "1456.97", "CNY")


def test_refund_email_store_credit_only(app) -> None:
    body = refunded_email(app, "en", "0.00", "CNY", store_credit="50.00", code="SC-ABCD")
    assert "original payment method" not in body and "CN¥50.00" in body and "SC-ABCD" in body


def test_money_outside_a_request_uses_the_given_or_default_locale(app) -> None:
    assert money("1456.97", "CNY") == "CN¥1,456.97"
    assert money("1456.97", "CNY", "zh_Hans") == "¥1,456.97"
    assert money(None, "CNY") == ""


def test_money_filter_in_templates(app) -> None:
    with app.test_request_context():
        assert app.jinja_env.from_string("{{ a|money('JPY') }}").render(a="1457") == "¥1,457"


def test_one_return_fee_setting_moves_label_and_refund_together(app, client, order, session) -> None:
    req = inspected(app, client, session)
    shopper = app.test_client()
    login_shopper(shopper, number="RF-1")
    for fee, total in (("8.00", "180.00"), ("12.50", "175.50")):
        app.config["CUSTOMER_RETURN_FEE"] = fee
        label = shopper.get(f"/requests/{req.rma}/label").get_data(as_text=True)
        assert f"A return shipping fee of CN¥{fee} will be deducted" in label
        assert str(preview_refund(session, req, refund_settings(app.config)).refund_total) == total
    app.config["CUSTOMER_RETURN_FEE"] = None
    assert "you pay nothing" in shopper.get(f"/requests/{req.rma}/label").get_data(as_text=True)
    assert str(preview_refund(session, req, refund_settings(app.config)).refund_total) == "188.00"
