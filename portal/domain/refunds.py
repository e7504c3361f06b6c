"""Refund amounts for a return: itemised, capped and rounded per currency.

``compute_refund`` is a pure function of the order's money, the received
lines, what was refunded before and the refund settings. It returns a
``RefundPreview``: a list of ``RefundItem`` (each rounded to the currency's
minor unit), the totals (sums of those rounded items) and a ``basis_hash``
over the inputs, so a service can check that the amounts it executes are
the amounts the approver saw.

Money rules
-----------
* A line's paid total is ``unit_price * quantity - discount + tax`` rounded
  once (the same total as ``money.line_value`` for all units); ``discount``
  and ``tax`` are totals for the whole line.
* Units are valued cumulatively, component by component (price, discount,
  tax): the first ``n`` units get ``round(component * n / quantity)``, and
  units ``a+1 .. a+k`` get the difference of two such values. Any split of a
  line's units, in one request or several, therefore sums exactly to the
  line's paid total; the last units get "line total minus what the earlier
  units got" (``PriorRefunds.units`` says how many were settled before).
* A line never refunds more than its paid total minus ``PriorRefunds.per_line``
  (kind ``line_cap``); the order never refunds more than lines plus shipping
  minus ``PriorRefunds.total`` (kind ``order_cap``).
* Restocking fees are a percentage of the value refunded for the line, by
  responsibility and grade; an ungraded line pays no fee.
* The original shipping is refunded pro rata to the value returned by lines
  whose responsibility is in ``refund_original_shipping_for``, cumulatively
  over all refunds of the order (``PriorRefunds.shipping_basis``), so
  returning everything refunds exactly the shipping paid. When every line
  of the order was free, the shipping is shared by units instead.
* The return shipping fee is deducted once per request when a refunded or
  credited line's responsibility is not in ``refund_return_shipping_for``;
  exchanges never pay it.
* Fees cannot make a total negative: the shortfall is given back as kind
  ``fee_capped``.
* The store-credit bonus is a percentage of the final store credit, added
  last; it is the shop's incentive and does not count against the caps.
* Exchanges move no money unless a price difference is given: a positive
  difference is refunded (within the line's caps), a negative one is owed by
  the shopper and is reported, not netted against the refund.

Every item says where its money goes (``destination``): ``refund`` (original
payment method), ``store_credit`` or ``owed`` (by the shopper, a negative
amount). The sum of all items is refund + store credit - owed. Items of
amount zero are left out.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from types import MappingProxyType
from typing import Any, Final

from portal.domain.lifecycle import Status
from portal.domain.money import is_known_currency, line_paid_total, round_money
from portal.domain.reasons import OUTCOMES, RESPONSIBILITIES, Outcome
from portal.domain.text import N_

GRADES: Final[tuple[str, ...]] = ("A", "B", "C", "D")
"""Inspection grades, A (as new) to D (heavily worn or damaged)."""

# Item kinds: stable codes, stored and compared by services and reports.
GOODS: Final = "goods"
DISCOUNT: Final = "discount"
TAX: Final = "tax"
LINE_CAP: Final = "line_cap"
EXCHANGE_DIFFERENCE: Final = "exchange_difference"
RESTOCKING_FEE: Final = "restocking_fee"
SHIPPING: Final = "shipping"
RETURN_SHIPPING_FEE: Final = "return_shipping_fee"
FEE_CAPPED: Final = "fee_capped"
ORDER_CAP: Final = "order_cap"
STORE_CREDIT_BONUS: Final = "store_credit_bonus"

ITEM_KINDS: Final[tuple[str, ...]] = (
    GOODS,
    DISCOUNT,
    TAX,
    LINE_CAP,
    EXCHANGE_DIFFERENCE,
    RESTOCKING_FEE,
    SHIPPING,
    RETURN_SHIPPING_FEE,
    FEE_CAPPED,
    ORDER_CAP,
    STORE_CREDIT_BONUS,
)

# What each kind of item is called, for the shopper's estimate and the finance preview alike.
ITEM_LABELS: Final[dict[str, str]] = {
    GOODS: N_("Price paid"),
    DISCOUNT: N_("Share of the discount"),
    TAX: N_("Tax"),
    LINE_CAP: N_("Limited to what was paid"),
    EXCHANGE_DIFFERENCE: N_("Price difference of the exchange"),
    RESTOCKING_FEE: N_("Restocking fee"),
    SHIPPING: N_("Delivery charge refunded"),
    RETURN_SHIPPING_FEE: N_("Return shipping fee"),
    FEE_CAPPED: N_("Fees above the refund are waived"),
    ORDER_CAP: N_("Limited to what the order cost"),
    STORE_CREDIT_BONUS: N_("Store credit bonus"),
}

REFUND: Final = "refund"
STORE_CREDIT: Final = Outcome.STORE_CREDIT.value
OWED: Final = "owed"
DESTINATIONS: Final[tuple[str, ...]] = (REFUND, STORE_CREDIT, OWED)
"""Where an item's money goes: original payment method, store credit, or owed by the shopper."""

_BASIS_VERSION: Final = "refunds/1"
_ZERO: Final = Decimal(0)
_HUNDRED: Final = Decimal(100)


# --------------------------------------------------------------------------
# Validation helpers


def _check_id(name: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string (got {value!r})")
    return value


def _check_count(name: str, value: object, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be a whole number, not {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum} (got {value})")
    return value


def _check_decimal(name: str, value: object, *, negative: bool = False) -> Decimal:
    """A finite Decimal (ints accepted, floats refused); non-negative unless ``negative``."""
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
        raise ValueError(f'{name} must be a Decimal such as Decimal("12.50"), not {type(value).__name__}')
    amount = Decimal(value)
    if not amount.is_finite():
        raise ValueError(f"{name} must be a finite amount")
    if amount < 0 and not negative:
        raise ValueError(f"{name} must not be negative (got {amount})")
    return amount


def _check_percent(name: str, value: object) -> Decimal:
    percent = _check_decimal(name, value)
    if percent > _HUNDRED:
        raise ValueError(f"{name} must be at most 100 (got {percent})")
    return percent


def _check_responsibilities(name: str, value: object) -> frozenset[str]:
    if isinstance(value, str) or not isinstance(value, (set, frozenset, tuple, list)):
        raise ValueError(f"{name} must be a set of responsibilities")
    for item in value:
        if item not in RESPONSIBILITIES:
            raise ValueError(f"{name}: unknown responsibility {item!r} (known: {', '.join(RESPONSIBILITIES)})")
    return frozenset(value)


def _empty() -> Mapping[Any, Any]:
    return MappingProxyType({})


# --------------------------------------------------------------------------
# Inputs


@dataclass(frozen=True)
class OrderLineMoney:
    """What an order line cost: ``discount`` and ``tax`` are totals for all ``quantity`` units."""

    line_id: str
    quantity: int
    unit_price: Decimal
    discount: Decimal = _ZERO
    tax: Decimal = _ZERO

    def __post_init__(self) -> None:
        _check_id("line_id", self.line_id)
        _check_count(f"line {self.line_id}: quantity", self.quantity, minimum=1)
        for name in ("unit_price", "discount", "tax"):
            object.__setattr__(self, name, _check_decimal(f"line {self.line_id}: {name}", getattr(self, name)))
        if self.discount > self.unit_price * self.quantity:
            raise ValueError(f"line {self.line_id}: discount is larger than the line's price")

    def paid_total(self, currency: str) -> Decimal:
        """What the shopper paid for the whole line, rounded once."""
        return line_paid_total(self.unit_price, self.quantity, self.discount, self.tax, currency)


@dataclass(frozen=True)
class RefundLine:
    """Units of one order line received back, and what the shopper gets for them.

    ``grade`` is the inspection grade (None: not inspected, no restocking
    fee). ``exchange_price_difference`` is only for exchanges: positive is
    refunded, negative is owed by the shopper. ``reason`` is carried for the
    record; it does not change the amounts (``responsibility`` does).
    """

    line_id: str
    quantity_received: int
    responsibility: str
    grade: str | None = None
    outcome: str = REFUND
    reason: str | None = None
    exchange_price_difference: Decimal | None = None

    def __post_init__(self) -> None:
        _check_id("line_id", self.line_id)
        _check_count(f"line {self.line_id}: quantity_received", self.quantity_received)
        if self.responsibility not in RESPONSIBILITIES:
            raise ValueError(
                f"line {self.line_id}: unknown responsibility {self.responsibility!r} "
                f"(known: {', '.join(RESPONSIBILITIES)})"
            )
        if self.grade is not None and self.grade not in GRADES:
            raise ValueError(f"line {self.line_id}: unknown grade {self.grade!r} (known: {', '.join(GRADES)})")
        if self.outcome not in OUTCOMES:
            raise ValueError(f"line {self.line_id}: unknown outcome {self.outcome!r} (known: {', '.join(OUTCOMES)})")
        if self.exchange_price_difference is not None:
            if self.outcome != Outcome.EXCHANGE:
                raise ValueError(f"line {self.line_id}: a price difference is only for an exchange")
            difference = _check_decimal(
                f"line {self.line_id}: exchange_price_difference", self.exchange_price_difference, negative=True
            )
            object.__setattr__(self, "exchange_price_difference", difference)


@dataclass(frozen=True)
class PriorRefunds:
    """What earlier refunds of the order already used; ``PriorRefunds()`` for a first refund.

    ``per_line``: goods value (price - discount + tax, before fees) refunded
    per line. ``shipping``: original shipping refunded. ``total``: everything
    refunded or credited on the order, bonus excluded. ``units``: units of
    each line already settled by any outcome (refund, credit or exchange).
    ``shipping_basis``: value returned so far that counted for the shipping
    refund (units, for an order whose lines were all free). ``after(preview)`` gives the next value of all of these.
    """

    per_line: Mapping[str, Decimal] = field(default_factory=_empty, hash=False)
    shipping: Decimal = _ZERO
    total: Decimal = _ZERO
    units: Mapping[str, int] = field(default_factory=_empty, hash=False)
    shipping_basis: Decimal = _ZERO

    def __post_init__(self) -> None:
        if not isinstance(self.per_line, Mapping) or not isinstance(self.units, Mapping):
            raise ValueError("per_line and units must be mappings by line id")
        per_line = {_check_id("line id", k): _check_decimal(f"per_line[{k}]", v) for k, v in self.per_line.items()}
        units = {_check_id("line id", k): _check_count(f"units[{k}]", v) for k, v in self.units.items()}
        object.__setattr__(self, "per_line", MappingProxyType(per_line))
        object.__setattr__(self, "units", MappingProxyType(units))
        for name in ("shipping", "total", "shipping_basis"):
            object.__setattr__(self, name, _check_decimal(name, getattr(self, name)))

    def after(self, preview: RefundPreview) -> PriorRefunds:
        """The prior refunds once ``preview`` has been executed."""
        per_line = dict(self.per_line)
        for line_id, amount in preview.line_amounts.items():
            per_line[line_id] = per_line.get(line_id, _ZERO) + amount
        units = dict(self.units)
        for line_id, count in preview.units.items():
            units[line_id] = units.get(line_id, 0) + count
        return PriorRefunds(
            per_line=per_line,
            shipping=self.shipping + preview.shipping,
            total=self.total + preview.counted_total,
            units=units,
            shipping_basis=self.shipping_basis + preview.shipping_basis,
        )


def _default_restocking_fees() -> Mapping[str, Mapping[str, Decimal]]:
    return {"customer": {"A": Decimal(0), "B": Decimal(5), "C": Decimal(15), "D": Decimal(30)}}


@dataclass(frozen=True)
class RefundSettings:
    """The shop's refund rules as data.

    ``restocking_fees``: responsibility -> grade -> percent of the line's
    refunded value (missing entries: no fee). ``store_credit_bonus_percent``:
    added on top of store credit. ``refund_return_shipping_for``: whose
    returns the shop pays postage for; other returns have
    ``return_shipping_fee`` deducted once per request.
    ``refund_original_shipping_for``: whose returns get the original shipping
    back pro rata.
    """

    restocking_fees: Mapping[str, Mapping[str, Decimal]] = field(default_factory=_default_restocking_fees, hash=False)
    store_credit_bonus_percent: Decimal = _ZERO
    refund_return_shipping_for: frozenset[str] = frozenset({"seller", "logistics"})
    return_shipping_fee: Decimal = _ZERO
    refund_original_shipping_for: frozenset[str] = frozenset({"seller", "logistics"})

    def __post_init__(self) -> None:
        if not isinstance(self.restocking_fees, Mapping):
            raise ValueError("restocking_fees must map responsibility -> grade -> percent")
        fees: dict[str, Mapping[str, Decimal]] = {}
        for responsibility, by_grade in self.restocking_fees.items():
            if responsibility not in RESPONSIBILITIES:
                raise ValueError(f"restocking_fees: unknown responsibility {responsibility!r}")
            if not isinstance(by_grade, Mapping):
                raise ValueError(f"restocking_fees.{responsibility} must map grade -> percent")
            grades: dict[str, Decimal] = {}
            for grade, percent in by_grade.items():
                if grade not in GRADES:
                    raise ValueError(f"restocking_fees.{responsibility}: unknown grade {grade!r}")
                grades[grade] = _check_percent(f"restocking_fees.{responsibility}.{grade}", percent)
            fees[responsibility] = MappingProxyType(grades)
        object.__setattr__(self, "restocking_fees", MappingProxyType(fees))
        bonus = _check_percent("store_credit_bonus_percent", self.store_credit_bonus_percent)
        object.__setattr__(self, "store_credit_bonus_percent", bonus)
        object.__setattr__(self, "return_shipping_fee", _check_decimal("return_shipping_fee", self.return_shipping_fee))
        for name in ("refund_return_shipping_for", "refund_original_shipping_for"):
            object.__setattr__(self, name, _check_responsibilities(name, getattr(self, name)))

    def restocking_percent(self, responsibility: str, grade: str | None) -> Decimal:
        """The restocking fee percentage; 0 for an ungraded line or a missing entry."""
        if grade is None:
            return _ZERO
        return self.restocking_fees.get(responsibility, {}).get(grade, _ZERO)


@dataclass(frozen=True)
class ReturnFee:
    """The return shipping fee: the one setting the label announces and the refund deducts.

    ``amount`` is deducted once per request when a refunded or credited
    line's responsibility is not in ``shop_pays_for`` (the shop pays postage
    for those); exchanges never pay it. ``amount`` 0 means no fee.
    """

    amount: Decimal = _ZERO
    shop_pays_for: frozenset[str] = frozenset({"seller", "logistics"})

    def __post_init__(self) -> None:
        object.__setattr__(self, "amount", _check_decimal("return fee", self.amount))
        object.__setattr__(self, "shop_pays_for", _check_responsibilities("shop_pays_for", self.shop_pays_for))

    def charged(self, responsibilities: Iterable[str]) -> bool:
        """Whether a return whose refunded or credited lines have these responsibilities pays the fee."""
        return bool(self.amount) and any(r not in self.shop_pays_for for r in responsibilities)

    def refund_settings(self, **other: Any) -> RefundSettings:
        """Refund settings that deduct exactly this fee (``other``: the remaining settings)."""
        return RefundSettings(return_shipping_fee=self.amount, refund_return_shipping_for=self.shop_pays_for, **other)


# --------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class RefundItem:
    """One line of the itemisation; ``line_id`` is None for order-level items."""

    kind: str
    line_id: str | None
    label: str
    amount: Decimal
    destination: str = REFUND

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "line_id": self.line_id,
            "label": self.label,
            "amount": str(self.amount),
            "destination": self.destination,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RefundItem:
        return cls(data["kind"], data.get("line_id"), data["label"], Decimal(data["amount"]), data["destination"])


@dataclass(frozen=True)
class RefundPreview:
    """The itemised refund; every total is the sum of its rounded items.

    ``refund_total``: to the original payment method. ``store_credit_total``:
    credit including the bonus. ``owed_by_shopper``: exchange differences the
    shopper must pay. ``line_amounts``, ``units``, ``shipping`` and
    ``shipping_basis`` are what this refund adds to ``PriorRefunds``.
    """

    currency: str
    items: tuple[RefundItem, ...]
    refund_total: Decimal
    store_credit_total: Decimal
    owed_by_shopper: Decimal
    basis_hash: str
    line_amounts: Mapping[str, Decimal] = field(default_factory=_empty, hash=False)
    units: Mapping[str, int] = field(default_factory=_empty, hash=False)
    shipping: Decimal = _ZERO
    shipping_basis: Decimal = _ZERO

    @property
    def bonus_total(self) -> Decimal:
        return sum((i.amount for i in self.items if i.kind == STORE_CREDIT_BONUS), _ZERO)

    @property
    def counted_total(self) -> Decimal:
        """What this refund uses of the order's refundable total (the bonus is not counted)."""
        return self.refund_total + self.store_credit_total - self.bonus_total

    def items_for(self, line_id: str | None) -> tuple[RefundItem, ...]:
        return tuple(i for i in self.items if i.line_id == line_id)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe (Decimals as strings); ``from_dict`` restores an equal preview."""
        return {
            "currency": self.currency,
            "items": [i.to_dict() for i in self.items],
            "refund_total": str(self.refund_total),
            "store_credit_total": str(self.store_credit_total),
            "owed_by_shopper": str(self.owed_by_shopper),
            "basis_hash": self.basis_hash,
            "line_amounts": {k: str(v) for k, v in self.line_amounts.items()},
            "units": dict(self.units),
            "shipping": str(self.shipping),
            "shipping_basis": str(self.shipping_basis),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RefundPreview:
        return cls(
            currency=data["currency"],
            items=tuple(RefundItem.from_dict(i) for i in data["items"]),
            refund_total=Decimal(data["refund_total"]),
            store_credit_total=Decimal(data["store_credit_total"]),
            owed_by_shopper=Decimal(data["owed_by_shopper"]),
            basis_hash=data["basis_hash"],
            line_amounts=MappingProxyType({k: Decimal(v) for k, v in data["line_amounts"].items()}),
            units=MappingProxyType({k: int(v) for k, v in data["units"].items()}),
            shipping=Decimal(data["shipping"]),
            shipping_basis=Decimal(data["shipping_basis"]),
        )


# --------------------------------------------------------------------------
# Basis hash


def _canon(value: Decimal) -> str:
    """The same string for equal Decimals (1.0 and 1.00 both give "1")."""
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


def basis_hash(
    currency: str,
    order_lines: Sequence[OrderLineMoney],
    order_shipping_paid: Decimal,
    lines: Sequence[RefundLine],
    prior: PriorRefunds,
    settings: RefundSettings,
) -> str:
    """sha256 over every input that determines the amounts (labels and reasons excluded).

    Equal inputs give equal hashes however they are written: Decimals are
    normalised (1.0 == 1.00), zero entries in the prior mappings and in the
    fee tables count as missing, and sets and mappings are sorted.
    """
    fees = {
        responsibility: {grade: _canon(p) for grade, p in sorted(by_grade.items()) if p != 0}
        for responsibility, by_grade in sorted(settings.restocking_fees.items())
    }
    basis = {
        "version": _BASIS_VERSION,
        "currency": currency,
        "order_lines": [
            [ol.line_id, ol.quantity, _canon(ol.unit_price), _canon(ol.discount), _canon(ol.tax)] for ol in order_lines
        ],
        "order_shipping_paid": _canon(order_shipping_paid),
        "lines": [
            [
                rl.line_id,
                rl.quantity_received,
                rl.responsibility,
                rl.grade,
                rl.outcome,
                None if rl.exchange_price_difference is None else _canon(rl.exchange_price_difference),
            ]
            for rl in lines
        ],
        "prior": {
            "per_line": {k: _canon(v) for k, v in sorted(prior.per_line.items()) if v != 0},
            "shipping": _canon(prior.shipping),
            "total": _canon(prior.total),
            "units": {k: v for k, v in sorted(prior.units.items()) if v != 0},
            "shipping_basis": _canon(prior.shipping_basis),
        },
        "settings": {
            "restocking_fees": {responsibility: table for responsibility, table in fees.items() if table},
            "store_credit_bonus_percent": _canon(settings.store_credit_bonus_percent),
            "refund_return_shipping_for": sorted(settings.refund_return_shipping_for),
            "return_shipping_fee": _canon(settings.return_shipping_fee),
            "refund_original_shipping_for": sorted(settings.refund_original_shipping_for),
        },
    }
    text = json.dumps(basis, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


# --------------------------------------------------------------------------
# Computation


def awaits_refund(status: str, returnless: bool) -> bool:
    """A request is refunded once inspected, or once approved when the item stays with the shopper.

    ``portal.db.queries.awaiting_refund`` is the same rule in SQL.
    """
    return status == Status.INSPECTED.value or (status == Status.APPROVED.value and returnless)


def order_refundable_total(
    currency: str, order_lines: Iterable[OrderLineMoney], shipping_paid: Decimal, prior_total: Decimal = _ZERO
) -> Decimal:
    """The most all refunds of an order may give back: every line's paid total (each rounded once)
    plus the shipping paid, minus what earlier refunds used (``PriorRefunds.total``), never negative.

    ``portal.db.queries.order_refundable_total`` is the same arithmetic in SQL (before prior refunds).
    """
    lines = sum((ol.paid_total(currency) for ol in order_lines), _ZERO)
    return max(_ZERO, lines + round_money(shipping_paid, currency) - prior_total)


def _units_label(count: int) -> str:
    return f"Price, {count} unit" if count == 1 else f"Price, {count} units"


class _Builder:
    """Collects rounded, non-zero items and their per-destination sums."""

    def __init__(self, currency: str) -> None:
        self.currency = currency
        self.items: list[RefundItem] = []

    def money(self, amount: Decimal) -> Decimal:
        rounded = round_money(amount, self.currency)
        return rounded.copy_abs() if rounded == 0 else rounded

    def add(self, kind: str, line_id: str | None, label: str, amount: Decimal, destination: str) -> Decimal:
        amount = self.money(amount)
        if amount != 0:
            self.items.append(RefundItem(kind, line_id, label, amount, destination))
        return amount

    def total(self, destination: str) -> Decimal:
        return self.money(sum((i.amount for i in self.items if i.destination == destination), _ZERO))


def _share(total: Decimal, units: int, quantity: int, currency: str) -> Decimal:
    """The rounded value of the first ``units`` of ``quantity`` units worth ``total`` together."""
    if units >= quantity:
        return round_money(total, currency)
    return round_money(total * units / quantity, currency)


def _unit_shares(line: OrderLineMoney, settled: int, count: int, currency: str) -> tuple[Decimal, Decimal, Decimal]:
    """(price, discount, tax) of units ``settled+1 .. settled+count`` of ``line``, each rounded.

    Each component is allocated cumulatively, so any split of the units sums
    exactly to the line's components, and price - discount + tax over all
    units is the line's paid total. With a unit price in whole minor units
    the price share is exactly unit_price * count; a unit price with more
    places than the currency takes the line's rounding remainder.
    """
    discount = round_money(line.discount, currency)
    tax = round_money(line.tax, currency)
    price = line.paid_total(currency) + discount - tax
    end = settled + count
    return tuple(  # type: ignore[return-value]
        _share(total, end, line.quantity, currency) - _share(total, settled, line.quantity, currency)
        for total in (price, discount, tax)
    )


def compute_refund(
    currency: str,
    order_lines: Sequence[OrderLineMoney],
    order_shipping_paid: Decimal,
    lines: Sequence[RefundLine],
    prior: PriorRefunds | None = None,
    settings: RefundSettings | None = None,
) -> RefundPreview:
    """Itemise and total the refund for ``lines``; raises ValueError on inconsistent input.

    A line id may appear several times in ``lines`` (e.g. units with
    different grades); each line may settle at most the units not yet
    settled (``PriorRefunds.units``).
    """
    prior = PriorRefunds() if prior is None else prior
    settings = RefundSettings() if settings is None else settings
    if not is_known_currency(currency):
        raise ValueError(f"unknown currency {currency!r}")
    shipping_paid = _check_decimal("order_shipping_paid", order_shipping_paid)
    by_id: dict[str, OrderLineMoney] = {}
    for ol in order_lines:
        if ol.line_id in by_id:
            raise ValueError(f"order line {ol.line_id} is listed twice")
        by_id[ol.line_id] = ol
    with localcontext() as ctx:
        ctx.prec = 34
        return _compute(currency, by_id, shipping_paid, tuple(lines), prior, settings)


def _compute(
    currency: str,
    by_id: dict[str, OrderLineMoney],
    shipping_paid: Decimal,
    lines: tuple[RefundLine, ...],
    prior: PriorRefunds,
    settings: RefundSettings,
) -> RefundPreview:
    out = _Builder(currency)
    line_amounts: dict[str, Decimal] = {}
    units: dict[str, int] = {}
    shipping_value = {REFUND: _ZERO, STORE_CREDIT: _ZERO}
    shipping_units = {REFUND: 0, STORE_CREDIT: 0}
    return_fee_to: str | None = None

    for rl in lines:
        ol = by_id.get(rl.line_id)
        if ol is None:
            raise ValueError(f"line {rl.line_id} is not on the order")
        settled = prior.units.get(rl.line_id, 0) + units.get(rl.line_id, 0)
        remaining_units = max(0, ol.quantity - settled)
        if rl.quantity_received > remaining_units:
            raise ValueError(
                f"line {rl.line_id}: {rl.quantity_received} units received but only {remaining_units} not yet settled"
            )
        k = rl.quantity_received
        if k:
            units[rl.line_id] = units.get(rl.line_id, 0) + k
        line_total = ol.paid_total(currency)
        left = max(_ZERO, line_total - prior.per_line.get(rl.line_id, _ZERO) - line_amounts.get(rl.line_id, _ZERO))
        price, discount, tax = _unit_shares(ol, settled, k, currency)
        value = price - discount + tax

        if rl.outcome == Outcome.EXCHANGE:
            difference = rl.exchange_price_difference
            if difference is None or difference == 0:
                continue
            if difference < 0:
                out.add(EXCHANGE_DIFFERENCE, rl.line_id, "Price difference owed for the exchange", difference, OWED)
                continue
            label = "Price difference refunded for the exchange"
            amount = out.add(EXCHANGE_DIFFERENCE, rl.line_id, label, difference, REFUND)
            limit = min(value, left)
            if amount > limit:
                label = "Limited to what was paid for the exchanged units"
                out.add(LINE_CAP, rl.line_id, label, limit - amount, REFUND)
                amount = limit
            if amount:
                line_amounts[rl.line_id] = line_amounts.get(rl.line_id, _ZERO) + amount
            continue

        destination = rl.outcome  # refund or store_credit
        if not k:
            continue
        out.add(GOODS, rl.line_id, _units_label(k), price, destination)
        out.add(DISCOUNT, rl.line_id, "Discount share", -discount, destination)
        out.add(TAX, rl.line_id, "Tax share", tax, destination)
        if value > left:
            out.add(LINE_CAP, rl.line_id, "Limited to what is left to refund on this line", left - value, destination)
            value = left
        if value:
            line_amounts[rl.line_id] = line_amounts.get(rl.line_id, _ZERO) + value
        percent = settings.restocking_percent(rl.responsibility, rl.grade)
        if percent:
            out.add(
                RESTOCKING_FEE,
                rl.line_id,
                f"Restocking fee {_canon(percent)}% (grade {rl.grade})",
                -(value * percent / _HUNDRED),
                destination,
            )
        if rl.responsibility in settings.refund_original_shipping_for:
            shipping_value[destination] += value
            shipping_units[destination] += k
        if rl.responsibility not in settings.refund_return_shipping_for:
            if destination == REFUND or return_fee_to is None:
                return_fee_to = destination

    # Original shipping, pro rata to the value returned, cumulatively over the order.
    order_value = sum((ol.paid_total(currency) for ol in by_id.values()), _ZERO)
    if order_value:
        weight, order_weight = shipping_value, order_value
    else:  # every line was free: share the shipping by units instead
        weight = {d: Decimal(n) for d, n in shipping_units.items()}
        order_weight = Decimal(sum(ol.quantity for ol in by_id.values()))
    paid_shipping = round_money(shipping_paid, currency)
    basis = prior.shipping_basis
    shipping = _ZERO
    for destination in (REFUND, STORE_CREDIT):
        if not weight[destination]:
            continue
        basis += weight[destination]
        if paid_shipping:
            target = round_money(paid_shipping * min(basis, order_weight) / order_weight, currency)
            share = min(target, paid_shipping) - prior.shipping - shipping
            if share > 0:
                shipping += out.add(SHIPPING, None, "Share of the original shipping", share, destination)

    if return_fee_to is not None and settings.return_shipping_fee:
        out.add(RETURN_SHIPPING_FEE, None, "Return shipping fee", -settings.return_shipping_fee, return_fee_to)

    for destination in (REFUND, STORE_CREDIT):
        total = out.total(destination)
        if total < 0:
            out.add(FEE_CAPPED, None, "Fees limited so that nothing is charged", -total, destination)

    # Never more than the order's paid total minus what was refunded before.
    allowed = order_refundable_total(currency, by_id.values(), shipping_paid, prior.total)
    excess = out.total(REFUND) + out.total(STORE_CREDIT) - allowed
    for destination in (REFUND, STORE_CREDIT):
        if excess <= 0:
            break
        cut = min(excess, out.total(destination))
        out.add(ORDER_CAP, None, "Limited to what is left to refund on the order", -cut, destination)
        excess -= cut

    bonus_percent = settings.store_credit_bonus_percent
    if bonus_percent:
        out.add(
            STORE_CREDIT_BONUS,
            None,
            f"Store credit bonus {_canon(bonus_percent)}%",
            out.total(STORE_CREDIT) * bonus_percent / _HUNDRED,
            STORE_CREDIT,
        )

    return RefundPreview(
        currency=currency,
        items=tuple(out.items),
        refund_total=out.total(REFUND),
        store_credit_total=out.total(STORE_CREDIT),
        owed_by_shopper=out.money(-out.total(OWED)),
        basis_hash=basis_hash(currency, tuple(by_id.values()), shipping_paid, lines, prior, settings),
        line_amounts=MappingProxyType({k: out.money(v) for k, v in line_amounts.items()}),
        units=MappingProxyType(units),
        shipping=out.money(shipping),
        shipping_basis=out.money(basis - prior.shipping_basis),
    )
