"""Store-credit codes and the redemption payload: parsed once, in the domain."""

from __future__ import annotations

from decimal import Decimal

import pytest

from portal.domain.codes import CodeError, new_store_credit_code, parse_store_credit_code
from portal.domain.orders import PayloadError, Redemption, parse_redemption


def test_new_codes_parse_back_to_themselves_however_they_are_typed():
    for _ in range(50):
        code = new_store_credit_code()
        assert code.startswith("SC-") and len(code) == 16
        assert parse_store_credit_code(code) == code
        assert parse_store_credit_code(code.lower().replace("-", " ")) == code
        assert parse_store_credit_code(code.replace("0", "O").replace("1", "I")) == code


@pytest.mark.parametrize(
    "text", ["", "SC-NOPE", "SC", "P-7KQ2-M9XD-C3R", "XX-0000-0000-000", "SC-0000-0000-00\x00", "SC-0000-0000-0000"]
)
def test_malformed_codes_are_refused_before_any_lookup(text):
    with pytest.raises(CodeError):
        parse_store_credit_code(text)


def test_a_wrong_check_character_is_caught():
    code = new_store_credit_code()
    wrong = code[:-1] + ("0" if code[-1] != "0" else "1")
    with pytest.raises(CodeError):
        parse_store_credit_code(wrong)


def test_a_redemption_payload_is_parsed_into_plain_values():
    parsed = parse_redemption({"code": " sc-abcd ", "amount": "12.50", "currency": "CNY", "reference": "ORDER-9"})
    assert parsed == Redemption(code="sc-abcd", amount=Decimal("12.50"), currency="CNY", reference="ORDER-9")


@pytest.mark.parametrize(
    "payload, fields",
    [
        ([], {""}),
        ({}, {"code", "amount", "currency", "reference"}),
        ({"code": 5, "amount": 5, "currency": "CNY", "reference": "r"}, {"code", "amount"}),
        ({"code": "SC-1", "amount": "1.234", "currency": "CNY", "reference": "r" * 65}, {"amount", "reference"}),
        ({"code": "SC-1", "amount": "-1", "currency": "cny", "reference": "r"}, {"amount", "currency"}),
    ],
)
def test_every_problem_in_a_redemption_payload_is_reported(payload, fields):
    with pytest.raises(PayloadError) as caught:
        parse_redemption(payload)
    assert {e.field for e in caught.value.errors} == fields
