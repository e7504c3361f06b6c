"""CSV files people open in a spreadsheet: formula-looking cells are neutralised.

A cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is run as a
formula by Excel, LibreOffice and Sheets (CSV injection); such text gets a leading
apostrophe, which spreadsheets show as plain text. Plain numbers ("-12.50") stay numbers.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from portal.domain.money import plain_amount

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


def spreadsheet_safe(value: Any) -> Any:
    """``value`` unchanged unless it is text a spreadsheet would run as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def write_rows(fh: Any, header: Iterable[Any], rows: Iterable[Iterable[Any]]) -> None:
    """Write ``header`` and ``rows`` to ``fh`` as CSV, every cell made spreadsheet-safe."""
    writer = csv.writer(fh)
    writer.writerow([spreadsheet_safe(cell) for cell in header])
    for row in rows:
        writer.writerow([spreadsheet_safe(cell) for cell in row])


def reconciliation_csv(rows: Iterable[tuple[Any, ...]]) -> str:
    """The finance reconciliation: one row per day, payment method, currency and kind."""
    out = io.StringIO()
    write_rows(
        out,
        ["day", "method", "currency", "kind", "count", "total"],
        (
            [day, method, currency, kind, count, plain_amount(Decimal(str(total)), currency)]
            for day, method, currency, kind, count, total in rows
        ),
    )
    return out.getvalue()


MOVEMENT_COLUMNS = [
    "time",
    "kind",
    "rma",
    "order",
    "refund",
    "provider",
    "provider_reference",
    "reference",
    "method",
    "amount",
    "currency",
]


def movements_csv(movements: Iterable[Any]) -> str:
    """The reconciliation per movement: one row per ledger entry (a ``portal.services.refunds.Movement``),
    time in UTC (ISO 8601), the amount in the currency's own precision."""
    out = io.StringIO()
    write_rows(
        out,
        MOVEMENT_COLUMNS,
        (
            [
                m.at.isoformat(),
                m.kind,
                m.rma or "",
                m.order_number or "",
                m.refund_key or "",
                m.provider or "",
                m.provider_ref or "",
                m.reference,
                m.method,
                plain_amount(m.amount, m.currency),
                m.currency,
            ]
            for m in movements
        ),
    )
    return out.getvalue()
