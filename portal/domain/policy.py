"""The returns policy as data, and the decisions it makes.

A policy is TOML text with a version (see ``default_policy.toml``);
``load_policy`` turns it into a validated, immutable ``Policy``. Decisions are
pure functions of a policy, facts about an order, the shopper's choices and
"now": ``precheck_line`` (before the shopper chooses) and ``decide`` (for a
complete request). Every rule that is checked leaves a ``RuleResult`` with a
plain sentence for the shopper and a terse one for staff, so a decision can
always be explained and replayed against another policy version.

All amounts are ``Decimal`` in the order's currency; all day counts are
calendar days in the policy's time zone.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from portal.domain.money import line_value, parse_money, round_money
from portal.domain.reasons import OUTCOMES, REASONS, RESPONSIBILITIES, Outcome, Reason
from portal.domain.text import N_, Text

DEFAULT_POLICY_RESOURCE: Final = "default_policy.toml"
"""File name of the default policy, next to the ``portal`` package modules."""

REFUND_OUTCOMES: Final[frozenset[str]] = frozenset({Outcome.REFUND, Outcome.STORE_CREDIT})
"""Outcomes that pay money or credit back (the only ones that can be returnless)."""


class PolicyError(ValueError):
    """A policy that cannot be used; ``message`` names the offending key."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --------------------------------------------------------------------------
# Policy

# TOML layout: table -> key -> Policy field. ``None`` marks window.categories,
# which is handled separately.
_TOP_LEVEL: Final[dict[str, str]] = {"version": "version", "timezone": "timezone"}
_TABLES: Final[dict[str, dict[str, str | None]]] = {
    "window": {"days": "window_days", "quality_days": "quality_window_days", "categories": None},
    "exclusions": {"categories": "excluded_categories"},
    "approval": {"auto_approve_max": "auto_approve_max", "review_above": "review_above"},
    "photos": {"required_reasons": "photo_required_reasons"},
    "gift": {"outcomes": "gift_outcomes"},
    "frequent_returner": {"max_returns": "frequent_returner_max", "days": "frequent_returner_days"},
    "returnless": {"below": "returnless_below", "responsibilities": "returnless_responsibilities"},
    "exchange": {"instant": "instant_exchange"},
}
_KEY_OF: Final[dict[str, str]] = {
    **{name: key for key, name in _TOP_LEVEL.items()},
    **{name: f"{table}.{key}" for table, keys in _TABLES.items() for key, name in keys.items() if name},
    "category_windows": "window.categories",
}
_AMOUNT_FIELDS: Final = ("auto_approve_max", "review_above", "returnless_below")
_COUNT_FIELDS: Final = ("window_days", "quality_window_days", "frequent_returner_max", "frequent_returner_days")
_LIST_FIELDS: Final[dict[str, tuple[str, ...] | None]] = {
    # field -> allowed values (None: any non-empty string)
    "excluded_categories": None,
    "photo_required_reasons": tuple(REASONS),
    "gift_outcomes": OUTCOMES,
    "returnless_responsibilities": RESPONSIBILITIES,
}


def _empty_windows() -> Mapping[str, tuple[int, int]]:
    return MappingProxyType({})


@dataclass(frozen=True)
class Policy:
    """A validated returns policy; constructing one with bad values raises ``PolicyError``.

    Guarantees after construction: counts are non-negative ints, quality
    windows are at least as long as general ones (also per category), amounts
    are finite non-negative Decimals, list fields are tuples without
    duplicates holding only known codes, ``category_windows`` is read-only and
    ``timezone`` names a real IANA zone.
    """

    version: str
    timezone: str = "Asia/Shanghai"
    window_days: int = 7
    quality_window_days: int = 15
    category_windows: Mapping[str, tuple[int, int]] = field(default_factory=_empty_windows, hash=False)
    excluded_categories: tuple[str, ...] = ("underwear", "cosmetics-opened", "perishables", "customised")
    auto_approve_max: Decimal = Decimal("200.00")
    review_above: Decimal = Decimal("1000.00")
    photo_required_reasons: tuple[str, ...] = ("damaged", "wrong_item", "not_as_described", "defective")
    gift_outcomes: tuple[str, ...] = ("store_credit",)
    frequent_returner_max: int = 3
    frequent_returner_days: int = 90
    returnless_below: Decimal = Decimal("15.00")
    returnless_responsibilities: tuple[str, ...] = ("seller", "logistics")
    # Ship the replacement as soon as an exchange is approved, before the return arrives.
    instant_exchange: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.version, str) or not self.version.strip():
            raise PolicyError("version is required and must be a non-empty string")
        if not isinstance(self.timezone, str):
            raise PolicyError('timezone must be a string such as "Asia/Shanghai"')
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise PolicyError(f"timezone {self.timezone!r} is not a known time zone") from None
        for name in _COUNT_FIELDS:
            _check_count(_KEY_OF[name], getattr(self, name))
        if self.quality_window_days < self.window_days:
            raise PolicyError("window.quality_days must be at least window.days")
        object.__setattr__(self, "category_windows", _check_category_windows(self.category_windows))
        for name in _AMOUNT_FIELDS:
            _check_amount(_KEY_OF[name], getattr(self, name))
        for name, allowed in _LIST_FIELDS.items():
            object.__setattr__(self, name, _check_codes(_KEY_OF[name], getattr(self, name), allowed))
        if not isinstance(self.instant_exchange, bool):
            raise PolicyError("exchange.instant must be true or false")

    @property
    def tz(self) -> ZoneInfo:
        """The shop's time zone, in which calendar days are counted."""
        return ZoneInfo(self.timezone)

    def windows_for(self, category: str) -> tuple[int, int]:
        """(general days, quality days) for ``category``, honouring category overrides."""
        return self.category_windows.get(category, (self.window_days, self.quality_window_days))


def _check_count(key: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PolicyError(f"{key} must be a whole number, not {type(value).__name__}")
    if value < 0:
        raise PolicyError(f"{key} must not be negative (got {value})")


def _check_amount(key: str, value: object) -> None:
    if not isinstance(value, Decimal):
        raise PolicyError(f'{key} must be a decimal amount such as "200.00", not {type(value).__name__}')
    if not value.is_finite():
        raise PolicyError(f"{key} must be a finite amount")
    if value < 0:
        raise PolicyError(f"{key} must not be negative (got {value})")


def _check_codes(key: str, value: object, allowed: tuple[str, ...] | None) -> tuple[str, ...]:
    if not isinstance(value, (tuple, list)):
        raise PolicyError(f"{key} must be a list of strings, not {type(value).__name__}")
    seen: list[str] = []
    for item in value:
        if not isinstance(item, str) or not item:
            raise PolicyError(f"{key} must contain only non-empty strings (got {item!r})")
        if allowed is not None and item not in allowed:
            raise PolicyError(f"{key}: unknown code {item!r} (known: {', '.join(allowed)})")
        if item in seen:
            raise PolicyError(f"{key}: {item!r} is listed twice")
        seen.append(item)
    return tuple(seen)


def _check_category_windows(value: object) -> Mapping[str, tuple[int, int]]:
    if not isinstance(value, Mapping):
        raise PolicyError("window.categories must be a table of category = { days, quality_days }")
    frozen: dict[str, tuple[int, int]] = {}
    for category, windows in value.items():
        if not isinstance(category, str) or not category:
            raise PolicyError(f"window.categories: category names must be non-empty strings (got {category!r})")
        key = f"window.categories.{category}"
        if not isinstance(windows, tuple) or len(windows) != 2:
            raise PolicyError(f"{key} must be a pair (days, quality_days)")
        days, quality_days = windows
        _check_count(f"{key}.days", days)
        _check_count(f"{key}.quality_days", quality_days)
        if quality_days < days:
            raise PolicyError(f"{key}.quality_days must be at least {key}.days")
        frozen[category] = (days, quality_days)
    return MappingProxyType(frozen)


def _policy_default(name: str) -> Any:
    for f in fields(Policy):
        if f.name == name:
            return f.default
    raise KeyError(name)


def _convert(key: str, name: str, value: object) -> object:
    """TOML value -> Policy field value; type errors left for ``Policy`` to report."""
    if name in _AMOUNT_FIELDS:
        if isinstance(value, float):
            raise PolicyError(f'{key} must be a quoted decimal string such as "200.00", not a float')
        if isinstance(value, int) and not isinstance(value, bool):
            return Decimal(value)
        if isinstance(value, str):
            try:
                return parse_money(value)
            except ValueError as exc:
                raise PolicyError(f"{key} {exc}") from None
        return value
    if name in _LIST_FIELDS and isinstance(value, list):
        return tuple(value)
    return value


def _convert_categories(raw: object, base_days: object, base_quality: object) -> object:
    if not isinstance(raw, dict):
        raise PolicyError("window.categories must be a table of category = { days, quality_days }")
    windows: dict[str, tuple[object, object]] = {}
    for category, entry in raw.items():
        key = f"window.categories.{category}"
        if not isinstance(entry, dict):
            raise PolicyError(f"{key} must be a table such as {{ days = 30, quality_days = 30 }}")
        unknown = sorted(set(entry) - {"days", "quality_days"})
        if unknown:
            raise PolicyError(f"unknown key {key}.{unknown[0]} (allowed: days, quality_days)")
        if not entry:
            raise PolicyError(f"{key} must set days, quality_days or both")
        windows[category] = (entry.get("days", base_days), entry.get("quality_days", base_quality))
    return windows


def load_policy(text: str) -> Policy:
    """Parse and validate policy TOML; raises ``PolicyError`` (never another error) on any problem.

    Keys a category override leaves out fall back to the policy's own
    ``window.days`` / ``window.quality_days``.
    """
    if not isinstance(text, str):
        raise PolicyError("policy text must be a string")
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"invalid TOML: {exc}") from None
    values: dict[str, object] = {}
    raw_categories: object = None
    for top, value in document.items():
        if top in _TOP_LEVEL:
            values[_TOP_LEVEL[top]] = value
            continue
        if top not in _TABLES:
            known = ", ".join([*_TOP_LEVEL, *(f"[{t}]" for t in _TABLES)])
            raise PolicyError(f"unknown key {top!r} (known: {known})")
        if not isinstance(value, dict):
            raise PolicyError(f"{top} must be a table ([{top}])")
        for sub, sub_value in value.items():
            if sub not in _TABLES[top]:
                raise PolicyError(f"unknown key {top}.{sub} (allowed: {', '.join(_TABLES[top])})")
            name = _TABLES[top][sub]
            if name is None:
                raw_categories = sub_value
            else:
                values[name] = _convert(f"{top}.{sub}", name, sub_value)
    if "version" not in values:
        raise PolicyError("version is required")
    if raw_categories is not None:
        values["category_windows"] = _convert_categories(
            raw_categories,
            values.get("window_days", _policy_default("window_days")),
            values.get("quality_window_days", _policy_default("quality_window_days")),
        )
    return Policy(**values)  # type: ignore[arg-type]


# --------------------------------------------------------------------------
# Facts and choices


def _require_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")


@dataclass(frozen=True)
class LineFacts:
    """One order line as the policy sees it; ``discount`` and ``tax`` are whole-line totals."""

    line_id: str
    sku: str
    product_name: str
    category: str
    quantity: int
    unit_price: Decimal
    discount: Decimal
    tax: Decimal
    final_sale: bool
    already_requested: int
    exchange_options: frozenset[str]

    @property
    def remaining(self) -> int:
        """Units not yet in an earlier non-cancelled request (never negative)."""
        return max(0, self.quantity - self.already_requested)


@dataclass(frozen=True)
class OrderFacts:
    """An order as the policy sees it; ``delivered_at`` is tz-aware or None (ValueError otherwise)."""

    order_number: str
    currency: str
    delivered_at: datetime | None
    gift: bool
    lines: tuple[LineFacts, ...]
    customer_recent_returns: int

    def __post_init__(self) -> None:
        if self.delivered_at is not None:
            _require_aware("delivered_at", self.delivered_at)
        if not isinstance(self.lines, tuple):
            object.__setattr__(self, "lines", tuple(self.lines))

    def line(self, line_id: str) -> LineFacts | None:
        """The line with ``line_id``, or None."""
        for line in self.lines:
            if line.line_id == line_id:
                return line
        return None


@dataclass(frozen=True)
class LineChoice:
    """What the shopper chose for one line; quantity 0 means the line is not chosen."""

    line_id: str
    quantity: int
    reason: str | None = None
    sub_reason: str | None = None
    outcome: str | None = None
    exchange_sku: str | None = None
    photo_count: int = 0


# --------------------------------------------------------------------------
# Results


class Verdict(StrEnum):
    """Outcome of a rule, a line or a request; severity: not_eligible > needs_review > eligible."""

    ELIGIBLE = "eligible"
    NOT_ELIGIBLE = "not_eligible"
    NEEDS_REVIEW = "needs_review"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


# How staff read a verdict (shoppers read it in their own words on their pages).
VERDICT_LABELS: Final[dict[str, str]] = {
    Verdict.ELIGIBLE.value: N_("Eligible"),
    Verdict.NEEDS_REVIEW.value: N_("Needs review"),
    Verdict.NOT_ELIGIBLE.value: N_("Not eligible"),
}


_SEVERITY: Final[dict[Verdict, int]] = {Verdict.ELIGIBLE: 0, Verdict.NEEDS_REVIEW: 1, Verdict.NOT_ELIGIBLE: 2}


def worst(verdicts: Iterable[Verdict]) -> Verdict:
    """The most severe verdict; ELIGIBLE for none."""
    return max(verdicts, key=lambda v: _SEVERITY[v], default=Verdict.ELIGIBLE)


@dataclass(frozen=True)
class RuleResult:
    """One checked rule: whether it passed, the verdict it imposes, and why (shopper / staff wording)."""

    rule: str
    passed: bool
    effect: Verdict
    shopper: Text
    staff: Text

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "passed": self.passed,
            "effect": self.effect.value,
            "shopper": self.shopper.to_dict(),
            "staff": self.staff.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RuleResult:
        return cls(
            rule=data["rule"],
            passed=bool(data["passed"]),
            effect=Verdict(data["effect"]),
            shopper=Text.from_dict(data["shopper"]),
            staff=Text.from_dict(data["staff"]),
        )


@dataclass(frozen=True)
class LineDecision:
    """The verdict for one line: the most severe effect in ``trace``.

    ``value`` is what the chosen units are worth (for a precheck: all
    remaining units); ``remaining`` is units not yet in an earlier request.
    """

    line_id: str
    verdict: Verdict
    trace: tuple[RuleResult, ...]
    value: Decimal
    returnless: bool
    responsibility: str | None
    remaining: int

    def failed(self) -> tuple[RuleResult, ...]:
        return tuple(r for r in self.trace if not r.passed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "line_id": self.line_id,
            "verdict": self.verdict.value,
            "trace": [r.to_dict() for r in self.trace],
            "value": str(self.value),
            "returnless": self.returnless,
            "responsibility": self.responsibility,
            "remaining": self.remaining,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LineDecision:
        return cls(
            line_id=data["line_id"],
            verdict=Verdict(data["verdict"]),
            trace=tuple(RuleResult.from_dict(r) for r in data["trace"]),
            value=Decimal(data["value"]),
            returnless=bool(data["returnless"]),
            responsibility=data.get("responsibility"),
            remaining=int(data["remaining"]),
        )


@dataclass(frozen=True)
class Decision:
    """The verdict for a request: the most severe of its lines and request-level rules.

    ``auto_approve`` is true only for an eligible request whose value is at
    most the policy's auto-approve limit; ``returnless`` is true when every
    chosen line is returnless (and there is at least one).
    """

    verdict: Verdict
    lines: tuple[LineDecision, ...]
    trace: tuple[RuleResult, ...]
    value: Decimal
    auto_approve: bool
    returnless: bool
    policy_version: str

    def _failed(self) -> list[RuleResult]:
        failed = [r for r in self.trace if not r.passed]
        for line in self.lines:
            failed.extend(line.failed())
        return failed

    def shopper_reasons(self) -> list[Text]:
        """Shopper sentences of the failed rules (request first, then lines), without repeats."""
        return _unique(r.shopper for r in self._failed())

    def staff_reasons(self) -> list[Text]:
        """Staff sentences of the failed rules (request first, then lines), without repeats."""
        return _unique(r.staff for r in self._failed())

    def line(self, line_id: str) -> LineDecision | None:
        for line in self.lines:
            if line.line_id == line_id:
                return line
        return None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (Decimals as strings); ``from_dict`` restores an equal Decision."""
        return {
            "verdict": self.verdict.value,
            "lines": [line.to_dict() for line in self.lines],
            "trace": [r.to_dict() for r in self.trace],
            "value": str(self.value),
            "auto_approve": self.auto_approve,
            "returnless": self.returnless,
            "policy_version": self.policy_version,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Decision:
        return cls(
            verdict=Verdict(data["verdict"]),
            lines=tuple(LineDecision.from_dict(line) for line in data["lines"]),
            trace=tuple(RuleResult.from_dict(r) for r in data["trace"]),
            value=Decimal(data["value"]),
            auto_approve=bool(data["auto_approve"]),
            returnless=bool(data["returnless"]),
            policy_version=data["policy_version"],
        )


def _unique(texts: Iterable[Text]) -> list[Text]:
    result: list[Text] = []
    for text in texts:
        if text not in result:
            result.append(text)
    return result


# --------------------------------------------------------------------------
# Rules


def _passed(rule: str, shopper: Text, staff: Text) -> RuleResult:
    return RuleResult(rule, True, Verdict.ELIGIBLE, shopper, staff)


def _failed(rule: str, effect: Verdict, shopper: Text, staff: Text) -> RuleResult:
    return RuleResult(rule, False, effect, shopper, staff)


def _delivered_rule(order: OrderFacts, now: datetime, tz: ZoneInfo) -> tuple[RuleResult, date | None]:
    """Delivered and not in the future; also returns the delivery date in the shop's zone."""
    if order.delivered_at is None:
        return (
            _failed(
                "delivered",
                Verdict.NOT_ELIGIBLE,
                Text(N_("This order has not been delivered yet. You can start a return once it arrives.")),
                Text(N_("delivery: not delivered yet")),
            ),
            None,
        )
    if order.delivered_at > now:
        return (
            _failed(
                "delivered",
                Verdict.NOT_ELIGIBLE,
                Text(N_("We can't confirm the delivery of this order yet. Please try again later.")),
                Text(
                    N_("delivery: delivered_at %(delivered_at)s is after now %(now)s"),
                    {"delivered_at": order.delivered_at.isoformat(), "now": now.isoformat()},
                ),
            ),
            None,
        )
    delivered = order.delivered_at.astimezone(tz).date()
    return (
        _passed(
            "delivered",
            Text(N_("This order was delivered on %(date)s."), {"date": delivered.isoformat()}),
            Text(N_("delivery: delivered %(date)s"), {"date": delivered.isoformat()}),
        ),
        delivered,
    )


def _excluded_rule(policy: Policy, line: LineFacts) -> RuleResult:
    params = {"category": line.category}
    if line.category in policy.excluded_categories:
        return _failed(
            "excluded_category",
            Verdict.NOT_ELIGIBLE,
            Text(N_("This kind of item can't be returned.")),
            Text(N_("category %(category)s is excluded from returns"), params),
        )
    return _passed(
        "excluded_category",
        Text(N_("This kind of item can be returned.")),
        Text(N_("category %(category)s: returnable"), params),
    )


def _final_sale_rule(line: LineFacts) -> RuleResult:
    if line.final_sale:
        return _failed(
            "final_sale",
            Verdict.NOT_ELIGIBLE,
            Text(N_("This item was bought as a final sale and can't be returned.")),
            Text(N_("final sale")),
        )
    return _passed(
        "final_sale",
        Text(N_("This item was not a final-sale purchase.")),
        Text(N_("not final sale")),
    )


def _remaining_rule(line: LineFacts) -> RuleResult:
    params = {"remaining": line.remaining, "quantity": line.quantity, "requested": line.already_requested}
    if line.remaining <= 0:
        return _failed(
            "remaining",
            Verdict.NOT_ELIGIBLE,
            Text(N_("All units of this item are already in a return request.")),
            Text(N_("remaining: 0 of %(quantity)d (already requested %(requested)d)"), params),
        )
    return _passed(
        "remaining",
        Text(N_("You can return up to %(remaining)d of this item."), params),
        Text(N_("remaining: %(remaining)d of %(quantity)d"), params),
    )


def _window_any_reason(delivered: date, elapsed: int, days: int, quality_days: int) -> RuleResult:
    """The window before a reason is known: open while any reason is still accepted."""
    params = {
        "elapsed": elapsed,
        "days": days,
        "quality_days": quality_days,
        "deadline": (delivered + timedelta(days=days)).isoformat(),
        "quality_deadline": (delivered + timedelta(days=quality_days)).isoformat(),
    }
    if elapsed <= days:
        return _passed(
            "window",
            Text(N_("You can return this item until %(deadline)s."), params),
            Text(N_("window: %(elapsed)d of %(days)d days"), params),
        )
    if elapsed <= quality_days:
        return _passed(
            "window",
            Text(
                N_(
                    "The usual return period ended on %(deadline)s. Until %(quality_deadline)s we still "
                    "accept returns of items that are faulty, damaged, wrong or not as described."
                ),
                {**params, "quality_only": 1},  # pages show this one as a notice
            ),
            Text(N_("window: %(elapsed)d days, past %(days)d; quality reasons only until %(quality_days)d"), params),
        )
    return _failed(
        "window",
        Verdict.NOT_ELIGIBLE,
        Text(N_("The return period for this item ended on %(quality_deadline)s."), params),
        Text(N_("window: %(elapsed)d days, past the quality window of %(quality_days)d days"), params),
    )


def _window_for_reason(delivered: date, elapsed: int, days: int, quality_days: int, reason: Reason) -> RuleResult:
    """The window that applies to the chosen reason (quality or general)."""
    if reason.quality:
        days = quality_days
    params = {"elapsed": elapsed, "days": days, "deadline": (delivered + timedelta(days=days)).isoformat()}
    if reason.quality:
        if elapsed <= days:
            return _passed(
                "window",
                Text(N_("Items with a quality problem can be returned until %(deadline)s."), params),
                Text(N_("window: %(elapsed)d of %(days)d days (quality reason)"), params),
            )
        return _failed(
            "window",
            Verdict.NOT_ELIGIBLE,
            Text(
                N_(
                    "Items with a quality problem can be returned for %(days)d days after delivery; "
                    "that period ended on %(deadline)s."
                ),
                params,
            ),
            Text(N_("window: %(elapsed)d of %(days)d days (quality reason), expired"), params),
        )
    if elapsed <= days:
        return _passed(
            "window",
            Text(N_("You can return this item until %(deadline)s."), params),
            Text(N_("window: %(elapsed)d of %(days)d days"), params),
        )
    if elapsed <= quality_days:
        shopper = Text(
            N_(
                "Returns are accepted for %(days)d days after delivery; for this item that period ended "
                "on %(deadline)s. After that we only accept items with a quality problem."
            ),
            params,
        )
    else:
        shopper = Text(N_("The return period for this item ended on %(deadline)s."), params)
    staff = Text(N_("window: %(elapsed)d of %(days)d days, expired"), params)
    return _failed("window", Verdict.NOT_ELIGIBLE, shopper, staff)


def _reason_rule(choice: LineChoice) -> tuple[RuleResult, Reason | None]:
    if not choice.reason:
        return (
            _failed(
                "reason",
                Verdict.NOT_ELIGIBLE,
                Text(N_("Please choose a reason for returning this item.")),
                Text(N_("reason: missing")),
            ),
            None,
        )
    reason = REASONS.get(choice.reason)
    if reason is None:
        return (
            _failed(
                "reason",
                Verdict.NOT_ELIGIBLE,
                Text(N_("Please choose one of the listed return reasons.")),
                Text(N_("reason: unknown code %(reason)s"), {"reason": choice.reason}),
            ),
            None,
        )
    params = {"reason": reason.code, "responsibility": reason.responsibility}
    if choice.sub_reason:
        params["sub_reason"] = choice.sub_reason
        if reason.sub_reason(choice.sub_reason) is None:
            return (
                _failed(
                    "reason",
                    Verdict.NOT_ELIGIBLE,
                    Text(N_("Please choose one of the listed details for this reason.")),
                    Text(N_("reason: sub-reason %(sub_reason)s does not belong to %(reason)s"), params),
                ),
                reason,
            )
        staff = Text(N_("reason: %(reason)s / %(sub_reason)s (%(responsibility)s)"), params)
    else:
        staff = Text(N_("reason: %(reason)s (%(responsibility)s)"), params)
    return _passed("reason", Text(N_("Thank you for telling us why you are returning this item.")), staff), reason


def _quantity_rule(choice: LineChoice, remaining: int) -> RuleResult:
    params = {"quantity": choice.quantity, "remaining": remaining}
    if choice.quantity < 1:
        return _failed(
            "quantity",
            Verdict.NOT_ELIGIBLE,
            Text(N_("Please choose how many of this item to return.")),
            Text(N_("quantity: %(quantity)d, allowed 1 to %(remaining)d"), params),
        )
    if choice.quantity > remaining:
        return _failed(
            "quantity",
            Verdict.NOT_ELIGIBLE,
            Text(N_("You can return at most %(remaining)d of this item."), params),
            Text(N_("quantity: %(quantity)d, allowed 1 to %(remaining)d"), params),
        )
    return _passed(
        "quantity",
        Text(N_("Returning %(quantity)d of this item."), params),
        Text(N_("quantity: %(quantity)d of %(remaining)d remaining"), params),
    )


_OUTCOME_SENTENCES: Final[dict[str, str]] = {
    "refund": N_("You will get a refund to your original payment method."),
    "store_credit": N_("You will get store credit."),
    "exchange": N_("You will get another size or colour in exchange."),
}


def _outcome_rule(choice: LineChoice) -> RuleResult:
    if choice.outcome not in OUTCOMES:
        staff = (
            Text(N_("outcome: missing"))
            if not choice.outcome
            else Text(N_("outcome: unknown %(outcome)s"), {"outcome": choice.outcome})
        )
        return _failed(
            "outcome",
            Verdict.NOT_ELIGIBLE,
            Text(N_("Please choose a refund, store credit or an exchange.")),
            staff,
        )
    return _passed(
        "outcome",
        Text(_OUTCOME_SENTENCES[choice.outcome]),
        Text(N_("outcome: %(outcome)s"), {"outcome": choice.outcome}),
    )


def _gift_rule(policy: Policy, outcome: str) -> RuleResult:
    params = {"outcome": outcome, "allowed": ", ".join(policy.gift_outcomes) or "none"}
    if outcome not in policy.gift_outcomes:
        return _failed(
            "gift",
            Verdict.NOT_ELIGIBLE,
            Text(N_("This order was a gift, so this option isn't available. Please choose another option.")),
            Text(N_("gift order: outcome %(outcome)s not allowed (allowed: %(allowed)s)"), params),
        )
    return _passed(
        "gift",
        Text(N_("This order was a gift; this option is available.")),
        Text(N_("gift order: outcome %(outcome)s allowed"), params),
    )


def _exchange_rule(line: LineFacts, choice: LineChoice) -> RuleResult:
    options = ", ".join(sorted(line.exchange_options)) or "none"
    if not choice.exchange_sku:
        return _failed(
            "exchange",
            Verdict.NOT_ELIGIBLE,
            Text(N_("Please choose the size or colour you would like instead.")),
            Text(N_("exchange: no target variant chosen (in stock: %(options)s)"), {"options": options}),
        )
    params = {"sku": choice.exchange_sku, "options": options}
    if choice.exchange_sku not in line.exchange_options:
        return _failed(
            "exchange",
            Verdict.NOT_ELIGIBLE,
            Text(
                N_(
                    "The size or colour you chose is not available. Please choose another one, "
                    "or a refund or store credit."
                )
            ),
            Text(N_("exchange: %(sku)s not in stock (in stock: %(options)s)"), params),
        )
    return _passed(
        "exchange",
        Text(N_("The size or colour you chose is in stock.")),
        Text(N_("exchange: %(sku)s in stock"), params),
    )


def _photos_rule(choice: LineChoice, reason: Reason) -> RuleResult:
    params = {"count": choice.photo_count, "reason": reason.code}
    if choice.photo_count < 1:
        return _failed(
            "photos",
            Verdict.NOT_ELIGIBLE,
            Text(N_("Please add at least one photo that shows the problem.")),
            Text(N_("photos: none, required for %(reason)s"), params),
        )
    return _passed(
        "photos",
        Text(N_("Thank you for the photos.")),
        Text(N_("photos: %(count)d"), params),
    )


def _returnless_rule(
    policy: Policy, choice: LineChoice, reason: Reason | None, value: Decimal
) -> tuple[RuleResult, bool]:
    """Informational (always passes): whether the shopper keeps the item, and the flag itself."""
    params = {"value": str(value), "limit": str(policy.returnless_below)}
    send_back = Text(N_("Please send this item back."))
    if not value < policy.returnless_below:
        staff = Text(N_("returnless: no, value %(value)s not below %(limit)s"), params)
        return _passed("returnless", send_back, staff), False
    if choice.outcome not in REFUND_OUTCOMES:
        staff = Text(N_("returnless: no, outcome %(outcome)s"), {"outcome": str(choice.outcome)})
        return _passed("returnless", send_back, staff), False
    responsibility = reason.responsibility if reason is not None else "unknown"
    if responsibility not in policy.returnless_responsibilities:
        staff = Text(N_("returnless: no, responsibility %(responsibility)s"), {"responsibility": responsibility})
        return _passed("returnless", send_back, staff), False
    rule = _passed(
        "returnless",
        Text(N_("You don't need to send this item back; please keep or recycle it.")),
        Text(
            N_("returnless: yes, value %(value)s below %(limit)s, %(responsibility)s responsibility"),
            {**params, "responsibility": responsibility},
        ),
    )
    return rule, True


def _unknown_line(order: OrderFacts, line_id: str) -> LineDecision:
    rule = _failed(
        "line",
        Verdict.NOT_ELIGIBLE,
        Text(N_("This item is not part of order %(order)s."), {"order": order.order_number}),
        Text(N_("line %(line)s: not in order %(order)s"), {"line": line_id, "order": order.order_number}),
    )
    return LineDecision(line_id, Verdict.NOT_ELIGIBLE, (rule,), round_money(Decimal(0), order.currency), False, None, 0)


def _duplicate_line(order: OrderFacts, line: LineFacts) -> LineDecision:
    rule = _failed(
        "line",
        Verdict.NOT_ELIGIBLE,
        Text(N_("This item was chosen more than once; choose it once with the total quantity.")),
        Text(N_("line %(line)s: chosen more than once in the request"), {"line": line.line_id}),
    )
    zero = round_money(Decimal(0), order.currency)
    return LineDecision(line.line_id, Verdict.NOT_ELIGIBLE, (rule,), zero, False, None, line.remaining)


def _evaluate_line(
    policy: Policy, order: OrderFacts, line: LineFacts, now: datetime, choice: LineChoice | None
) -> LineDecision:
    """All rules for one line; ``choice`` None means a precheck (no reason, quantity or outcome yet)."""
    trace: list[RuleResult] = []
    delivered_rule, delivered = _delivered_rule(order, now, policy.tz)
    trace.extend((delivered_rule, _excluded_rule(policy, line), _final_sale_rule(line), _remaining_rule(line)))

    reason: Reason | None = None
    if choice is not None:
        reason_rule, reason = _reason_rule(choice)
        trace.append(reason_rule)

    if delivered is not None:
        elapsed = (now.astimezone(policy.tz).date() - delivered).days
        days, quality_days = policy.windows_for(line.category)
        if reason is None:
            trace.append(_window_any_reason(delivered, elapsed, days, quality_days))
        else:
            trace.append(_window_for_reason(delivered, elapsed, days, quality_days, reason))

    if choice is None:
        units = line.remaining
    else:
        units = max(0, min(choice.quantity, line.quantity))
        if line.remaining > 0:
            trace.append(_quantity_rule(choice, line.remaining))
        trace.append(_outcome_rule(choice))
        if order.gift and choice.outcome in OUTCOMES:
            trace.append(_gift_rule(policy, choice.outcome))
        if choice.outcome == Outcome.EXCHANGE:
            trace.append(_exchange_rule(line, choice))
        if reason is not None and reason.code in policy.photo_required_reasons:
            trace.append(_photos_rule(choice, reason))

    value = line_value(line.unit_price, line.quantity, line.discount, line.tax, order.currency, units)
    verdict = worst(r.effect for r in trace)
    returnless = False
    if choice is not None and verdict is Verdict.ELIGIBLE:
        rule, returnless = _returnless_rule(policy, choice, reason, value)
        trace.append(rule)
    return LineDecision(
        line_id=line.line_id,
        verdict=verdict,
        trace=tuple(trace),
        value=value,
        returnless=returnless,
        responsibility=reason.responsibility if reason is not None else None,
        remaining=line.remaining,
    )


# --------------------------------------------------------------------------
# Public decisions


def precheck_line(policy: Policy, order: OrderFacts, line_id: str, now: datetime) -> LineDecision:
    """Rules that need no choice (delivery, category, final sale, remaining units, window).

    A line past its general window but inside its quality window is
    eligible; its window sentence says only quality reasons are accepted.
    An unknown ``line_id`` gives a NOT_ELIGIBLE decision, not an exception.
    ``now`` must be tz-aware (ValueError otherwise).
    """
    _require_aware("now", now)
    line = order.line(line_id)
    if line is None:
        return _unknown_line(order, line_id)
    return _evaluate_line(policy, order, line, now, None)


def decide(policy: Policy, order: OrderFacts, choices: Iterable[LineChoice], now: datetime) -> Decision:
    """Decide a whole request; never raises for bad choices, only for a naive ``now`` (ValueError).

    Choices with quantity 0 are ignored; a negative quantity is a chosen line
    that fails the quantity rule. Request-level rules: at least one line,
    frequent returner (more than ``frequent_returner_max`` earlier returns
    needs review), value above ``review_above`` needs review, and, for an
    eligible request, auto-approval up to ``auto_approve_max`` inclusive.
    """
    _require_aware("now", now)
    lines: list[LineDecision] = []
    seen: set[str] = set()
    for choice in choices:
        if choice.quantity == 0:
            continue
        line = order.line(choice.line_id)
        if line is None:
            lines.append(_unknown_line(order, choice.line_id))
        elif line.line_id in seen:
            lines.append(_duplicate_line(order, line))
        else:
            seen.add(line.line_id)
            lines.append(_evaluate_line(policy, order, line, now, choice))

    value = round_money(sum((line.value for line in lines), Decimal(0)), order.currency)
    money = {"value": str(value), "currency": order.currency}
    trace: list[RuleResult] = []
    if not lines:
        trace.append(
            _failed(
                "lines_chosen",
                Verdict.NOT_ELIGIBLE,
                Text(N_("Please choose at least one item to return.")),
                Text(N_("request: no lines chosen")),
            )
        )
    else:
        trace.append(
            _passed(
                "lines_chosen",
                Text(N_("Items in this return: %(count)d."), {"count": len(lines)}),
                Text(N_("request: lines chosen: %(count)d"), {"count": len(lines)}),
            )
        )
        trace.append(_frequent_returner_rule(policy, order))
        trace.append(_review_value_rule(policy, value, money))

    verdict = worst([*(line.verdict for line in lines), *(r.effect for r in trace)])
    auto_approve = False
    if verdict is Verdict.ELIGIBLE:
        auto_approve = value <= policy.auto_approve_max
        trace.append(_auto_approve_rule(policy, money, auto_approve))
    return Decision(
        verdict=verdict,
        lines=tuple(lines),
        trace=tuple(trace),
        value=value,
        auto_approve=auto_approve,
        returnless=bool(lines) and all(line.returnless for line in lines),
        policy_version=policy.version,
    )


def _frequent_returner_rule(policy: Policy, order: OrderFacts) -> RuleResult:
    params = {
        "count": order.customer_recent_returns,
        "days": policy.frequent_returner_days,
        "max": policy.frequent_returner_max,
    }
    if order.customer_recent_returns > policy.frequent_returner_max:
        return _failed(
            "frequent_returner",
            Verdict.NEEDS_REVIEW,
            Text(N_("Our team will check this request before it is approved.")),
            Text(N_("frequent returner: %(count)d earlier returns in %(days)d days, more than %(max)d"), params),
        )
    return _passed(
        "frequent_returner",
        Text(N_("No extra checks are needed for your account.")),
        Text(N_("frequent returner: no, %(count)d earlier returns in %(days)d days (max %(max)d)"), params),
    )


def _review_value_rule(policy: Policy, value: Decimal, money: dict[str, str]) -> RuleResult:
    params = {**money, "limit": str(policy.review_above)}
    if value > policy.review_above:
        return _failed(
            "review_value",
            Verdict.NEEDS_REVIEW,
            Text(N_("Because of its value, our team will check this request before it is approved.")),
            Text(N_("value %(value)s %(currency)s above review threshold %(limit)s"), params),
        )
    return _passed(
        "review_value",
        Text(N_("No value check is needed for this request.")),
        Text(N_("value %(value)s %(currency)s within review threshold %(limit)s"), params),
    )


def _auto_approve_rule(policy: Policy, money: dict[str, str], approved: bool) -> RuleResult:
    """Informational for eligible requests: failing it only means a person approves (effect stays eligible)."""
    params = {**money, "limit": str(policy.auto_approve_max)}
    if approved:
        return _passed(
            "auto_approve",
            Text(N_("Your return is approved straight away.")),
            Text(N_("auto-approve: value %(value)s %(currency)s within %(limit)s"), params),
        )
    return RuleResult(
        "auto_approve",
        False,
        Verdict.ELIGIBLE,
        Text(N_("Our team will approve your return shortly.")),
        Text(N_("auto-approve: no, value %(value)s %(currency)s above %(limit)s"), params),
    )


def compare_decisions(old: Decision, new: Decision) -> list[str]:
    """Plain-English staff summary of what changed from ``old`` to ``new``; empty when nothing did.

    Compares the verdict, auto-approval, returnless flag and each line's
    verdict (lines matched by id); the policy version itself is not a change.
    """
    changes: list[str] = []
    if old.verdict != new.verdict:
        changes.append(f"verdict changed from {old.verdict.value} to {new.verdict.value}")
    if old.auto_approve != new.auto_approve:
        changes.append(f"auto-approve changed from {_yes_no(old.auto_approve)} to {_yes_no(new.auto_approve)}")
    if old.returnless != new.returnless:
        changes.append(f"returnless changed from {_yes_no(old.returnless)} to {_yes_no(new.returnless)}")
    old_lines = {line.line_id: line for line in old.lines}
    new_lines = {line.line_id: line for line in new.lines}
    for line_id in [*old_lines, *(i for i in new_lines if i not in old_lines)]:
        before, after = old_lines.get(line_id), new_lines.get(line_id)
        if before is None or after is None:
            where = "new" if before is None else "old"
            changes.append(f"line {line_id}: only in the {where} decision")
            continue
        if before.verdict != after.verdict:
            failed = ", ".join(r.rule for r in after.failed()) or "none"
            changes.append(
                f"line {line_id}: verdict changed from {before.verdict.value} to {after.verdict.value}"
                f" (failed rules now: {failed})"
            )
        elif before.returnless != after.returnless:
            changes.append(
                f"line {line_id}: returnless changed from {_yes_no(before.returnless)} to {_yes_no(after.returnless)}"
            )
    return changes


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"
