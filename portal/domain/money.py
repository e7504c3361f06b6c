"""Money arithmetic on Decimal with explicit, per-currency rounding."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from babel.numbers import get_currency_precision, list_currencies

_KNOWN = frozenset(list_currencies())


def is_known_currency(code: str) -> bool:
    return isinstance(code, str) and code.upper() == code and code in _KNOWN


def quantum(currency: str) -> Decimal:
    """The smallest unit of ``currency`` (0.01 for CNY, 1 for JPY, 0.001 for KWD)."""
    return Decimal(1).scaleb(-get_currency_precision(currency))


def round_money(amount: Decimal, currency: str) -> Decimal:
    """Round half up to the currency's minor unit (the rounding every amount goes through)."""
    return amount.quantize(quantum(currency), rounding=ROUND_HALF_UP)


def parse_money(value: object) -> Decimal:
    """Parse a decimal string (never a float) into a finite Decimal; raises ValueError."""
    if not isinstance(value, str):
        raise ValueError("must be a decimal string such as \"12.50\"")
    try:
        amount = Decimal(value.strip())
    except InvalidOperation:
        raise ValueError("is not a decimal number") from None
    if not amount.is_finite():
        raise ValueError("is not a finite number")
    return amount


def line_paid_per_unit(unit_price: Decimal, quantity: int, discount: Decimal, tax: Decimal, currency: str) -> Decimal:
    """What the shopper paid for one unit of a line: price minus its discount share plus its tax.

    ``discount`` and ``tax`` are totals for the whole line (all units).
    """
    if quantity <= 0:
        return Decimal(0)
    return round_money((unit_price * quantity - discount + tax) / quantity, currency)


def line_value(unit_price: Decimal, quantity: int, discount: Decimal, tax: Decimal, currency: str, units: int) -> Decimal:
    """Value of ``units`` of a line, at most the line's total paid (no rounding drift)."""
    if units >= quantity:
        return round_money(unit_price * quantity - discount + tax, currency)
    return round_money(line_paid_per_unit(unit_price, quantity, discount, tax, currency) * units, currency)
