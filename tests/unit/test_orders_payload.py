"""Order and product payload validation."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portal.domain.orders import (
    CustomerData,
    FieldError,
    LineData,
    OrderData,
    PayloadError,
    PaymentData,
    ProductData,
    VariantData,
    normalise_order_number,
    normalise_postcode,
    parse_order,
    parse_products,
)

DELETE = object()


def order_payload() -> dict[str, Any]:
    return {
        "order_number": " so-1001 ",
        "placed_at": "2024-05-01T10:30:00+08:00",
        "delivered_at": "2024-05-03T09:00:00+08:00",
        "currency": "CNY",
        "channel": "Tmall",
        "customer": {
            "name": "王小明",
            "email": " Xiaoming.Wang@Example.COM ",
            "phone": "+86 138 0000 0000",
            "postcode": " 100 000 ",
        },
        "payment": {"method": "Alipay", "reference": "2024050122001"},
        "shipping_paid": "12.00",
        "gift": False,
        "lines": [
            {
                "line_id": "L1",
                "sku": "TEE-RED-M",
                "product_name": "纯棉短袖T恤",
                "variant": "红色 / M",
                "category": "Apparel",
                "quantity": 2,
                "unit_price": "99.00",
                "discount": "20.00",
                "tax": "11.96",
                "final_sale": False,
            },
            {
                "line_id": "L2",
                "sku": "MUG-01",
                "product_name": "陶瓷马克杯",
                "category": "home",
                "quantity": 1,
                "unit_price": "39.9",
            },
        ],
        "shop_specific_extra": {"anything": [1, 2, 3]},
    }


def changed(path: str, value: object, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    """A copy of ``payload`` with the dotted ``path`` (``lines.0.quantity``) set or deleted."""
    data = copy.deepcopy(payload if payload is not None else order_payload())
    *parents, last = path.split(".")
    target: Any = data
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    key: Any = int(last) if isinstance(target, list) else last
    if value is DELETE:
        del target[key]
    else:
        target[key] = value
    return data


def errors_of(payload: object) -> list[FieldError]:
    with pytest.raises(PayloadError) as info:
        parse_order(payload)
    return info.value.errors


def test_happy_path_with_chinese_names_and_normalisation() -> None:
    order = parse_order(order_payload())

    assert isinstance(order, OrderData)
    assert order.order_number == "SO-1001"
    assert order.placed_at == datetime(2024, 5, 1, 2, 30, tzinfo=UTC)
    assert order.placed_at.utcoffset() == timedelta(hours=8)
    assert order.delivered_at is not None and order.delivered_at.tzinfo is not None
    assert order.currency == "CNY"
    assert order.channel == "tmall"
    assert order.customer == CustomerData(
        name="王小明", email="xiaoming.wang@example.com", phone="+86 138 0000 0000", postcode="100000"
    )
    assert order.payment == PaymentData(method="alipay", reference="2024050122001")
    assert order.shipping_paid == Decimal("12.00")
    assert order.gift is False
    assert order.lines == (
        LineData(
            line_id="L1",
            sku="TEE-RED-M",
            product_name="纯棉短袖T恤",
            variant="红色 / M",
            category="apparel",
            quantity=2,
            unit_price=Decimal("99.00"),
            discount=Decimal("20.00"),
            tax=Decimal("11.96"),
            final_sale=False,
        ),
        LineData(
            line_id="L2",
            sku="MUG-01",
            product_name="陶瓷马克杯",
            variant="",
            category="home",
            quantity=1,
            unit_price=Decimal("39.90"),
            discount=Decimal("0.00"),
            tax=Decimal("0.00"),
            final_sale=False,
        ),
    )
    assert str(order.lines[1].unit_price) == "39.90"


def test_defaults_for_optional_fields() -> None:
    payload = order_payload()
    for key in ("delivered_at", "channel", "shipping_paid", "gift"):
        del payload[key]
    payload["customer"] = {"name": "Ann", "postcode": "sw1a 1aa"}
    payload["payment"] = {"method": "card"}
    order = parse_order(payload)
    assert order.delivered_at is None
    assert order.channel == "web"
    assert order.shipping_paid == Decimal("0")
    assert order.gift is False
    assert order.customer == CustomerData(name="Ann", email=None, phone=None, postcode="SW1A1AA")
    assert order.payment == PaymentData(method="card", reference=None)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("delivered_at", None),
        ("delivered_at", ""),
        ("delivered_at", "2024-05-01T10:30:00+08:00"),
        ("placed_at", "2024-05-01T02:30:00Z"),
        ("gift", True),
        ("lines.0.final_sale", True),
        ("customer.email", None),
        ("customer.postcode", ""),
        ("customer.phone", None),
        ("channel", None),
        ("shipping_paid", None),
        ("lines.0.discount", None),
    ],
)
def test_accepted_variations(path: str, value: object) -> None:
    assert isinstance(parse_order(changed(path, value)), OrderData)


def test_z_suffix_means_utc() -> None:
    order = parse_order(changed("placed_at", "2024-05-01T02:30:00Z"))
    assert order.placed_at == datetime(2024, 5, 1, 2, 30, tzinfo=UTC)
    assert order.placed_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [(" so-1001 ", "SO-1001"), ("abc", "ABC"), ("Ab 12", "AB 12"), ("\tx-1\n", "X-1")],
)
def test_normalise_order_number(raw: str, normalised: str) -> None:
    assert normalise_order_number(raw) == normalised


@pytest.mark.parametrize(
    ("raw", "normalised"), [("sw1a 1aa", "SW1A1AA"), (" 100 000 ", "100000"), ("ec1a\t1bb", "EC1A1BB")]
)
def test_normalise_postcode(raw: str, normalised: str) -> None:
    assert normalise_postcode(raw) == normalised


@pytest.mark.parametrize(
    "payload",
    [None, [], [order_payload()], "order", 42, 4.2, True, False],
    ids=["null", "empty-list", "list", "string", "int", "float", "true", "false"],
)
def test_non_object_payloads(payload: object) -> None:
    assert [e.to_dict() for e in errors_of(payload)] == [{"field": "", "message": "must be an object"}]


@pytest.mark.parametrize(
    ("path", "value", "field", "message"),
    [
        # order number
        ("order_number", DELETE, "order_number", "is required"),
        ("order_number", None, "order_number", "is required"),
        ("order_number", "   ", "order_number", "must not be empty"),
        ("order_number", 1001, "order_number", "must be a string"),
        ("order_number", "X" * 65, "order_number", "must be at most 64 characters"),
        ("order_number", "SO\x001001", "order_number", "must not contain control characters"),
        ("order_number", "SO\n1001", "order_number", "must not contain control characters"),
        # timestamps
        ("placed_at", DELETE, "placed_at", "is required"),
        ("placed_at", "2024-05-01T10:30:00", "placed_at", "must include a UTC offset such as +08:00 or Z"),
        ("placed_at", "2024-05-01", "placed_at", "must include a UTC offset such as +08:00 or Z"),
        ("placed_at", "yesterday", "placed_at", "must be an ISO 8601 timestamp such as 2024-05-01T10:30:00+08:00"),
        ("placed_at", 1714530600, "placed_at", "must be an ISO 8601 timestamp string"),
        ("delivered_at", "2024-05-03T09:00:00", "delivered_at", "must include a UTC offset such as +08:00 or Z"),
        ("delivered_at", "2024-04-30T09:00:00+08:00", "delivered_at", "must not be before placed_at"),
        ("delivered_at", False, "delivered_at", "must be an ISO 8601 timestamp string"),
        # currency
        ("currency", DELETE, "currency", "is required"),
        ("currency", "XYZ", "currency", "is not a known ISO 4217 currency code"),
        ("currency", "RMB", "currency", "is not a known ISO 4217 currency code"),
        ("currency", "cny", "currency", "must be an uppercase ISO 4217 code such as CNY"),
        ("currency", 156, "currency", "must be a string"),
        # channel
        ("channel", "x" * 33, "channel", "must be at most 32 characters"),
        ("channel", ["web"], "channel", "must be a string"),
        # customer
        ("customer", DELETE, "customer", "is required"),
        ("customer", "王小明", "customer", "must be an object"),
        ("customer", [], "customer", "must be an object"),
        ("customer.name", DELETE, "customer.name", "is required"),
        ("customer.name", {"first": "A"}, "customer.name", "must be a string"),
        ("customer.email", "not-an-email", "customer.email", "is not a valid email address"),
        ("customer.email", "a@b", "customer.email", "is not a valid email address"),
        ("customer.email", "a b@example.com", "customer.email", "is not a valid email address"),
        ("customer.email", 7, "customer.email", "must be a string"),
        ("customer.phone", 13800000000, "customer.phone", "must be a string"),
        ("customer.postcode", 100000, "customer.postcode", "must be a string"),
        # payment
        ("payment", DELETE, "payment", "is required"),
        ("payment", "alipay", "payment", "must be an object"),
        ("payment.method", DELETE, "payment.method", "is required"),
        ("payment.method", True, "payment.method", "must be a string"),
        ("payment.reference", 123, "payment.reference", "must be a string"),
        # shipping and gift
        ("shipping_paid", "-1.00", "shipping_paid", "must not be negative"),
        ("shipping_paid", 12.0, "shipping_paid", 'must be a decimal string such as "12.50"'),
        ("shipping_paid", "12,00", "shipping_paid", 'must be a decimal string such as "12.50"'),
        ("shipping_paid", "NaN", "shipping_paid", 'must be a decimal string such as "12.50"'),
        ("shipping_paid", "1e3", "shipping_paid", 'must be a decimal string such as "12.50"'),
        ("shipping_paid", "1_000", "shipping_paid", 'must be a decimal string such as "12.50"'),
        ("shipping_paid", "1.234", "shipping_paid", "has more decimal places than the currency allows"),
        ("shipping_paid", "9" * 400, "shipping_paid", "is too large"),
        ("gift", "yes", "gift", "must be true or false"),
        ("gift", 1, "gift", "must be true or false"),
        # lines container
        ("lines", DELETE, "lines", "is required"),
        ("lines", [], "lines", "must contain at least one line"),
        ("lines", {"0": {}}, "lines", "must be a list"),
        ("lines", "L1", "lines", "must be a list"),
        ("lines.0", "L1", "lines[0]", "must be an object"),
        ("lines.1", None, "lines[1]", "must be an object"),
        # line fields
        ("lines.0.line_id", DELETE, "lines[0].line_id", "is required"),
        ("lines.1.line_id", "L1", "lines[1].line_id", "duplicate line id"),
        ("lines.1.line_id", " L1 ", "lines[1].line_id", "duplicate line id"),
        ("lines.0.sku", 123, "lines[0].sku", "must be a string"),
        ("lines.0.product_name", "", "lines[0].product_name", "must not be empty"),
        ("lines.0.variant", ["红色"], "lines[0].variant", "must be a string"),
        ("lines.0.category", DELETE, "lines[0].category", "is required"),
        ("lines.0.quantity", DELETE, "lines[0].quantity", "is required"),
        ("lines.0.quantity", 0, "lines[0].quantity", "must be at least 1"),
        ("lines.0.quantity", -2, "lines[0].quantity", "must be at least 1"),
        ("lines.0.quantity", True, "lines[0].quantity", "must be a whole number"),
        ("lines.0.quantity", False, "lines[0].quantity", "must be a whole number"),
        ("lines.0.quantity", 2.0, "lines[0].quantity", "must be a whole number"),
        ("lines.0.quantity", "2", "lines[0].quantity", "must be a whole number"),
        ("lines.0.quantity", 10**30, "lines[0].quantity", "is too large"),
        ("lines.0.unit_price", DELETE, "lines[0].unit_price", "is required"),
        ("lines.0.unit_price", 99, "lines[0].unit_price", 'must be a decimal string such as "12.50"'),
        ("lines.0.unit_price", "-0.01", "lines[0].unit_price", "must not be negative"),
        ("lines.0.unit_price", "99.001", "lines[0].unit_price", "has more decimal places than the currency allows"),
        ("lines.0.unit_price", "1000000000000", "lines[0].unit_price", "is too large"),
        ("lines.0.discount", "198.01", "lines[0].discount", "discount above the price"),
        ("lines.0.discount", "-1", "lines[0].discount", "must not be negative"),
        ("lines.0.tax", "1.999", "lines[0].tax", "has more decimal places than the currency allows"),
        ("lines.0.tax", {"amount": "1"}, "lines[0].tax", 'must be a decimal string such as "12.50"'),
        ("lines.0.final_sale", "false", "lines[0].final_sale", "must be true or false"),
        ("lines.0.final_sale", 0, "lines[0].final_sale", "must be true or false"),
    ],
)
def test_validation_errors(path: str, value: object, field: str, message: str) -> None:
    errors = errors_of(changed(path, value))
    assert FieldError(field, message) in errors, errors


def test_customer_needs_email_or_postcode() -> None:
    payload = changed("customer", {"name": "Ann", "email": " ", "phone": "123"})
    assert errors_of(payload) == [FieldError("customer", "needs an email address or a postcode")]


@pytest.mark.parametrize(
    ("currency", "amount", "ok"),
    [
        ("CNY", "1.23", True),
        ("CNY", "1.230", True),
        ("CNY", "1.234", False),
        ("JPY", "1500", True),
        ("JPY", "1.5", False),
        ("KWD", "1.234", True),
        ("KWD", "1.2345", False),
    ],
)
def test_decimal_places_follow_the_currency(currency: str, amount: str, ok: bool) -> None:
    payload = order_payload()
    payload["currency"] = currency
    payload["shipping_paid"] = "0"
    payload["lines"] = [{**payload["lines"][1], "unit_price": amount}]
    if ok:
        assert parse_order(payload).lines[0].unit_price == Decimal(amount)
    else:
        assert errors_of(payload) == [
            FieldError("lines[0].unit_price", "has more decimal places than the currency allows")
        ]


def test_discount_equal_to_the_line_price_is_allowed() -> None:
    assert parse_order(changed("lines.0.discount", "198.00")).lines[0].discount == Decimal("198.00")


def test_all_errors_are_collected() -> None:
    payload = order_payload()
    payload["currency"] = "XXX1"
    payload["placed_at"] = "2024-05-01T10:30:00"
    payload["customer"]["name"] = None
    payload["lines"][0]["quantity"] = True
    payload["lines"][1]["unit_price"] = -1
    payload["lines"].append("oops")
    error = pytest.raises(PayloadError, parse_order, payload).value
    assert {e.field for e in error.errors} == {
        "currency",
        "placed_at",
        "customer.name",
        "lines[0].quantity",
        "lines[1].unit_price",
        "lines[2]",
    }
    assert error.to_list()[0] == {"field": "placed_at", "message": "must include a UTC offset such as +08:00 or Z"}
    assert isinstance(error, ValueError)


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"lines": [[]]},
        {"lines": [None, 1, "x", {}]},
        {"customer": None, "payment": None, "lines": None},
        {"customer": {"name": 1, "email": [], "postcode": {}}, "payment": {"method": None}},
        {"order_number": {"a": 1}, "placed_at": [], "currency": None, "gift": None},
        {"lines": [{"quantity": 10**5000, "unit_price": "9" * 5000, "discount": "1" * 100}]},
        {"lines": [{"quantity": 1, "unit_price": "1e999999", "discount": "Infinity"}]},
        {"placed_at": "9999-12-31T23:59:59-23:59", "delivered_at": "0001-01-01T00:00:00+23:59"},
        {"placed_at": "x" * 10_000, "currency": "X" * 10_000},
        {1: "non-string key", "order_number": "A"},
    ],
)
def test_never_raises_anything_but_payload_error(payload: object) -> None:
    with pytest.raises(PayloadError):
        parse_order(payload)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
order_keys = st.sampled_from(sorted(order_payload()))


@settings(database=None)
@given(json_values)
def test_any_json_value_gives_payload_error(value: object) -> None:
    with pytest.raises(PayloadError):
        parse_order(value)
    with pytest.raises(PayloadError):
        parse_products(value)


@settings(database=None)
@given(st.dictionaries(order_keys, json_values, max_size=4))
def test_replacing_fields_with_any_json_never_crashes(replacements: dict[str, object]) -> None:
    try:
        parse_order({**order_payload(), **replacements})
    except PayloadError as error:
        assert error.errors


# --- products ---------------------------------------------------------------


def products_payload() -> dict[str, Any]:
    return {
        "products": [
            {
                "product_code": "TEE",
                "name": "纯棉短袖T恤",
                "category": "Apparel",
                "variants": [
                    {"sku": "TEE-RED-M", "variant": "红色 / M", "stock": 10},
                    {"sku": "TEE-RED-L", "variant": "红色 / L", "stock": 0},
                ],
            },
            {
                "product_code": "MUG",
                "name": "陶瓷马克杯",
                "category": "home",
                "variants": [{"sku": "MUG-01", "stock": 3}],
            },
        ]
    }


def test_products_happy_path() -> None:
    assert parse_products(products_payload()) == [
        ProductData(
            product_code="TEE",
            name="纯棉短袖T恤",
            category="apparel",
            variants=(VariantData("TEE-RED-M", "红色 / M", 10), VariantData("TEE-RED-L", "红色 / L", 0)),
        ),
        ProductData(product_code="MUG", name="陶瓷马克杯", category="home", variants=(VariantData("MUG-01", "", 3),)),
    ]


@pytest.mark.parametrize(
    ("path", "value", "field", "message"),
    [
        ("products", DELETE, "products", "is required"),
        ("products", [], "products", "must contain at least one product"),
        ("products", {"TEE": {}}, "products", "must be a list"),
        ("products.0", "TEE", "products[0]", "must be an object"),
        ("products.0.product_code", DELETE, "products[0].product_code", "is required"),
        ("products.1.product_code", "TEE", "products[1].product_code", "duplicate product code"),
        ("products.0.name", 5, "products[0].name", "must be a string"),
        ("products.0.category", "", "products[0].category", "must not be empty"),
        ("products.0.variants", DELETE, "products[0].variants", "is required"),
        ("products.0.variants", [], "products[0].variants", "must contain at least one variant"),
        ("products.0.variants", "TEE-RED-M", "products[0].variants", "must be a list"),
        ("products.0.variants.1", 7, "products[0].variants[1]", "must be an object"),
        ("products.0.variants.1.sku", "TEE-RED-M", "products[0].variants[1].sku", "duplicate sku"),
        ("products.1.variants.0.sku", "TEE-RED-L", "products[1].variants[0].sku", "duplicate sku"),
        ("products.0.variants.0.sku", None, "products[0].variants[0].sku", "is required"),
        ("products.0.variants.0.stock", -1, "products[0].variants[0].stock", "must not be negative"),
        ("products.0.variants.0.stock", True, "products[0].variants[0].stock", "must be a whole number"),
        ("products.0.variants.0.stock", "10", "products[0].variants[0].stock", "must be a whole number"),
        ("products.0.variants.0.stock", 1.5, "products[0].variants[0].stock", "must be a whole number"),
        ("products.0.variants.0.stock", 10**20, "products[0].variants[0].stock", "is too large"),
        ("products.0.variants.0.stock", DELETE, "products[0].variants[0].stock", "is required"),
    ],
)
def test_product_validation_errors(path: str, value: object, field: str, message: str) -> None:
    with pytest.raises(PayloadError) as info:
        parse_products(changed(path, value, products_payload()))
    assert FieldError(field, message) in info.value.errors, info.value.errors


@pytest.mark.parametrize("payload", [None, [], "products", 1, True, [products_payload()]])
def test_products_payload_must_be_an_object(payload: object) -> None:
    with pytest.raises(PayloadError) as info:
        parse_products(payload)
    assert info.value.errors == [FieldError("", "must be an object")]


def test_variant_price_is_optional_and_checked():
    from decimal import Decimal

    from portal.domain.orders import PayloadError, parse_products

    base = {
        "products": [
            {
                "product_code": "T",
                "name": "T",
                "category": "tops",
                "variants": [{"sku": "T-1", "variant": "S", "stock": 1}],
            }
        ]
    }
    assert parse_products(base)[0].variants[0].price is None
    base["products"][0]["variants"][0]["price"] = "79.50"
    assert parse_products(base)[0].variants[0].price == Decimal("79.50")
    for bad in (79.5, "-1", "abc"):
        base["products"][0]["variants"][0]["price"] = bad
        with pytest.raises(PayloadError):
            parse_products(base)


# Hostile values found by trying the API as an attacker would: each gives a field error, never an exception.


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("customer.name", "\ud800", "customer.name"),  # a lone surrogate cannot be stored as UTF-8
        ("lines.0.product_name", "T恤\udfff", "lines[0].product_name"),
        ("placed_at", "0001-01-01T00:00:00+01:00", "placed_at"),  # before the first representable UTC instant
        ("placed_at", "9999-12-31T23:59:59-01:00", "placed_at"),  # after the last one
        ("placed_at", "1900-01-01T00:00:00Z", "placed_at"),
        ("order_number", "ß" * 40, "order_number"),  # 40 characters, 80 once uppercased
        ("channel", "İ" * 20, "channel"),  # 20 characters, 40 once lowercased
        ("lines.0.category", "İ" * 40, "lines[0].category"),
        ("lines.0.variant", "M" * 129, "lines[0].variant"),  # the column holds 128
        ("payment.reference", "R" * 129, "payment.reference"),
        ("lines.0.unit_price", "10000000000", "lines[0].unit_price"),  # NUMERIC(14, 4) holds less than 10^10
        ("lines.0.quantity", 1_000_000, "lines[0].quantity"),  # with a unit price of 99999.00: a line total of 10^11
        ("customer.email", '"a<b>"@example.com', "customer.email"),
        ("customer.email", "li.wei@example.com>, evil@example.com", "customer.email"),
    ],
)
def test_hostile_values_are_field_errors(path, value, field) -> None:
    payload = changed(path, value)
    if path == "lines.0.quantity":
        payload = changed("lines.0.unit_price", "99999.00", payload)  # a line total of 10^11
    assert field in {e.field for e in errors_of(payload)}


def test_order_total_is_bounded() -> None:
    payload = order_payload()
    payload["lines"] = [
        {
            "line_id": f"L{i}",
            "sku": f"S{i}",
            "product_name": "Gold",
            "category": "jewellery",
            "quantity": 1,
            "unit_price": "9000000000.00",
        }
        for i in range(3)
    ]
    assert "lines" in {e.field for e in errors_of(payload)}


def test_products_reject_surrogates_and_over_long_variants() -> None:
    with pytest.raises(PayloadError) as info:
        parse_products(
            {
                "products": [
                    {
                        "product_code": "P\ud800",
                        "name": "Tee",
                        "category": "tops",
                        "variants": [{"sku": "T-1", "variant": "x" * 129, "stock": 1}],
                    }
                ]
            }
        )
    assert {e.field for e in info.value.errors} == {"products[0].product_code", "products[0].variants[0].variant"}
