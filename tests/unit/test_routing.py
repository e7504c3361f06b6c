from __future__ import annotations

from decimal import Decimal

import pytest

from portal.domain.routing import Conditions, Rule, RuleError, inputs_for, route

BASE = dict(
    categories=["tops"],
    responsibilities=["customer"],
    value=Decimal("150"),
    max_wear=None,
    verdict="eligible",
    frequent_returner=False,
    language="en",
    channel="web",
)


def inputs(**changes):
    return inputs_for(**{**BASE, **changes})


@pytest.mark.parametrize(
    "conditions,changes,expected",
    [
        ({}, {}, True),
        ({"categories": ["shoes"]}, {}, False),
        ({"categories": ["shoes", "tops"]}, {}, True),
        ({"responsibilities": ["seller", "logistics"]}, {"responsibilities": ["logistics"]}, True),
        ({"responsibilities": ["seller"]}, {}, False),
        ({"min_value": "150"}, {}, True),  # bounds are inclusive
        ({"min_value": "150.01"}, {}, False),
        ({"max_value": "150"}, {}, True),
        ({"max_value": "149.99"}, {}, False),
        ({"min_wear": 0.7}, {"max_wear": 0.7}, True),
        ({"min_wear": 0.7}, {"max_wear": 0.69}, False),
        ({"min_wear": 0.7}, {"max_wear": None}, False),  # unscored never matches a wear bound
        ({"needs_review": True}, {"verdict": "needs_review"}, True),
        ({"needs_review": True}, {}, False),
        ({"needs_review": False}, {}, True),
        ({"frequent_returner": True}, {"frequent_returner": True}, True),
        ({"languages": ["zh_Hans"]}, {"language": "zh_Hans"}, True),
        ({"languages": ["zh_Hans"]}, {}, False),
        ({"channels": ["tmall", "jd"]}, {"channel": "TMALL"}, True),
        ({"channels": ["tmall"]}, {}, False),
    ],
)
def test_conditions(conditions, changes, expected):
    assert Conditions.from_dict(conditions).matches(inputs(**changes)) is expected


def test_first_match_wins_in_position_order():
    rules = [
        Rule(3, "everything", Conditions(), "service", position=30),
        Rule(1, "worn", Conditions.from_dict({"min_wear": 0.8}), "inspection", "high", "C", position=10),
        Rule(2, "expensive", Conditions.from_dict({"min_value": "1000"}), "finance", "high", "A", position=20),
    ]
    assert route(rules, inputs(max_wear=0.9, value=Decimal("5000")), "default").team == "inspection"
    assert route(rules, inputs(value=Decimal("5000")), "default").team == "finance"
    chosen = route(rules, inputs(), "default")
    assert (chosen.team, chosen.rule.name) == ("service", "everything")


def test_no_match_goes_to_default_team():
    result = route(
        [Rule(1, "shoes", Conditions.from_dict({"categories": ["shoes"]}), "shoes-team")], inputs(), "service"
    )
    assert (result.team, result.priority, result.rule) == ("service", "normal", None)


@pytest.mark.parametrize(
    "data",
    [
        {"bogus": 1},
        {"min_value": "abc"},
        {"min_value": "-1"},
        {"min_wear": 2},
        {"needs_review": "yes"},
        {"categories": "shoes"},
        {"min_value": "10", "max_value": "5"},
    ],
)
def test_bad_conditions(data):
    with pytest.raises(RuleError):
        Conditions.from_dict(data)


@pytest.mark.parametrize("kwargs", [{"priority": "asap"}, {"ticket_class": "Z"}, {"team": ""}])
def test_bad_rules(kwargs):
    with pytest.raises(RuleError):
        Rule(**{"id": 1, "name": "r", "conditions": Conditions(), "team": "t", **kwargs})


def test_conditions_round_trip():
    data = {
        "categories": ["shoes", "bags"],
        "min_value": "10.50",
        "min_wear": 0.5,
        "needs_review": True,
        "channels": ["jd"],
    }
    conditions = Conditions.from_dict(data)
    assert Conditions.from_dict(conditions.to_dict()) == conditions
    snap = Rule(7, "r", conditions, "t", "high", "A").snapshot()
    assert snap["conditions"]["categories"] == ["bags", "shoes"] and snap["ticket_class"] == "A"
