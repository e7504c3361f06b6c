"""Reading order files (JSON Lines or CSV) into order payloads.

``iter_order_records`` turns the text of an uploaded file into ``Record``s,
one per order, each holding either a payload in the shape ``parse_order``
accepts or an error for that order. Validation of the payloads themselves is
left to ``parse_order``.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .orders import normalise_order_number

FORMATS = ("jsonl", "csv")

_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv"}

ORDER_COLUMNS = (
    "order_number",
    "placed_at",
    "delivered_at",
    "currency",
    "channel",
    "customer_name",
    "customer_email",
    "customer_phone",
    "customer_postcode",
    "payment_method",
    "payment_reference",
    "shipping_paid",
    "gift",
)
LINE_COLUMNS = (
    "line_id",
    "sku",
    "product_name",
    "variant",
    "category",
    "quantity",
    "unit_price",
    "discount",
    "tax",
    "final_sale",
)
COLUMNS = ORDER_COLUMNS + LINE_COLUMNS
REQUIRED_COLUMNS = (
    "order_number",
    "placed_at",
    "currency",
    "customer_name",
    "payment_method",
    "line_id",
    "sku",
    "product_name",
    "category",
    "quantity",
    "unit_price",
)
"""Columns a CSV header must have; the others may be left out."""

_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})
_INTEGER_RE = re.compile(r"-?[0-9]+")
_BOM = "\ufeff"


@dataclass(frozen=True)
class Record:
    """One order read from a file: a payload, or an error saying why there is none.

    ``row`` is the 1-based line (JSON Lines) or row (CSV, header is row 1) where
    the order starts.
    """

    row: int
    payload: dict[str, Any] | None
    error: str | None


def detect_format(filename: str) -> str:
    """ "jsonl" or "csv" from a file name's extension; ValueError for anything else."""
    dot = filename.rfind(".")
    fmt = _EXTENSIONS.get(filename[dot:].lower()) if dot >= 0 else None
    if fmt is None:
        raise ValueError(f"unsupported file type {filename!r}: expected .jsonl, .ndjson, .json or .csv")
    return fmt


def iter_order_records(text: str, fmt: str) -> Iterator[Record]:
    """Records for every order in ``text``; ValueError for an unknown format or a bad CSV header."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if text.startswith(_BOM):
        text = text[len(_BOM) :]
    if fmt == "jsonl":
        return _iter_jsonl(text)
    # Parse the CSV eagerly so header problems surface at call time.
    return iter(_csv_records(text))


def _iter_jsonl(text: str) -> Iterator[Record]:
    # Split on newlines only: str.splitlines would also break on separators that
    # JSON allows unescaped inside strings.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            yield Record(number, None, f"invalid JSON: {exc.msg} (column {exc.colno})")
            continue
        except (ValueError, RecursionError):
            yield Record(number, None, "invalid JSON: value too large or too deeply nested")
            continue
        if not isinstance(value, dict):
            yield Record(number, None, "each line must be a JSON object")
            continue
        yield Record(number, value, None)


def _parse_flag(value: str) -> bool | str | None:
    """true/false/yes/no/1/0 (any case) as a bool, blank as None, anything else unchanged."""
    lowered = value.lower()
    if not lowered:
        return None
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    return value


def _parse_quantity(value: str) -> int | str | None:
    """An integer when the cell holds one, blank as None, anything else unchanged."""
    if not value:
        return None
    if _INTEGER_RE.fullmatch(value):
        try:
            return int(value)
        except ValueError:  # beyond the interpreter's digit limit
            return value
    return value


def _blank_to_none(value: str) -> str | None:
    return value or None


def _comparable(column: str, value: str) -> object:
    """The form in which two rows' values for an order column must agree."""
    if column == "gift":
        return _parse_flag(value)
    if column == "customer_email":
        return value.lower()
    return value


@dataclass
class _Group:
    """Rows of one order while the CSV is read."""

    first_row: int
    order: dict[str, str]
    lines: list[dict[str, str]]
    error: str | None = None


def _read_header(reader: Iterator[list[str]]) -> list[str]:
    try:
        header = next(reader)
    except StopIteration:
        header = []
    names = [name.strip().lower() for name in header]
    missing = [column for column in REQUIRED_COLUMNS if column not in names]
    if missing:
        raise ValueError(f"CSV header is missing required columns: {', '.join(missing)}")
    duplicated = sorted({name for name in names if name in COLUMNS and names.count(name) > 1})
    if duplicated:
        raise ValueError(f"CSV header repeats columns: {', '.join(duplicated)}")
    return names


def _csv_records(text: str) -> list[Record]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        names = _read_header(reader)
        positions = {name: index for index, name in enumerate(names) if name in COLUMNS}
        groups: dict[str, _Group] = {}
        records: list[Record | _Group] = []
        for number, cells in enumerate(reader, start=2):
            if not any(cell.strip() for cell in cells):
                continue
            row = {column: (cells[i].strip() if i < len(cells) else "") for column, i in positions.items()}
            for column in COLUMNS:
                row.setdefault(column, "")
            if any(cell.strip() for cell in cells[len(names) :]):
                error = f"row {number} has more cells than the header"
            else:
                error = None
            key = normalise_order_number(row["order_number"])
            if not key:
                records.append(Record(number, None, f"row {number}: order_number is empty"))
                continue
            group = groups.get(key)
            if group is None:
                group = _Group(number, {}, [])
                groups[key] = group
                records.append(group)
            _add_row(group, number, row)
            if error and group.error is None:
                group.error = error
    except csv.Error as exc:
        raise ValueError(f"malformed CSV near row {reader.line_num}: {exc}") from None
    return [item if isinstance(item, Record) else _group_record(item) for item in records]


def _add_row(group: _Group, number: int, row: dict[str, str]) -> None:
    """Merge one row into its order; blank order cells never conflict with filled ones."""
    for column in ORDER_COLUMNS:
        value = row[column]
        if not value or (column == "order_number" and column in group.order):
            continue
        seen = group.order.get(column)
        if seen is None:
            group.order[column] = value
        elif _comparable(column, seen) != _comparable(column, value) and group.error is None:
            group.error = (
                f"order {normalise_order_number(row['order_number'])}: conflicting values for "
                f"{column} ({seen!r} and {value!r}, rows {group.first_row} and {number})"
            )
    group.lines.append({column: row[column] for column in LINE_COLUMNS})


def _group_record(group: _Group) -> Record:
    if group.error is not None:
        return Record(group.first_row, None, group.error)
    return Record(group.first_row, _payload(group), None)


def _payload(group: _Group) -> dict[str, Any]:
    """The JSON shape of an order from its merged CSV cells."""
    order = group.order

    def cell(column: str) -> str | None:
        return _blank_to_none(order.get(column, ""))

    return {
        "order_number": cell("order_number"),
        "placed_at": cell("placed_at"),
        "delivered_at": cell("delivered_at"),
        "currency": cell("currency"),
        "channel": cell("channel"),
        "customer": {
            "name": cell("customer_name"),
            "email": cell("customer_email"),
            "phone": cell("customer_phone"),
            "postcode": cell("customer_postcode"),
        },
        "payment": {"method": cell("payment_method"), "reference": cell("payment_reference")},
        "shipping_paid": cell("shipping_paid"),
        "gift": _parse_flag(order.get("gift", "")),
        "lines": [
            {
                "line_id": _blank_to_none(line["line_id"]),
                "sku": _blank_to_none(line["sku"]),
                "product_name": _blank_to_none(line["product_name"]),
                "variant": _blank_to_none(line["variant"]),
                "category": _blank_to_none(line["category"]),
                "quantity": _parse_quantity(line["quantity"]),
                "unit_price": _blank_to_none(line["unit_price"]),
                "discount": _blank_to_none(line["discount"]),
                "tax": _blank_to_none(line["tax"]),
                "final_sale": _parse_flag(line["final_sale"]),
            }
            for line in group.lines
        ],
    }
