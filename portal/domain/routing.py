"""Ticket routing: rules are data, evaluated in order, first match wins."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from portal.domain.errors import InvalidInput
from portal.domain.text import N_

PRIORITIES = ("low", "normal", "high", "urgent")
PRIORITY_LABELS = {"low": N_("low"), "normal": N_("normal"), "high": N_("high"), "urgent": N_("urgent")}
# A needs finance, B customer service only, C needs the warehouse.
TICKET_CLASSES = ("A", "B", "C")


class RuleError(InvalidInput):
    """A routing rule's data is not valid (a translatable message, shown beside the form)."""


@dataclass(frozen=True)
class RoutingInputs:
    """What routing looks at for one return request."""

    categories: frozenset[str]
    responsibilities: frozenset[str]
    value: Decimal
    max_wear: float | None
    needs_review: bool
    frequent_returner: bool
    language: str
    channel: str


@dataclass(frozen=True)
class Conditions:
    """Every condition that is set must hold; an empty rule matches everything.

    Set-valued conditions match when the request has any of the listed values.
    Value and wear bounds are inclusive; a wear bound never matches an unscored request.
    """

    categories: frozenset[str] = frozenset()
    responsibilities: frozenset[str] = frozenset()
    min_value: Decimal | None = None
    max_value: Decimal | None = None
    min_wear: float | None = None
    needs_review: bool | None = None
    frequent_returner: bool | None = None
    languages: frozenset[str] = frozenset()
    channels: frozenset[str] = frozenset()

    def matches(self, inputs: RoutingInputs) -> bool:
        if self.categories and not (self.categories & inputs.categories):
            return False
        if self.responsibilities and not (self.responsibilities & inputs.responsibilities):
            return False
        if self.min_value is not None and inputs.value < self.min_value:
            return False
        if self.max_value is not None and inputs.value > self.max_value:
            return False
        if self.min_wear is not None and (inputs.max_wear is None or inputs.max_wear < self.min_wear):
            return False
        if self.needs_review is not None and inputs.needs_review != self.needs_review:
            return False
        if self.frequent_returner is not None and inputs.frequent_returner != self.frequent_returner:
            return False
        if self.languages and inputs.language not in self.languages:
            return False
        if self.channels and inputs.channel not in self.channels:
            return False
        return True

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in ("categories", "responsibilities", "languages", "channels"):
            if getattr(self, name):
                out[name] = sorted(getattr(self, name))
        for name in ("min_value", "max_value"):
            if getattr(self, name) is not None:
                out[name] = str(getattr(self, name))
        for name in ("min_wear", "needs_review", "frequent_returner"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Conditions:
        data = dict(data or {})
        unknown = set(data) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise RuleError(N_("unknown conditions: %(names)s"), names=", ".join(sorted(unknown)))
        kwargs: dict[str, Any] = {}
        for name in ("categories", "responsibilities", "languages", "channels"):
            value = data.get(name) or []
            if not isinstance(value, (list, tuple, set, frozenset)) or not all(isinstance(v, str) for v in value):
                raise RuleError(N_("%(name)s must be a list of strings"), name=name)
            kwargs[name] = frozenset(
                v.strip().lower() if name != "languages" else v.strip() for v in value if v.strip()
            )
        for name in ("min_value", "max_value"):
            if data.get(name) not in (None, ""):
                try:
                    amount = Decimal(str(data[name]))
                except InvalidOperation:
                    raise RuleError(N_("%(name)s must be a decimal amount"), name=name) from None
                if not amount.is_finite() or amount < 0:
                    raise RuleError(N_("%(name)s must be zero or more"), name=name)
                kwargs[name] = amount
        if data.get("min_wear") not in (None, ""):
            try:
                wear = float(data["min_wear"])
            except (TypeError, ValueError):
                raise RuleError(N_("min_wear must be a number between 0 and 1")) from None
            if not 0 <= wear <= 1:
                raise RuleError(N_("min_wear must be a number between 0 and 1"))
            kwargs["min_wear"] = wear
        for name in ("needs_review", "frequent_returner"):
            if data.get(name) is not None:
                if not isinstance(data[name], bool):
                    raise RuleError(N_("%(name)s must be true or false"), name=name)
                kwargs[name] = data[name]
        conditions = cls(**kwargs)
        if (
            conditions.min_value is not None
            and conditions.max_value is not None
            and conditions.min_value > conditions.max_value
        ):
            raise RuleError(N_("min_value is above max_value"))
        return conditions


@dataclass(frozen=True)
class Rule:
    id: int | None
    name: str
    conditions: Conditions
    team: str
    priority: str = "normal"
    ticket_class: str = "B"
    position: int = 0

    def __post_init__(self) -> None:
        if self.priority not in PRIORITIES:
            raise RuleError(N_("priority must be one of %(choices)s"), choices=", ".join(PRIORITIES))
        if self.ticket_class not in TICKET_CLASSES:
            raise RuleError(N_("ticket class must be one of %(choices)s"), choices=", ".join(TICKET_CLASSES))
        if not self.team:
            raise RuleError(N_("a rule needs a team"))

    def snapshot(self) -> dict[str, Any]:
        """What is stored on the ticket: the rule as it was when it matched."""
        return {
            "id": self.id,
            "name": self.name,
            "conditions": self.conditions.to_dict(),
            "team": self.team,
            "priority": self.priority,
            "ticket_class": self.ticket_class,
        }


@dataclass(frozen=True)
class Route:
    team: str
    priority: str
    ticket_class: str
    rule: Rule | None
    reasons: tuple[str, ...] = field(default_factory=tuple)


def route(rules: Sequence[Rule], inputs: RoutingInputs, default_team: str) -> Route:
    """First matching rule (in position order) wins; no match goes to the default team at normal priority."""
    for rule in sorted(rules, key=lambda r: (r.position, r.id or 0)):
        if rule.conditions.matches(inputs):
            return Route(rule.team, rule.priority, rule.ticket_class, rule, (f"matched rule {rule.name!r}",))
    return Route(default_team, "normal", "B", None, ("no rule matched; default team",))


def inputs_for(
    categories: Iterable[str],
    responsibilities: Iterable[str],
    value: Decimal,
    max_wear: float | None,
    verdict: str,
    frequent_returner: bool,
    language: str,
    channel: str,
) -> RoutingInputs:
    return RoutingInputs(
        categories=frozenset(c.lower() for c in categories),
        responsibilities=frozenset(responsibilities),
        value=value,
        max_wear=max_wear,
        needs_review=verdict == "needs_review",
        frequent_returner=frequent_returner,
        language=language,
        channel=channel.lower(),
    )
