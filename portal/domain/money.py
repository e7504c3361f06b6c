"""Money arithmetic on Decimal with explicit, per-currency rounding, and the one way amounts are written.

Amounts shown to people go through ``format_money`` (Babel, by currency and
locale: "CN¥1,456.97", "¥1,457", "¥1,456.97" in Chinese); amounts written
for machines (CSV, webhooks, API payloads) go through ``plain_amount``
(a plain decimal string with exactly the currency's minor-unit places).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from babel.numbers import format_currency, get_currency_precision, list_currencies

_KNOWN = frozenset(list_currencies())


def is_known_currency(code: str) -> bool:
    return isinstance(code, str) and code.upper() == code and code in _KNOWN


def places(currency: str) -> int:
    """Decimal places of ``currency``'s minor unit (2 for CNY, 0 for JPY, 3 for KWD)."""
    return get_currency_precision(currency)


def places_by_currency() -> dict[str, int]:
    """Every known currency whose minor unit is not the cent, with its places (for SQL rounding)."""
    return {code: places(code) for code in sorted(_KNOWN) if places(code) != 2}


def quantum(currency: str) -> Decimal:
    """The smallest unit of ``currency`` (0.01 for CNY, 1 for JPY, 0.001 for KWD)."""
    return Decimal(1).scaleb(-places(currency))


def round_money(amount: Decimal, currency: str) -> Decimal:
    """Round half up to the currency's minor unit (the rounding every amount goes through)."""
    return amount.quantize(quantum(currency), rounding=ROUND_HALF_UP)


def format_money(amount: Decimal | int | str, currency: str, locale: str) -> str:
    """``amount`` for people: the currency's symbol and its own number of decimals, in ``locale``."""
    return format_currency(round_money(Decimal(amount), currency), currency, locale=locale, currency_digits=True)


def plain_amount(amount: Decimal | int | str, currency: str) -> str:
    """``amount`` for machines: rounded to the currency's minor unit, no symbol ("1456.97", "1457")."""
    return str(round_money(Decimal(amount), currency))


def line_paid_total(unit_price: Decimal, quantity: int, discount: Decimal, tax: Decimal, currency: str) -> Decimal:
    """What the shopper paid for a whole line, rounded once (``discount`` and ``tax`` are line totals)."""
    return round_money(unit_price * quantity - discount + tax, currency)


def parse_money(value: object) -> Decimal:
    """Parse a decimal string (never a float) into a finite Decimal; raises ValueError."""
    if not isinstance(value, str):
        raise ValueError('must be a decimal string such as "12.50"')
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


def line_value(
    unit_price: Decimal, quantity: int, discount: Decimal, tax: Decimal, currency: str, units: int
) -> Decimal:
    """Value of ``units`` of a line, at most the line's total paid (no rounding drift)."""
    if units >= quantity:
        return line_paid_total(unit_price, quantity, discount, tax, currency)
    return round_money(line_paid_per_unit(unit_price, quantity, discount, tax, currency) * units, currency)
