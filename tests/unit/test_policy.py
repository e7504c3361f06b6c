"""Policy loading and the decision rules, boundary by boundary."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from importlib import resources
from typing import Any

import pytest

from portal.domain.policy import (
    DEFAULT_POLICY_RESOURCE,
    Decision,
    LineChoice,
    LineDecision,
    LineFacts,
    OrderFacts,
    Policy,
    PolicyError,
    RuleResult,
    Verdict,
    compare_decisions,
    decide,
    load_policy,
    precheck_line,
    worst,
)
from portal.domain.reasons import responsibility_of
from portal.domain.text import Text

UTC = UTC
# 17:00 UTC on 1 March is 01:00 on 2 March in Shanghai: the shop counts from 2 March.
DELIVERED = datetime(2026, 3, 1, 17, 0, tzinfo=UTC)
POLICY = Policy(version="test")


def shop_day(day: int, hour: int = 12) -> datetime:
    """``hour`` o'clock Shanghai time on the ``day``-th day after DELIVERED's shop date (2 March)."""
    return datetime(2026, 3, 2, hour, 0, tzinfo=UTC) - timedelta(hours=8) + timedelta(days=day)


def make_line(**changes: Any) -> LineFacts:
    values: dict[str, Any] = {
        "line_id": "L1",
        "sku": "SHIRT-M",
        "product_name": "Shirt",
        "category": "tops",
        "quantity": 2,
        "unit_price": Decimal("50.00"),
        "discount": Decimal("0"),
        "tax": Decimal("0"),
        "final_sale": False,
        "already_requested": 0,
        "exchange_options": frozenset({"SHIRT-L", "SHIRT-S"}),
    }
    values.update(changes)
    return LineFacts(**values)


def make_order(*lines: LineFacts, **changes: Any) -> OrderFacts:
    values: dict[str, Any] = {
        "order_number": "A1001",
        "currency": "CNY",
        "delivered_at": DELIVERED,
        "gift": False,
        "lines": lines or (make_line(),),
        "customer_recent_returns": 0,
    }
    values.update(changes)
    return OrderFacts(**values)


def choose(**changes: Any) -> LineChoice:
    values: dict[str, Any] = {
        "line_id": "L1",
        "quantity": 1,
        "reason": "changed_mind",
        "sub_reason": None,
        "outcome": "refund",
        "exchange_sku": None,
        "photo_count": 0,
    }
    values.update(changes)
    return LineChoice(**values)


def rule(trace: tuple[RuleResult, ...], name: str) -> RuleResult:
    found = [r for r in trace if r.rule == name]
    assert len(found) == 1, f"expected one {name!r} rule, got {[r.rule for r in trace]}"
    return found[0]


def rule_names(trace: tuple[RuleResult, ...]) -> list[str]:
    return [r.rule for r in trace]


def all_texts(decision: Decision) -> list[Text]:
    traces = [decision.trace, *(line.trace for line in decision.lines)]
    return [text for trace in traces for r in trace for text in (r.shopper, r.staff)]


def default_text() -> str:
    return resources.files("portal").joinpath(DEFAULT_POLICY_RESOURCE).read_text(encoding="utf-8")


# --------------------------------------------------------------------------
# Time windows


def test_shop_day_helper_counts_in_shanghai() -> None:
    assert DELIVERED.date().isoformat() == "2026-03-01"
    assert shop_day(7, hour=23).astimezone(POLICY.tz).date().isoformat() == "2026-03-09"


@pytest.mark.parametrize(
    ("delivered", "now", "elapsed", "verdict"),
    [
        # Delivered 01:00 on 2 March shop time (still 1 March in UTC).
        (DELIVERED, DELIVERED, 0, Verdict.ELIGIBLE),
        (DELIVERED, datetime(2026, 3, 9, 15, 59, tzinfo=UTC), 7, Verdict.ELIGIBLE),  # UTC would say day 8
        (DELIVERED, datetime(2026, 3, 9, 16, 0, tzinfo=UTC), 8, Verdict.NOT_ELIGIBLE),
        # Delivered 18:00 on 1 March shop time; now is already 9 March in Shanghai but 8 March in UTC.
        (datetime(2026, 3, 1, 10, 0, tzinfo=UTC), datetime(2026, 3, 8, 15, 59, tzinfo=UTC), 7, Verdict.ELIGIBLE),
        (datetime(2026, 3, 1, 10, 0, tzinfo=UTC), datetime(2026, 3, 8, 17, 0, tzinfo=UTC), 8, Verdict.NOT_ELIGIBLE),
    ],
)
def test_general_window_counts_days_in_shop_time_zone(
    delivered: datetime, now: datetime, elapsed: int, verdict: Verdict
) -> None:
    decision = decide(POLICY, make_order(delivered_at=delivered), [choose()], now)
    window = rule(decision.lines[0].trace, "window")
    assert window.staff.params["elapsed"] == elapsed
    assert window.passed is (verdict is Verdict.ELIGIBLE)
    assert decision.verdict is verdict


@pytest.mark.parametrize(
    ("reason", "day", "verdict"),
    [
        ("defective", 8, Verdict.ELIGIBLE),
        ("defective", 15, Verdict.ELIGIBLE),
        ("defective", 16, Verdict.NOT_ELIGIBLE),
        ("damaged", 15, Verdict.ELIGIBLE),
        ("damaged", 16, Verdict.NOT_ELIGIBLE),
        ("size_fit", 7, Verdict.ELIGIBLE),
        ("size_fit", 8, Verdict.NOT_ELIGIBLE),
        ("missing_parts", 8, Verdict.NOT_ELIGIBLE),  # not a quality reason
        ("late_delivery", 7, Verdict.ELIGIBLE),
    ],
)
def test_window_for_chosen_reason(reason: str, day: int, verdict: Verdict) -> None:
    decision = decide(POLICY, make_order(), [choose(reason=reason, photo_count=1)], shop_day(day))
    assert decision.verdict is verdict
    window = rule(decision.lines[0].trace, "window")
    assert window.staff.params["days"] == (15 if reason in {"defective", "damaged"} else 7)
    assert ("quality reason" in window.staff.msgid) is (reason in {"defective", "damaged"})


@pytest.mark.parametrize(("day", "hint"), [(8, True), (15, True), (16, False)])
def test_expired_general_window_mentions_quality_reasons_only_while_they_apply(day: int, hint: bool) -> None:
    decision = decide(POLICY, make_order(), [choose()], shop_day(day))
    window = rule(decision.lines[0].trace, "window")
    assert not window.passed
    assert ("quality problem" in window.shopper.render()) is hint


@pytest.mark.parametrize(
    ("day", "passed", "quality_only"),
    [(0, True, False), (7, True, False), (8, True, True), (15, True, True), (16, False, False)],
)
def test_precheck_window(day: int, passed: bool, quality_only: bool) -> None:
    decision = precheck_line(POLICY, make_order(), "L1", shop_day(day))
    window = rule(decision.trace, "window")
    assert window.passed is passed
    assert decision.verdict is (Verdict.ELIGIBLE if passed else Verdict.NOT_ELIGIBLE)
    assert ("quality reasons only" in window.staff.msgid) is quality_only
    assert window.shopper.render()


@pytest.mark.parametrize(
    ("category", "reason", "day", "verdict"),
    [
        ("shoes", "changed_mind", 30, Verdict.ELIGIBLE),
        ("shoes", "changed_mind", 31, Verdict.NOT_ELIGIBLE),
        ("shoes", "defective", 45, Verdict.ELIGIBLE),
        ("shoes", "defective", 46, Verdict.NOT_ELIGIBLE),
        ("tops", "changed_mind", 8, Verdict.NOT_ELIGIBLE),
        # Override gives only quality_days; days falls back to window.days.
        ("electronics", "changed_mind", 7, Verdict.ELIGIBLE),
        ("electronics", "changed_mind", 8, Verdict.NOT_ELIGIBLE),
        ("electronics", "defective", 30, Verdict.ELIGIBLE),
        ("electronics", "defective", 31, Verdict.NOT_ELIGIBLE),
    ],
)
def test_category_window_override(category: str, reason: str, day: int, verdict: Verdict) -> None:
    policy = load_policy(
        'version = "c"\n'
        "[window.categories]\n"
        "shoes = { days = 30, quality_days = 45 }\n"
        "electronics = { quality_days = 30 }\n"
    )
    assert policy.windows_for("shoes") == (30, 45)
    assert policy.windows_for("electronics") == (7, 30)
    order = make_order(make_line(category=category))
    decision = decide(policy, order, [choose(reason=reason, photo_count=1)], shop_day(day))
    assert decision.verdict is verdict


# --------------------------------------------------------------------------
# Delivery, category, final sale, remaining units


@pytest.mark.parametrize(
    ("delivered_at", "now", "passed"),
    [
        (None, shop_day(1), False),
        (DELIVERED + timedelta(seconds=1), DELIVERED, False),  # delivered in the future
        (DELIVERED, DELIVERED, True),  # delivered this very moment
    ],
)
def test_delivered_rule(delivered_at: datetime | None, now: datetime, passed: bool) -> None:
    order = make_order(delivered_at=delivered_at)
    expected = Verdict.ELIGIBLE if passed else Verdict.NOT_ELIGIBLE
    pre = precheck_line(POLICY, order, "L1", now)
    decision = decide(POLICY, order, [choose()], now)
    for trace, verdict in ((pre.trace, pre.verdict), (decision.lines[0].trace, decision.verdict)):
        assert rule(trace, "delivered").passed is passed
        assert ("window" in rule_names(trace)) is passed
        assert verdict is expected


@pytest.mark.parametrize(
    ("category", "verdict"),
    [
        ("underwear", Verdict.NOT_ELIGIBLE),
        ("cosmetics-opened", Verdict.NOT_ELIGIBLE),
        ("perishables", Verdict.NOT_ELIGIBLE),
        ("customised", Verdict.NOT_ELIGIBLE),
        ("cosmetics", Verdict.ELIGIBLE),
        ("tops", Verdict.ELIGIBLE),
    ],
)
def test_excluded_categories(category: str, verdict: Verdict) -> None:
    order = make_order(make_line(category=category))
    pre = precheck_line(POLICY, order, "L1", shop_day(1))
    assert pre.verdict is verdict
    assert rule(pre.trace, "excluded_category").passed is (verdict is Verdict.ELIGIBLE)
    assert decide(POLICY, order, [choose()], shop_day(1)).verdict is verdict


@pytest.mark.parametrize(("final_sale", "verdict"), [(True, Verdict.NOT_ELIGIBLE), (False, Verdict.ELIGIBLE)])
def test_final_sale(final_sale: bool, verdict: Verdict) -> None:
    order = make_order(make_line(final_sale=final_sale))
    assert precheck_line(POLICY, order, "L1", shop_day(1)).verdict is verdict
    decision = decide(POLICY, order, [choose()], shop_day(1))
    assert decision.verdict is verdict
    assert rule(decision.lines[0].trace, "final_sale").passed is not final_sale


@pytest.mark.parametrize(
    ("quantity", "already", "chosen", "verdict", "failed"),
    [
        (2, 0, 2, Verdict.ELIGIBLE, []),  # exactly the remaining units
        (2, 0, 3, Verdict.NOT_ELIGIBLE, ["quantity"]),
        (2, 1, 1, Verdict.ELIGIBLE, []),
        (2, 1, 2, Verdict.NOT_ELIGIBLE, ["quantity"]),  # one more than remaining
        (2, 2, 1, Verdict.NOT_ELIGIBLE, ["remaining"]),
        (2, 3, 1, Verdict.NOT_ELIGIBLE, ["remaining"]),
        (2, 0, -1, Verdict.NOT_ELIGIBLE, ["quantity"]),
    ],
)
def test_quantity_against_remaining(
    quantity: int, already: int, chosen: int, verdict: Verdict, failed: list[str]
) -> None:
    order = make_order(make_line(quantity=quantity, already_requested=already))
    decision = decide(POLICY, order, [choose(quantity=chosen)], shop_day(1))
    assert decision.verdict is verdict
    assert [r.rule for r in decision.lines[0].failed()] == failed
    assert decision.lines[0].remaining == max(0, quantity - already)


def test_quantity_zero_means_not_chosen() -> None:
    decision = decide(POLICY, make_order(), [choose(quantity=0)], shop_day(1))
    assert decision.lines == ()
    assert decision.verdict is Verdict.NOT_ELIGIBLE
    assert not rule(decision.trace, "lines_chosen").passed
    assert decision.shopper_reasons() == [Text("Please choose at least one item to return.")]
    assert decision.auto_approve is False and decision.returnless is False


def test_precheck_reports_remaining_value_and_no_choice_fields() -> None:
    line = make_line(quantity=3, already_requested=1, unit_price=Decimal("10.00"), discount=Decimal("1.00"))
    pre = precheck_line(POLICY, make_order(line), "L1", shop_day(1))
    assert pre.remaining == 2
    assert pre.value == Decimal("19.34")  # (30.00 - 1.00) / 3 = 9.67 per unit
    assert pre.returnless is False and pre.responsibility is None
    assert rule_names(pre.trace) == ["delivered", "excluded_category", "final_sale", "remaining", "window"]


# --------------------------------------------------------------------------
# Reason, outcome, gift, exchange, photos


@pytest.mark.parametrize(
    ("reason", "sub_reason", "passed"),
    [
        ("size_fit", "too_small", True),
        ("size_fit", None, True),
        ("late_delivery", None, True),
        ("size_fit", "stopped_working", False),  # belongs to another reason
        ("size_fit", "bogus", False),
        ("bogus", None, False),
        (None, None, False),
        ("", None, False),
    ],
)
def test_reason_and_sub_reason(reason: str | None, sub_reason: str | None, passed: bool) -> None:
    decision = decide(POLICY, make_order(), [choose(reason=reason, sub_reason=sub_reason)], shop_day(1))
    line = decision.lines[0]
    assert rule(line.trace, "reason").passed is passed
    assert decision.verdict is (Verdict.ELIGIBLE if passed else Verdict.NOT_ELIGIBLE)
    assert line.responsibility == (responsibility_of(reason) if reason else None)


@pytest.mark.parametrize(
    ("outcome", "passed"), [("refund", True), ("store_credit", True), (None, False), ("cash", False)]
)
def test_outcome_known(outcome: str | None, passed: bool) -> None:
    decision = decide(POLICY, make_order(), [choose(outcome=outcome)], shop_day(1))
    assert rule(decision.lines[0].trace, "outcome").passed is passed
    assert decision.verdict is (Verdict.ELIGIBLE if passed else Verdict.NOT_ELIGIBLE)


@pytest.mark.parametrize(
    ("gift_outcomes", "gift", "outcome", "verdict"),
    [
        (("store_credit",), True, "store_credit", Verdict.ELIGIBLE),
        (("store_credit",), True, "refund", Verdict.NOT_ELIGIBLE),
        (("store_credit",), True, "exchange", Verdict.NOT_ELIGIBLE),
        (("store_credit", "exchange"), True, "exchange", Verdict.ELIGIBLE),
        (("store_credit",), False, "refund", Verdict.ELIGIBLE),
        ((), True, "store_credit", Verdict.NOT_ELIGIBLE),
    ],
)
def test_gift_outcomes(gift_outcomes: tuple[str, ...], gift: bool, outcome: str, verdict: Verdict) -> None:
    policy = dataclasses.replace(POLICY, gift_outcomes=gift_outcomes)
    choice = choose(outcome=outcome, exchange_sku="SHIRT-L" if outcome == "exchange" else None)
    decision = decide(policy, make_order(gift=gift), [choice], shop_day(1))
    assert decision.verdict is verdict
    assert ("gift" in rule_names(decision.lines[0].trace)) is gift


@pytest.mark.parametrize(
    ("exchange_sku", "options", "passed"),
    [
        ("SHIRT-L", frozenset({"SHIRT-L"}), True),
        ("SHIRT-XL", frozenset({"SHIRT-L"}), False),  # out of stock
        ("SHIRT-M", frozenset({"SHIRT-L"}), False),  # the same variant is not an exchange
        ("SHIRT-L", frozenset(), False),
        (None, frozenset({"SHIRT-L"}), False),
        ("", frozenset({"SHIRT-L"}), False),
    ],
)
def test_exchange_target_in_stock(exchange_sku: str | None, options: frozenset[str], passed: bool) -> None:
    order = make_order(make_line(exchange_options=options))
    decision = decide(POLICY, order, [choose(outcome="exchange", exchange_sku=exchange_sku)], shop_day(1))
    assert rule(decision.lines[0].trace, "exchange").passed is passed
    assert decision.verdict is (Verdict.ELIGIBLE if passed else Verdict.NOT_ELIGIBLE)


def test_exchange_rule_only_for_exchange_outcome() -> None:
    decision = decide(POLICY, make_order(), [choose(outcome="refund", exchange_sku="NOPE")], shop_day(1))
    assert "exchange" not in rule_names(decision.lines[0].trace)
    assert decision.verdict is Verdict.ELIGIBLE


@pytest.mark.parametrize(
    ("reason", "photos", "checked", "verdict"),
    [
        ("damaged", 0, True, Verdict.NOT_ELIGIBLE),
        ("damaged", 1, True, Verdict.ELIGIBLE),
        ("wrong_item", 0, True, Verdict.NOT_ELIGIBLE),
        ("not_as_described", 0, True, Verdict.NOT_ELIGIBLE),
        ("defective", 0, True, Verdict.NOT_ELIGIBLE),
        ("defective", 3, True, Verdict.ELIGIBLE),
        ("changed_mind", 0, False, Verdict.ELIGIBLE),
        ("missing_parts", 0, False, Verdict.ELIGIBLE),
    ],
)
def test_photos_required(reason: str, photos: int, checked: bool, verdict: Verdict) -> None:
    decision = decide(POLICY, make_order(), [choose(reason=reason, photo_count=photos)], shop_day(1))
    assert decision.verdict is verdict
    assert ("photos" in rule_names(decision.lines[0].trace)) is checked


def test_photos_not_required_when_policy_lists_none() -> None:
    policy = dataclasses.replace(POLICY, photo_required_reasons=())
    decision = decide(policy, make_order(), [choose(reason="defective", photo_count=0)], shop_day(1))
    assert decision.verdict is Verdict.ELIGIBLE


# --------------------------------------------------------------------------
# Unknown lines, naive times, severity


def test_unknown_line_is_a_rule_result_not_an_exception() -> None:
    order = make_order()
    decision = decide(POLICY, order, [choose(), choose(line_id="NOPE")], shop_day(1))
    assert decision.verdict is Verdict.NOT_ELIGIBLE
    unknown = decision.line("NOPE")
    assert unknown is not None and unknown.verdict is Verdict.NOT_ELIGIBLE
    assert rule_names(unknown.trace) == ["line"]
    assert decision.line("L1").verdict is Verdict.ELIGIBLE  # type: ignore[union-attr]
    pre = precheck_line(POLICY, order, "NOPE", shop_day(1))
    assert pre.verdict is Verdict.NOT_ELIGIBLE and pre.remaining == 0


def test_duplicate_line_choice_is_not_eligible() -> None:
    decision = decide(POLICY, make_order(), [choose(), choose()], shop_day(1))
    assert [line.verdict for line in decision.lines] == [Verdict.ELIGIBLE, Verdict.NOT_ELIGIBLE]
    assert decision.verdict is Verdict.NOT_ELIGIBLE


@pytest.mark.parametrize("call", ["decide", "precheck"])
def test_naive_now_is_rejected(call: str) -> None:
    naive = datetime(2026, 3, 3, 12, 0)
    with pytest.raises(ValueError, match="timezone-aware"):
        if call == "decide":
            decide(POLICY, make_order(), [choose()], naive)
        else:
            precheck_line(POLICY, make_order(), "L1", naive)


def test_naive_delivered_at_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        make_order(delivered_at=datetime(2026, 3, 1, 17, 0))


@pytest.mark.parametrize(
    ("verdicts", "expected"),
    [
        ([], Verdict.ELIGIBLE),
        ([Verdict.ELIGIBLE, Verdict.NEEDS_REVIEW], Verdict.NEEDS_REVIEW),
        ([Verdict.NEEDS_REVIEW, Verdict.NOT_ELIGIBLE, Verdict.ELIGIBLE], Verdict.NOT_ELIGIBLE),
    ],
)
def test_worst_verdict(verdicts: list[Verdict], expected: Verdict) -> None:
    assert worst(verdicts) is expected


def test_request_verdict_is_most_severe_line() -> None:
    order = make_order(make_line(), make_line(line_id="L2", final_sale=True), customer_recent_returns=9)
    decision = decide(POLICY, order, [choose(), choose(line_id="L2")], shop_day(1))
    assert [line.verdict for line in decision.lines] == [Verdict.ELIGIBLE, Verdict.NOT_ELIGIBLE]
    assert not rule(decision.trace, "frequent_returner").passed
    assert decision.verdict is Verdict.NOT_ELIGIBLE
    assert decision.auto_approve is False
    assert "auto_approve" not in rule_names(decision.trace)


# --------------------------------------------------------------------------
# Request level: value thresholds, frequent returners


@pytest.mark.parametrize(
    ("price", "verdict", "auto_approve"),
    [
        ("199.99", Verdict.ELIGIBLE, True),
        ("200.00", Verdict.ELIGIBLE, True),  # exactly auto_approve_max
        ("200.01", Verdict.ELIGIBLE, False),
        ("1000.00", Verdict.ELIGIBLE, False),  # exactly review_above
        ("1000.01", Verdict.NEEDS_REVIEW, False),
    ],
)
def test_value_thresholds(price: str, verdict: Verdict, auto_approve: bool) -> None:
    order = make_order(make_line(quantity=1, unit_price=Decimal(price)))
    decision = decide(POLICY, order, [choose()], shop_day(1))
    assert decision.value == Decimal(price)
    assert decision.verdict is verdict
    assert decision.auto_approve is auto_approve
    assert rule(decision.trace, "review_value").passed is (verdict is Verdict.ELIGIBLE)
    if verdict is Verdict.ELIGIBLE:
        assert rule(decision.trace, "auto_approve").passed is auto_approve


def test_value_sums_lines_with_discount_and_tax() -> None:
    order = make_order(
        make_line(quantity=3, unit_price=Decimal("10.00"), discount=Decimal("1.00"), tax=Decimal("0.30")),
        make_line(line_id="L2", quantity=1, unit_price=Decimal("5.55")),
    )
    partial = decide(POLICY, order, [choose(quantity=1)], shop_day(1))
    assert partial.value == Decimal("9.77")
    whole = decide(POLICY, order, [choose(quantity=3), choose(line_id="L2")], shop_day(1))
    assert [line.value for line in whole.lines] == [Decimal("29.30"), Decimal("5.55")]
    assert whole.value == Decimal("34.85")


@pytest.mark.parametrize(
    ("recent", "verdict"),
    [(0, Verdict.ELIGIBLE), (3, Verdict.ELIGIBLE), (4, Verdict.NEEDS_REVIEW)],
)
def test_frequent_returner(recent: int, verdict: Verdict) -> None:
    decision = decide(POLICY, make_order(customer_recent_returns=recent), [choose()], shop_day(1))
    assert decision.verdict is verdict
    assert rule(decision.trace, "frequent_returner").passed is (verdict is Verdict.ELIGIBLE)
    assert decision.auto_approve is (verdict is Verdict.ELIGIBLE)


# --------------------------------------------------------------------------
# Returnless


@pytest.mark.parametrize(
    ("price", "reason", "outcome", "returnless"),
    [
        ("14.99", "defective", "refund", True),
        ("15.00", "defective", "refund", False),  # exactly the threshold is not below it
        ("14.99", "damaged", "store_credit", True),
        ("14.99", "late_delivery", "refund", True),
        ("14.99", "missing_parts", "refund", True),
        ("14.99", "wrong_item", "exchange", False),
        ("14.99", "changed_mind", "refund", False),  # customer responsibility
        ("14.99", "size_fit", "store_credit", False),
    ],
)
def test_returnless(price: str, reason: str, outcome: str, returnless: bool) -> None:
    order = make_order(make_line(quantity=1, unit_price=Decimal(price)))
    choice = choose(reason=reason, outcome=outcome, photo_count=1, exchange_sku="SHIRT-L")
    decision = decide(POLICY, order, [choice], shop_day(1))
    assert decision.verdict is Verdict.ELIGIBLE
    assert decision.lines[0].returnless is returnless
    assert decision.returnless is returnless
    assert rule(decision.lines[0].trace, "returnless").passed


def test_returnless_needs_every_line_and_an_eligible_line() -> None:
    order = make_order(
        make_line(quantity=1, unit_price=Decimal("5.00")),
        make_line(line_id="L2", quantity=1, unit_price=Decimal("5.00")),
    )
    mixed = decide(
        POLICY,
        order,
        [choose(reason="late_delivery"), choose(line_id="L2", reason="size_fit")],
        shop_day(1),
    )
    assert [line.returnless for line in mixed.lines] == [True, False]
    assert mixed.returnless is False
    # A line that fails a rule is never returnless, and its returnless rule is not checked.
    late = decide(POLICY, order, [choose(reason="late_delivery")], shop_day(8))
    assert late.lines[0].returnless is False
    assert "returnless" not in rule_names(late.lines[0].trace)


# --------------------------------------------------------------------------
# Serialisation and explanations


def _scenarios() -> list[Decision]:
    order = make_order(
        make_line(),
        make_line(line_id="L2", category="underwear", final_sale=True, already_requested=2),
        gift=True,
        customer_recent_returns=5,
    )
    return [
        decide(POLICY, make_order(), [choose()], shop_day(1)),
        decide(
            POLICY,
            make_order(make_line(quantity=1, unit_price=Decimal("9.99"))),
            [choose(reason="damaged", photo_count=1)],
            shop_day(1),
        ),
        decide(POLICY, order, [choose(outcome="refund"), choose(line_id="L2"), choose(line_id="X")], shop_day(20)),
        decide(POLICY, order, [choose(reason="bogus", outcome="exchange", exchange_sku="NOPE")], shop_day(1)),
        decide(POLICY, order, [choose(reason="defective", sub_reason="too_small", outcome=None)], shop_day(9)),
        decide(POLICY, make_order(delivered_at=None), [choose()], shop_day(1)),
        decide(POLICY, make_order(), [], shop_day(1)),
        decide(POLICY, make_order(make_line(quantity=1, unit_price=Decimal("1500"))), [choose()], shop_day(1)),
        decide(
            POLICY,
            make_order(),
            [choose(quantity=5, outcome="exchange", exchange_sku="SHIRT-L")],
            DELIVERED - timedelta(days=1),
        ),
    ]


@pytest.mark.parametrize("index", range(9))
def test_decision_round_trips_through_json(index: int) -> None:
    decision = _scenarios()[index]
    encoded = json.dumps(decision.to_dict())
    restored = Decision.from_dict(json.loads(encoded))
    assert restored == decision
    assert compare_decisions(decision, restored) == []


def _walk_params(value: Any) -> None:
    assert isinstance(value, (str, int)) and not isinstance(value, bool), value


@pytest.mark.parametrize("index", range(9))
def test_texts_render_and_params_are_plain(index: int) -> None:
    decision = _scenarios()[index]
    for text in all_texts(decision):
        assert text.render()
        assert "%(" not in text.render()
        for param in text.params.values():
            _walk_params(param)


def test_reasons_list_failed_rules_without_repeats() -> None:
    order = make_order(make_line(), make_line(line_id="L2"), delivered_at=None)
    decision = decide(POLICY, order, [choose(), choose(line_id="L2")], shop_day(1))
    shopper = decision.shopper_reasons()
    assert [t.msgid for t in shopper] == [
        "This order has not been delivered yet. You can start a return once it arrives."
    ]
    assert [t.msgid for t in decision.staff_reasons()] == ["delivery: not delivered yet"]


def test_line_decision_to_dict_is_json_safe() -> None:
    pre = precheck_line(POLICY, make_order(), "L1", shop_day(9))
    data = json.loads(json.dumps(pre.to_dict()))
    assert data["value"] == "100.00"
    assert LineDecision.from_dict(data) == pre


# --------------------------------------------------------------------------
# Replay comparison


def test_compare_decisions_reports_changes() -> None:
    order = make_order(make_line(quantity=1, unit_price=Decimal("10.00")))
    choices = [choose(reason="late_delivery")]
    strict = decide(POLICY, order, choices, shop_day(9))
    lenient_policy = dataclasses.replace(POLICY, version="v2", window_days=10)
    lenient = decide(lenient_policy, order, choices, shop_day(9))
    assert strict.verdict is Verdict.NOT_ELIGIBLE and lenient.verdict is Verdict.ELIGIBLE
    changes = compare_decisions(strict, lenient)
    assert changes == [
        "verdict changed from not_eligible to eligible",
        "auto-approve changed from no to yes",
        "returnless changed from no to yes",
        "line L1: verdict changed from not_eligible to eligible (failed rules now: none)",
    ]
    assert compare_decisions(strict, strict) == []


def test_compare_decisions_line_only_in_one() -> None:
    one = decide(POLICY, make_order(), [choose()], shop_day(1))
    none = decide(POLICY, make_order(), [], shop_day(1))
    assert "line L1: only in the old decision" in compare_decisions(one, none)


# --------------------------------------------------------------------------
# Loading the policy


def test_default_file_equals_defaults() -> None:
    loaded = load_policy(default_text())
    assert loaded == Policy(version=loaded.version)
    assert loaded.window_days == 7 and loaded.quality_window_days == 15
    assert loaded.auto_approve_max == Decimal("200.00") and loaded.review_above == Decimal("1000.00")
    assert loaded.returnless_below == Decimal("15.00")
    assert loaded.gift_outcomes == ("store_credit",)
    assert loaded.timezone == "Asia/Shanghai"
    assert dict(loaded.category_windows) == {}


def test_minimal_policy_gets_defaults() -> None:
    assert load_policy('version = "x"') == Policy(version="x")


@pytest.mark.parametrize(
    ("text", "field", "expected"),
    [
        ('version = "x"\n[approval]\nauto_approve_max = 250', "auto_approve_max", Decimal("250")),
        ('version = "x"\n[approval]\nreview_above = " 900.50 "', "review_above", Decimal("900.50")),
        ('version = "x"\ntimezone = "Europe/London"', "timezone", "Europe/London"),
        ('version = "x"\n[window]\ndays = 0\nquality_days = 0', "window_days", 0),
        ('version = "x"\n[gift]\noutcomes = []', "gift_outcomes", ()),
        ('version = "x"\n[window.categories.bags]\ndays = 14', "category_windows", {"bags": (14, 15)}),
    ],
)
def test_load_policy_values(text: str, field: str, expected: object) -> None:
    value = getattr(load_policy(text), field)
    assert (dict(value) if field == "category_windows" else value) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version = ", "invalid TOML"),
        ("[window]\ndays = 7", "version is required"),
        ("version = 3", "version"),
        ('version = ""', "version"),
        ('version = "x"\ncolour = "red"', "unknown key 'colour'"),
        ('version = "x"\n[window]\nweeks = 1', "unknown key window.weeks"),
        ('version = "x"\nwindow = 7', "window must be a table"),
        ('version = "x"\n[window]\ndays = "7"', "window.days must be a whole number"),
        ('version = "x"\n[window]\ndays = 7.5', "window.days must be a whole number"),
        ('version = "x"\n[window]\ndays = true', "window.days must be a whole number"),
        ('version = "x"\n[window]\ndays = -1', "window.days must not be negative"),
        ('version = "x"\n[window]\ndays = 20', "window.quality_days must be at least window.days"),
        ('version = "x"\n[frequent_returner]\nmax_returns = -3', "frequent_returner.max_returns must not be negative"),
        ('version = "x"\n[frequent_returner]\ndays = "90"', "frequent_returner.days"),
        ('version = "x"\n[approval]\nauto_approve_max = 200.0', "not a float"),
        ('version = "x"\n[approval]\nauto_approve_max = "lots"', "approval.auto_approve_max"),
        ('version = "x"\n[approval]\nreview_above = "-1.00"', "approval.review_above must not be negative"),
        ('version = "x"\n[approval]\nreview_above = "NaN"', "approval.review_above"),
        ('version = "x"\n[approval]\nreview_above = true', "approval.review_above"),
        ('version = "x"\n[returnless]\nbelow = -5', "returnless.below must not be negative"),
        ('version = "x"\n[photos]\nrequired_reasons = ["scratched"]', "unknown code 'scratched'"),
        ('version = "x"\n[photos]\nrequired_reasons = "damaged"', "photos.required_reasons must be a list"),
        ('version = "x"\n[gift]\noutcomes = ["cash"]', "gift.outcomes: unknown code 'cash'"),
        ('version = "x"\n[returnless]\nresponsibilities = ["weather"]', "unknown code 'weather'"),
        ('version = "x"\n[exclusions]\ncategories = ["a", "a"]', "listed twice"),
        ('version = "x"\n[exclusions]\ncategories = [1]', "non-empty strings"),
        ('version = "x"\ntimezone = "Mars/Olympus"', "not a known time zone"),
        ('version = "x"\ntimezone = "../etc"', "not a known time zone"),
        ('version = "x"\ntimezone = 8', "timezone must be a string"),
        ('version = "x"\n[window.categories]\nshoes = 30', "window.categories.shoes must be a table"),
        ('version = "x"\n[window.categories]\nshoes = { weeks = 4 }', "unknown key window.categories.shoes.weeks"),
        ('version = "x"\n[window.categories]\nshoes = {}', "window.categories.shoes must set"),
        ('version = "x"\n[window.categories]\nshoes = { days = -1 }', "categories.shoes.days must not be negative"),
        ('version = "x"\n[window.categories]\nshoes = { days = 30 }', "shoes.quality_days must be at least"),
        ('version = "x"\n[window]\ncategories = ["shoes"]', "window.categories must be a table"),
    ],
)
def test_load_policy_errors(text: str, message: str) -> None:
    with pytest.raises(PolicyError) as info:
        load_policy(text)
    assert message in info.value.message
    assert str(info.value) == info.value.message


def test_load_policy_rejects_non_text() -> None:
    with pytest.raises(PolicyError):
        load_policy(b'version = "x"')  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "changes",
    [
        {"version": ""},
        {"window_days": -1},
        {"auto_approve_max": 200.0},
        {"category_windows": {"shoes": (10, 5)}},
        {"gift_outcomes": ("cash",)},
    ],
)
def test_policy_constructor_validates(changes: dict[str, Any]) -> None:
    with pytest.raises(PolicyError):
        dataclasses.replace(POLICY, **changes)


def test_policy_is_immutable_and_hashable() -> None:
    policy = dataclasses.replace(POLICY, category_windows={"shoes": (30, 45)})
    with pytest.raises(TypeError):
        policy.category_windows["shoes"] = (1, 1)  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.window_days = 1  # type: ignore[misc]
    assert hash(policy) == hash(dataclasses.replace(policy))
