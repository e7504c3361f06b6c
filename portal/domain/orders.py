"""Validation of order, product and store-credit redemption payloads sent by shops.

``parse_order``, ``parse_products`` and ``parse_redemption`` accept any JSON value and either return
frozen, normalised data or raise ``PayloadError`` listing every problem found,
each tied to a field path such as ``lines[0].quantity``. Messages are English
message ids (marked with ``N_``) translated by the web layer.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from .money import is_known_currency, parse_money, round_money
from .text import N_

ROOT = ""
"""Field path used for errors about the payload as a whole."""

MAX_QUANTITY = 1_000_000
MAX_STOCK = 1_000_000_000
MAX_LINES = 1_000
MAX_PRODUCTS = 10_000
MAX_MONEY = Decimal(10) ** 10
"""Amounts, line totals and order totals must be below this: the database stores money as
``NUMERIC(14, 4)``, so every stored sum fits and arithmetic stays exact."""
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)
"""Timestamps must fall in this range (date arithmetic on them never overflows)."""

_MAX_LENGTH_MESSAGES = {
    32: N_("must be at most 32 characters"),
    64: N_("must be at most 64 characters"),
    128: N_("must be at most 128 characters"),
    255: N_("must be at most 255 characters"),
}

_MONEY_RE = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
# No quotes, angle brackets, commas or the like: an address here is used in mail headers as is.
_EMAIL_RE = re.compile(r"[^@\s\"'<>()\[\],;:\\]+@[^@\s.\"'<>()\[\],;:\\]+(?:\.[^@\s.\"'<>()\[\],;:\\]+)+")
_WHITESPACE_RE = re.compile(r"\s+")


@dataclass(frozen=True)
class FieldError:
    """One problem with one field of a payload."""

    field: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class PayloadError(ValueError):
    """A payload was rejected; ``errors`` lists every problem found."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors: list[FieldError] = list(errors)
        summary = "; ".join(f"{e.field or '(payload)'}: {e.message}" for e in self.errors)
        super().__init__(summary or "invalid payload")

    def to_list(self) -> list[dict[str, str]]:
        return [error.to_dict() for error in self.errors]


@dataclass(frozen=True)
class CustomerData:
    """The shopper as given by the shop; at least one of email and postcode is set."""

    name: str
    email: str | None
    phone: str | None
    postcode: str | None


@dataclass(frozen=True)
class PaymentData:
    """How the order was paid."""

    method: str
    reference: str | None


@dataclass(frozen=True)
class LineData:
    """One order line; ``discount`` and ``tax`` are totals for the whole line."""

    line_id: str
    sku: str
    product_name: str
    variant: str
    category: str
    quantity: int
    unit_price: Decimal
    discount: Decimal
    tax: Decimal
    final_sale: bool


@dataclass(frozen=True)
class OrderData:
    """A validated order; timestamps are timezone-aware, amounts are Decimals."""

    order_number: str
    placed_at: datetime
    delivered_at: datetime | None
    currency: str
    channel: str
    customer: CustomerData
    payment: PaymentData
    shipping_paid: Decimal
    gift: bool
    lines: tuple[LineData, ...]
    updated_at: datetime | None = None  # when the shop last changed the order: an older push than stored is refused


@dataclass(frozen=True)
class VariantData:
    """One sellable variant of a product."""

    sku: str
    variant: str
    stock: int
    price: Decimal | None = None  # this variant's own price, when it differs between variants
    image_url: str | None = None  # the shop's picture of this variant (copied by the portal, never hot-linked)


@dataclass(frozen=True)
class ProductData:
    """A catalogue product with its variants."""

    product_code: str
    name: str
    category: str
    variants: tuple[VariantData, ...]
    updated_at: datetime | None = None  # when the shop last changed the product
    image_url: str | None = None  # the shop's picture of the product


def normalise_order_number(value: str) -> str:
    """The canonical form of an order number: surrounding spaces removed, uppercased."""
    return value.strip().upper()


def normalise_postcode(value: str) -> str:
    """Postcode without any whitespace, uppercased ("sw1a 1aa" -> "SW1A1AA")."""
    return _WHITESPACE_RE.sub("", value).upper()


class _Errors:
    """Collects field errors while a payload is walked."""

    def __init__(self) -> None:
        self.items: list[FieldError] = []

    def add(self, field: str, message: str) -> None:
        self.items.append(FieldError(field, message))

    def __len__(self) -> int:
        return len(self.items)


def _path(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _has_control(value: str) -> bool:
    return any(unicodedata.category(ch) == "Cc" for ch in value)


def _given(value: object) -> bool:
    """Whether an optional field was sent with something other than null or blank text."""
    return value is not None and not (isinstance(value, str) and not value.strip())


def _object(errs: _Errors, value: object, path: str) -> Mapping[str, object] | None:
    if not isinstance(value, Mapping):
        errs.add(path, N_("must be an object"))
        return None
    return value


def _text(
    errs: _Errors,
    obj: Mapping[str, object],
    key: str,
    prefix: str,
    *,
    required: bool = True,
    max_length: int = 255,
    normalise: Callable[[str], str] | None = None,
) -> str | None:
    """A stripped single-line string; absent, null and blank optional values give None.

    ``normalise`` (such as ``str.upper``) is applied before the length is checked: some
    characters grow under case mapping ("ß" uppercases to "SS").
    """
    path = _path(prefix, key)
    value = obj.get(key)
    if value is None:
        if required:
            errs.add(path, N_("is required"))
        return None
    if not isinstance(value, str):
        errs.add(path, N_("must be a string"))
        return None
    text = value.strip()
    if not text:
        if required:
            errs.add(path, N_("must not be empty"))
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate such as "\ud800"
        errs.add(path, N_("must be valid Unicode text"))
        return None
    if normalise is not None:
        text = normalise(text)
    if len(text) > max_length:
        errs.add(path, _MAX_LENGTH_MESSAGES[max_length])
        return None
    if _has_control(text):
        errs.add(path, N_("must not contain control characters"))
        return None
    return text


def _bool(errs: _Errors, obj: Mapping[str, object], key: str, prefix: str) -> bool:
    """A JSON boolean; absent or null means false."""
    value = obj.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        errs.add(_path(prefix, key), N_("must be true or false"))
        return False
    return value


def _int(errs: _Errors, obj: Mapping[str, object], key: str, prefix: str, *, minimum: int, maximum: int) -> int | None:
    """A JSON integer (booleans and floats are rejected) within bounds."""
    path = _path(prefix, key)
    value = obj.get(key)
    if value is None:
        errs.add(path, N_("is required"))
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        errs.add(path, N_("must be a whole number"))
        return None
    if value < minimum:
        errs.add(path, N_("must be at least 1") if minimum == 1 else N_("must not be negative"))
        return None
    if value > maximum:
        errs.add(path, N_("is too large"))
        return None
    return value


def _money(
    errs: _Errors, obj: Mapping[str, object], key: str, prefix: str, currency: str | None, *, required: bool
) -> Decimal | None:
    """A non-negative decimal string; absent or null optional amounts are zero.

    With a known ``currency`` the amount may not be more precise than its minor
    unit and is returned quantized to it.
    """
    path = _path(prefix, key)
    value = obj.get(key)
    if value is None:
        if required:
            errs.add(path, N_("is required"))
            return None
        value = "0"
    if not isinstance(value, str):
        errs.add(path, N_('must be a decimal string such as "12.50"'))
        return None
    if not _MONEY_RE.fullmatch(value.strip()):
        errs.add(path, N_('must be a decimal string such as "12.50"'))
        return None
    amount = parse_money(value)
    if amount < 0:
        errs.add(path, N_("must not be negative"))
        return None
    if amount >= MAX_MONEY:
        errs.add(path, N_("is too large"))
        return None
    if currency is None:
        return amount
    rounded = round_money(amount, currency)
    if rounded != amount:
        errs.add(path, N_("has more decimal places than the currency allows"))
        return None
    return rounded + 0  # turns a negative zero into zero


def _timestamp(errs: _Errors, obj: Mapping[str, object], key: str, prefix: str, *, required: bool) -> datetime | None:
    """An ISO 8601 timestamp with a UTC offset ("Z" accepted)."""
    path = _path(prefix, key)
    value = obj.get(key)
    if value is None:
        if required:
            errs.add(path, N_("is required"))
        return None
    if not isinstance(value, str):
        errs.add(path, N_("must be an ISO 8601 timestamp string"))
        return None
    text = value.strip()
    if not text and not required:
        return None
    try:
        moment = datetime.fromisoformat(text) if len(text) <= 64 else None
    except ValueError:
        moment = None
    if moment is None:
        errs.add(path, N_("must be an ISO 8601 timestamp such as 2024-05-01T10:30:00+08:00"))
        return None
    if moment.tzinfo is None or moment.utcoffset() is None:
        errs.add(path, N_("must include a UTC offset such as +08:00 or Z"))
        return None
    try:
        in_range = EARLIEST <= moment.astimezone(UTC) < LATEST
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is before the first representable instant
        in_range = False
    if not in_range:
        errs.add(path, N_("must be between the years 1970 and 2999"))
        return None
    return moment


def _currency(errs: _Errors, obj: Mapping[str, object]) -> str | None:
    value = obj.get("currency")
    if value is None:
        errs.add("currency", N_("is required"))
        return None
    if not isinstance(value, str):
        errs.add("currency", N_("must be a string"))
        return None
    code = value.strip()
    if not is_known_currency(code):
        if is_known_currency(code.upper()):
            errs.add("currency", N_("must be an uppercase ISO 4217 code such as CNY"))
        else:
            errs.add("currency", N_("is not a known ISO 4217 currency code"))
        return None
    return code


def _customer(errs: _Errors, value: object) -> CustomerData | None:
    if value is None:
        errs.add("customer", N_("is required"))
        return None
    obj = _object(errs, value, "customer")
    if obj is None:
        return None
    before = len(errs)
    name = _text(errs, obj, "name", "customer")
    email = _text(errs, obj, "email", "customer", required=False, normalise=str.lower)
    if email is not None:
        if not _EMAIL_RE.fullmatch(email):
            errs.add("customer.email", N_("is not a valid email address"))
    phone = _text(errs, obj, "phone", "customer", required=False, max_length=32)
    postcode = _text(errs, obj, "postcode", "customer", required=False, max_length=32, normalise=normalise_postcode)
    if not (_given(obj.get("email")) or _given(obj.get("postcode"))):
        errs.add("customer", N_("needs an email address or a postcode"))
    if len(errs) != before or name is None:
        return None
    return CustomerData(name=name, email=email, phone=phone, postcode=postcode)


def _payment(errs: _Errors, value: object) -> PaymentData | None:
    if value is None:
        errs.add("payment", N_("is required"))
        return None
    obj = _object(errs, value, "payment")
    if obj is None:
        return None
    method = _text(errs, obj, "method", "payment", max_length=32, normalise=str.lower)
    reference = _text(errs, obj, "reference", "payment", required=False, max_length=128)
    if method is None:
        return None
    return PaymentData(method=method, reference=reference)


def _line(errs: _Errors, value: object, prefix: str, currency: str | None) -> LineData | None:
    obj = _object(errs, value, prefix)
    if obj is None:
        return None
    before = len(errs)
    line_id = _text(errs, obj, "line_id", prefix, max_length=64)
    sku = _text(errs, obj, "sku", prefix, max_length=64)
    product_name = _text(errs, obj, "product_name", prefix)
    variant = _text(errs, obj, "variant", prefix, required=False, max_length=128) or ""
    category = _text(errs, obj, "category", prefix, max_length=64, normalise=str.lower)
    quantity = _int(errs, obj, "quantity", prefix, minimum=1, maximum=MAX_QUANTITY)
    unit_price = _money(errs, obj, "unit_price", prefix, currency, required=True)
    discount = _money(errs, obj, "discount", prefix, currency, required=False)
    tax = _money(errs, obj, "tax", prefix, currency, required=False)
    final_sale = _bool(errs, obj, "final_sale", prefix)
    if quantity is not None and unit_price is not None and discount is not None:
        if discount > unit_price * quantity:
            errs.add(_path(prefix, "discount"), N_("discount above the price"))
        elif unit_price * quantity + (tax or 0) >= MAX_MONEY:
            errs.add(_path(prefix, "quantity"), N_("line total is too large"))
    if len(errs) != before:
        return None
    assert line_id and sku and product_name and category and quantity and unit_price is not None
    assert discount is not None and tax is not None
    return LineData(
        line_id=line_id,
        sku=sku,
        product_name=product_name,
        variant=variant,
        category=category,
        quantity=quantity,
        unit_price=unit_price,
        discount=discount,
        tax=tax,
        final_sale=final_sale,
    )


def _lines(errs: _Errors, value: object, currency: str | None) -> tuple[LineData, ...]:
    if value is None:
        errs.add("lines", N_("is required"))
        return ()
    if not isinstance(value, list):
        errs.add("lines", N_("must be a list"))
        return ()
    if not value:
        errs.add("lines", N_("must contain at least one line"))
        return ()
    if len(value) > MAX_LINES:
        errs.add("lines", N_("has too many lines"))
        return ()
    lines: list[LineData] = []
    seen: set[str] = set()
    for index, item in enumerate(value):
        prefix = f"lines[{index}]"
        line = _line(errs, item, prefix, currency)
        raw_id = item.get("line_id") if isinstance(item, Mapping) else None
        if isinstance(raw_id, str) and raw_id.strip():
            if raw_id.strip() in seen:
                errs.add(f"{prefix}.line_id", N_("duplicate line id"))
            seen.add(raw_id.strip())
        if line is not None:
            lines.append(line)
    return tuple(lines)


def parse_order(payload: object) -> OrderData:
    """Validate an order payload (any JSON value); raises ``PayloadError`` with every problem."""
    errs = _Errors()
    obj = _object(errs, payload, ROOT)
    if obj is None:
        raise PayloadError(errs.items)

    number = _text(errs, obj, "order_number", ROOT, max_length=64, normalise=normalise_order_number)
    placed_at = _timestamp(errs, obj, "placed_at", ROOT, required=True)
    delivered_at = _timestamp(errs, obj, "delivered_at", ROOT, required=False)
    updated_at = _timestamp(errs, obj, "updated_at", ROOT, required=False)
    if placed_at is not None and delivered_at is not None and delivered_at < placed_at:
        errs.add("delivered_at", N_("must not be before placed_at"))
    currency = _currency(errs, obj)
    channel = _text(errs, obj, "channel", ROOT, required=False, max_length=32, normalise=str.lower) or "web"
    customer = _customer(errs, obj.get("customer"))
    payment = _payment(errs, obj.get("payment"))
    shipping_paid = _money(errs, obj, "shipping_paid", ROOT, currency, required=False)
    gift = _bool(errs, obj, "gift", ROOT)
    lines = _lines(errs, obj.get("lines"), currency)
    if not errs.items and sum((line.unit_price * line.quantity + line.tax for line in lines), Decimal(0)) >= MAX_MONEY:
        errs.add("lines", N_("order total is too large"))

    if errs.items:
        raise PayloadError(errs.items)
    assert number and placed_at and currency and customer and payment and shipping_paid is not None
    return OrderData(
        order_number=normalise_order_number(number),
        placed_at=placed_at,
        delivered_at=delivered_at,
        currency=currency,
        channel=channel,
        customer=customer,
        payment=payment,
        shipping_paid=shipping_paid,
        gift=gift,
        lines=lines,
        updated_at=updated_at,
    )


_IMAGE_URL_RE = re.compile(r"https?://[^\s<>\"'\\]+", re.IGNORECASE)
MAX_IMAGE_URL = 1024


def _image_url(errs: _Errors, obj: Mapping[str, object], prefix: str) -> str | None:
    """An optional http(s) address of a picture, at most 1024 characters."""
    path = _path(prefix, "image_url")
    value = obj.get("image_url")
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_IMAGE_URL or not _IMAGE_URL_RE.fullmatch(value.strip()):
        errs.add(path, N_("must be an http or https address of at most 1024 characters"))
        return None
    return value.strip()


def _variant(errs: _Errors, value: object, prefix: str) -> VariantData | None:
    obj = _object(errs, value, prefix)
    if obj is None:
        return None
    before = len(errs)
    sku = _text(errs, obj, "sku", prefix, max_length=64)
    variant = _text(errs, obj, "variant", prefix, required=False, max_length=128) or ""
    stock = _int(errs, obj, "stock", prefix, minimum=0, maximum=MAX_STOCK)
    price = _money(errs, obj, "price", prefix, None, required=False) if obj.get("price") is not None else None
    image_url = _image_url(errs, obj, prefix)
    if len(errs) != before or sku is None or stock is None:
        return None
    return VariantData(sku=sku, variant=variant, stock=stock, price=price, image_url=image_url)


def _product(errs: _Errors, value: object, prefix: str, skus: set[str]) -> ProductData | None:
    obj = _object(errs, value, prefix)
    if obj is None:
        return None
    before = len(errs)
    code = _text(errs, obj, "product_code", prefix, max_length=64)
    name = _text(errs, obj, "name", prefix)
    category = _text(errs, obj, "category", prefix, max_length=64, normalise=str.lower)
    updated_at = _timestamp(errs, obj, "updated_at", prefix, required=False)
    image_url = _image_url(errs, obj, prefix)
    raw_variants = obj.get("variants")
    variants: list[VariantData] = []
    vpath = _path(prefix, "variants")
    if raw_variants is None:
        errs.add(vpath, N_("is required"))
    elif not isinstance(raw_variants, list):
        errs.add(vpath, N_("must be a list"))
    elif not raw_variants:
        errs.add(vpath, N_("must contain at least one variant"))
    else:
        for index, item in enumerate(raw_variants):
            vprefix = f"{vpath}[{index}]"
            variant = _variant(errs, item, vprefix)
            if variant is not None:
                if variant.sku in skus:
                    errs.add(f"{vprefix}.sku", N_("duplicate sku"))
                skus.add(variant.sku)
                variants.append(variant)
    if len(errs) != before or code is None or name is None or category is None:
        return None
    return ProductData(
        product_code=code,
        name=name,
        category=category,
        variants=tuple(variants),
        updated_at=updated_at,
        image_url=image_url,
    )


def parse_products(payload: object) -> list[ProductData]:
    """Validate a ``{"products": [...]}`` payload; skus and product codes must be unique."""
    errs = _Errors()
    obj = _object(errs, payload, ROOT)
    if obj is None:
        raise PayloadError(errs.items)
    raw = obj.get("products")
    products: list[ProductData] = []
    if raw is None:
        errs.add("products", N_("is required"))
    elif not isinstance(raw, list):
        errs.add("products", N_("must be a list"))
    elif not raw:
        errs.add("products", N_("must contain at least one product"))
    elif len(raw) > MAX_PRODUCTS:
        errs.add("products", N_("has too many products"))
    else:
        skus: set[str] = set()
        codes: set[str] = set()
        for index, item in enumerate(raw):
            prefix = f"products[{index}]"
            product = _product(errs, item, prefix, skus)
            code = item.get("product_code") if isinstance(item, Mapping) else None
            if isinstance(code, str) and code.strip():
                if code.strip() in codes:
                    errs.add(f"{prefix}.product_code", N_("duplicate product code"))
                codes.add(code.strip())
            if product is not None:
                products.append(product)
    if errs.items:
        raise PayloadError(errs.items)
    return products


@dataclass(frozen=True)
class Redemption:
    """The shop spends store credit: ``amount`` of ``currency`` from the credit behind ``code``.
    ``reference`` (the shop's order or payment id) makes a repeated call debit once."""

    code: str
    amount: Decimal
    currency: str
    reference: str


def parse_redemption(payload: object) -> Redemption:
    """Validate a store-credit redemption payload; raises ``PayloadError`` with every problem.

    The code is only required to be a short string here: whether it is well formed and known is the
    redeeming service's call, which answers both with "not found".
    """
    errs = _Errors()
    obj = _object(errs, payload, ROOT)
    if obj is None:
        raise PayloadError(errs.items)
    code = _text(errs, obj, "code", ROOT, max_length=64)
    currency = _currency(errs, obj)
    amount = _money(errs, obj, "amount", ROOT, currency, required=True)
    if amount is not None and amount == 0:
        errs.add("amount", N_("must be more than zero"))
    reference = _text(errs, obj, "reference", ROOT, max_length=64)
    if errs.items:
        raise PayloadError(errs.items)
    assert code and currency and amount is not None and reference
    return Redemption(code=code, amount=amount, currency=currency, reference=reference)
