"""Reading order files into payloads."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from portal.domain.importing import COLUMNS, Record, detect_format, iter_order_records
from portal.domain.orders import PayloadError, parse_order

HEADER = ",".join(COLUMNS)


def csv_row(**cells: str) -> str:
    """A CSV row in ``COLUMNS`` order from a base order line, overridden by ``cells``."""
    base = {
        "order_number": "SO-1",
        "placed_at": "2024-05-01T10:30:00+08:00",
        "delivered_at": "",
        "currency": "CNY",
        "channel": "tmall",
        "customer_name": "王小明",
        "customer_email": "xm@example.com",
        "customer_phone": "",
        "customer_postcode": "100000",
        "payment_method": "alipay",
        "payment_reference": "",
        "shipping_paid": "10.00",
        "gift": "no",
        "line_id": "L1",
        "sku": "TEE-RED-M",
        "product_name": "纯棉短袖T恤",
        "variant": "红色 / M",
        "category": "apparel",
        "quantity": "1",
        "unit_price": "99.00",
        "discount": "",
        "tax": "",
        "final_sale": "",
    }
    base.update(cells)
    return ",".join(f'"{base[column]}"' if "," in base[column] else base[column] for column in COLUMNS)


def csv_text(*rows: str, header: str = HEADER) -> str:
    return "\r\n".join([header, *rows]) + "\r\n"


@pytest.mark.parametrize(
    ("filename", "fmt"),
    [
        ("orders.jsonl", "jsonl"),
        ("orders.NDJSON", "jsonl"),
        ("export.2024.json", "jsonl"),
        ("orders.csv", "csv"),
        ("ORDERS.CSV", "csv"),
    ],
)
def test_detect_format(filename: str, fmt: str) -> None:
    assert detect_format(filename) == fmt


@pytest.mark.parametrize("filename", ["orders.xlsx", "orders", "orders.csv.gz", "", ".txt"])
def test_detect_format_rejects_other_files(filename: str) -> None:
    with pytest.raises(ValueError):
        detect_format(filename)


def test_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown format"):
        iter_order_records("", "xml")


# --- JSON Lines ---------------------------------------------------------------


def test_jsonl_bad_line_in_the_middle_does_not_stop_parsing() -> None:
    text = "\n".join(
        [
            json.dumps({"order_number": "A"}),
            "",
            '{"order_number": "B",',
            "   ",
            json.dumps({"order_number": "C", "name": "王小明"}, ensure_ascii=False),
        ]
    )
    records = list(iter_order_records(text, "jsonl"))
    assert [(r.row, r.payload) for r in records] == [
        (1, {"order_number": "A"}),
        (3, None),
        (5, {"order_number": "C", "name": "王小明"}),
    ]
    assert records[1].error is not None and records[1].error.startswith("invalid JSON")
    assert records[0].error is None and records[2].error is None


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("[1, 2]", "each line must be a JSON object"),
        ("null", "each line must be a JSON object"),
        ('"SO-1"', "each line must be a JSON object"),
        ("{'single': 'quotes'}", "invalid JSON"),
        ("[" * 100_000, "invalid JSON"),
        ('{"n": ' + "1" * 10_000 + "}", "invalid JSON"),
    ],
)
def test_jsonl_lines_that_are_not_orders(line: str, error: str) -> None:
    [record] = iter_order_records(line, "jsonl")
    assert record.row == 1 and record.payload is None
    assert record.error is not None and record.error.startswith(error)


def test_jsonl_with_bom_crlf_and_unicode_line_separator() -> None:
    text = '\ufeff{"order_number": "A", "note": "a\u2028b"}\r\n{"order_number": "B"}\r\n'
    records = list(iter_order_records(text, "jsonl"))
    assert records == [
        Record(1, {"order_number": "A", "note": "a\u2028b"}, None),
        Record(2, {"order_number": "B"}, None),
    ]


# --- CSV ----------------------------------------------------------------------


def test_csv_groups_lines_by_order_in_first_seen_order() -> None:
    text = csv_text(
        csv_row(order_number="SO-2", line_id="A1"),
        csv_row(line_id="L1"),
        csv_row(order_number="so-2", line_id="A2", sku="MUG-01", quantity="3", variant=""),
        csv_row(line_id="L2", final_sale="YES", discount="5.00"),
    )
    records = list(iter_order_records(text, "csv"))
    assert [r.row for r in records] == [2, 3]
    assert all(r.error is None for r in records)
    first, second = (r.payload for r in records)
    assert first is not None and second is not None
    assert first["order_number"] == "SO-2"
    assert [line["line_id"] for line in first["lines"]] == ["A1", "A2"]
    assert first["lines"][1]["quantity"] == 3
    assert first["lines"][1]["variant"] is None
    assert [line["line_id"] for line in second["lines"]] == ["L1", "L2"]
    assert second["lines"][1]["final_sale"] is True
    assert second["lines"][1]["discount"] == "5.00"


def test_csv_payload_shape_is_accepted_by_parse_order() -> None:
    text = csv_text(csv_row(), csv_row(line_id="L2", sku="MUG-01", product_name="陶瓷马克杯", unit_price="39.90"))
    [record] = iter_order_records(text, "csv")
    assert record.payload == {
        "order_number": "SO-1",
        "placed_at": "2024-05-01T10:30:00+08:00",
        "delivered_at": None,
        "currency": "CNY",
        "channel": "tmall",
        "customer": {"name": "王小明", "email": "xm@example.com", "phone": None, "postcode": "100000"},
        "payment": {"method": "alipay", "reference": None},
        "shipping_paid": "10.00",
        "gift": False,
        "lines": [
            {
                "line_id": "L1",
                "sku": "TEE-RED-M",
                "product_name": "纯棉短袖T恤",
                "variant": "红色 / M",
                "category": "apparel",
                "quantity": 1,
                "unit_price": "99.00",
                "discount": None,
                "tax": None,
                "final_sale": None,
            },
            {
                "line_id": "L2",
                "sku": "MUG-01",
                "product_name": "陶瓷马克杯",
                "variant": "红色 / M",
                "category": "apparel",
                "quantity": 1,
                "unit_price": "39.90",
                "discount": None,
                "tax": None,
                "final_sale": None,
            },
        ],
    }
    order = parse_order(record.payload)
    assert order.order_number == "SO-1"
    assert [line.unit_price for line in order.lines] == [Decimal("99.00"), Decimal("39.90")]
    assert order.gift is False and order.delivered_at is None


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("Yes", True),
        ("1", True),
        ("false", False),
        ("NO", False),
        ("0", False),
        ("", None),
        ("maybe", "maybe"),
    ],
)
def test_csv_flags(cell: str, expected: object) -> None:
    [record] = iter_order_records(csv_text(csv_row(gift=cell, final_sale=cell)), "csv")
    assert record.payload is not None
    assert record.payload["gift"] == expected
    assert record.payload["lines"][0]["final_sale"] == expected


@pytest.mark.parametrize(
    ("cell", "expected"),
    [("2", 2), (" 12 ", 12), ("-1", -1), ("", None), ("2.0", "2.0"), ("two", "two"), ("²", "²")],
)
def test_csv_quantity(cell: str, expected: object) -> None:
    [record] = iter_order_records(csv_text(csv_row(quantity=cell)), "csv")
    assert record.payload is not None
    assert record.payload["lines"][0]["quantity"] == expected


@pytest.mark.parametrize(
    ("cell", "message"),
    [("2.0", "must be a whole number"), ("-1", "must be at least 1"), ("", "is required")],
)
def test_csv_quantity_problems_are_reported_by_parse_order(cell: str, message: str) -> None:
    [record] = iter_order_records(csv_text(csv_row(quantity=cell)), "csv")
    with pytest.raises(PayloadError) as info:
        parse_order(record.payload)
    assert [(e.field, e.message) for e in info.value.errors] == [("lines[0].quantity", message)]


def test_csv_with_bom() -> None:
    [record] = iter_order_records("\ufeff" + csv_text(csv_row()), "csv")
    assert record.row == 2 and record.payload is not None
    assert record.payload["order_number"] == "SO-1"


def test_csv_header_is_case_and_space_insensitive_and_extra_columns_are_ignored() -> None:
    header = ",".join(f" {c.upper()} " for c in COLUMNS) + ",internal_note"
    [record] = iter_order_records(csv_text(csv_row() + ",hello", header=header), "csv")
    assert record.error is None and record.payload is not None


@pytest.mark.parametrize(
    ("drop", "named"),
    [
        (("currency",), "currency"),
        (("quantity", "unit_price"), "quantity, unit_price"),
    ],
)
def test_csv_missing_required_columns(drop: tuple[str, ...], named: str) -> None:
    header = ",".join(c for c in COLUMNS if c not in drop)
    with pytest.raises(ValueError, match=f"missing required columns: {named}$"):
        iter_order_records(header + "\n", "csv")


@pytest.mark.parametrize("text", ["", "\ufeff", "\n\n"])
def test_csv_without_header(text: str) -> None:
    with pytest.raises(ValueError, match="missing required columns: order_number"):
        iter_order_records(text, "csv")


def test_csv_optional_columns_may_be_left_out() -> None:
    optional = {"delivered_at", "channel", "customer_phone", "payment_reference", "shipping_paid", "gift"}
    optional |= {"variant", "discount", "tax", "final_sale"}
    columns = [c for c in COLUMNS if c not in optional]
    row = csv_row().split(",")
    text = ",".join(columns) + "\n" + ",".join(row[COLUMNS.index(c)] for c in columns) + "\n"
    [record] = iter_order_records(text, "csv")
    assert record.payload is not None
    order = parse_order(record.payload)
    assert order.channel == "web" and order.gift is False and order.lines[0].variant == ""


def test_csv_duplicate_header_column() -> None:
    with pytest.raises(ValueError, match="repeats columns: sku"):
        iter_order_records(HEADER + ",sku\n", "csv")


def test_csv_conflicting_order_values_reject_that_order_only() -> None:
    text = csv_text(
        csv_row(order_number="SO-1", line_id="L1"),
        csv_row(order_number="SO-2", line_id="L1"),
        csv_row(order_number="SO-1", line_id="L2", currency="USD"),
    )
    records = list(iter_order_records(text, "csv"))
    assert [(r.row, r.payload is None) for r in records] == [(2, True), (3, False)]
    error = records[0].error
    assert error is not None
    assert "SO-1" in error and "currency" in error and "rows 2 and 4" in error


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"gift": "yes"}, {"gift": "TRUE"}),
        ({"customer_email": "XM@example.com"}, {"customer_email": "xm@example.com"}),
        ({"channel": "tmall"}, {"channel": ""}),
        ({"order_number": "so-1"}, {"order_number": " SO-1 "}),
        ({"shipping_paid": "", "delivered_at": ""}, {"shipping_paid": "5.00", "delivered_at": "2024-05-02T10:00:00Z"}),
    ],
)
def test_csv_equivalent_or_blank_order_values_do_not_conflict(first: dict[str, str], second: dict[str, str]) -> None:
    text = csv_text(csv_row(line_id="L1", **first), csv_row(line_id="L2", **second))
    [record] = iter_order_records(text, "csv")
    assert record.error is None and record.payload is not None
    assert len(record.payload["lines"]) == 2


def test_csv_blank_values_are_filled_from_other_rows() -> None:
    text = csv_text(csv_row(line_id="L1", shipping_paid=""), csv_row(line_id="L2", shipping_paid="5.00"))
    [record] = iter_order_records(text, "csv")
    assert record.payload is not None and record.payload["shipping_paid"] == "5.00"


def test_csv_row_numbers_count_the_header_blank_rows_and_quoted_newlines() -> None:
    text = csv_text(
        csv_row(order_number="A"),
        "",
        csv_row(order_number="B", product_name='"two\nlines"'),
        csv_row(order_number=""),
        csv_row(order_number="C"),
        csv_row(order_number="A", line_id="L2"),
    )
    records = list(iter_order_records(text, "csv"))
    assert [(r.row, r.error is None) for r in records] == [(2, True), (4, True), (5, False), (6, True)]
    assert records[2].error == "row 5: order_number is empty"
    assert records[1].payload is not None
    assert records[1].payload["lines"][0]["product_name"] == "two\nlines"
    assert records[0].payload is not None and len(records[0].payload["lines"]) == 2


def test_csv_row_with_more_cells_than_the_header() -> None:
    [record] = iter_order_records(csv_text(csv_row() + ",surplus"), "csv")
    assert record.payload is None and record.error == "row 2 has more cells than the header"


def test_csv_short_rows_read_missing_cells_as_blank() -> None:
    short = ",".join(csv_row().split(",")[: COLUMNS.index("unit_price") + 1])
    [record] = iter_order_records(csv_text(short), "csv")
    assert record.payload is not None
    assert record.payload["lines"][0]["final_sale"] is None and record.payload["lines"][0]["tax"] is None


def test_csv_malformed_file() -> None:
    huge = "x" * 200_000
    with pytest.raises(ValueError, match="malformed CSV"):
        iter_order_records(csv_text(csv_row(product_name=huge)), "csv")
