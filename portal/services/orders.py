"""Orders and products pushed in by the shop. The portal stores them; it never edits them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.db.models import Order, OrderLine, Product, ReturnLine, Variant
from portal.db.sealed import index_of
from portal.db.upsert import insert_if_absent
from portal.domain.errors import Conflict
from portal.domain.orders import OrderData, ProductData, normalise_order_number
from portal.domain.text import N_
from portal.services.work import defer


class StaleUpdate(Conflict):
    """The shop sent an older version of an order or product than the one stored."""

    default = N_("A newer version of this was already received.")


def _order_values(data: OrderData) -> dict[str, object]:
    return {
        "placed_at": data.placed_at,
        "delivered_at": data.delivered_at,
        "currency": data.currency,
        "channel": data.channel,
        "customer_name": data.customer.name,
        "customer_email": data.customer.email,
        "customer_phone": data.customer.phone,
        "customer_postcode": data.customer.postcode,
        # The first insert is a Core statement, which the model's own upkeep of these does not see.
        "customer_name_bidx": index_of("name", data.customer.name),
        "customer_email_bidx": index_of("email", data.customer.email),
        "customer_phone_bidx": index_of("phone", data.customer.phone),
        "customer_postcode_bidx": index_of("postcode", data.customer.postcode),
        "payment_method": data.payment.method,
        "payment_reference": data.payment.reference,
        "shipping_paid": data.shipping_paid,
        "gift": data.gift,
        "shop_updated_at": data.updated_at,
    }


def _check_not_older(stored: datetime | None, sent: datetime | None, what: str) -> None:
    if stored is not None and sent is not None and sent < stored:
        raise StaleUpdate(
            N_("%(what)s was updated by the shop at %(stored)s; this push is from %(sent)s."),
            what=what,
            stored=stored.isoformat(),
            sent=sent.isoformat(),
        )


def stage_order(session: Session, data: OrderData) -> tuple[Order, bool]:
    """Upsert one order by its number without committing (the caller commits).

    The order row is created with ``INSERT ... ON CONFLICT DO NOTHING`` and then read under a row
    lock, so two first pushes of the same order at once leave one order and neither fails. A push
    whose ``updated_at`` is older than the stored one raises StaleUpdate and changes nothing.
    """
    number = normalise_order_number(data.order_number)
    values = _order_values(data)
    created = insert_if_absent(session, Order, "order_number", {"order_number": number, **values})
    order = session.scalars(
        select(Order).where(Order.order_number == number).with_for_update().execution_options(populate_existing=True)
    ).one()
    if not created:
        _check_not_older(order.shop_updated_at, data.updated_at, "Order " + number)
        for name, value in values.items():
            if name != "shop_updated_at" or value is not None:
                setattr(order, name, value)
    existing = {line.line_id: line for line in order.lines}
    for item in data.lines:
        line = existing.pop(item.line_id, None)
        if line is None:
            line = OrderLine(line_id=item.line_id)
            order.lines.append(line)
        line.sku = item.sku
        line.product_name = item.product_name
        line.variant = item.variant
        line.category = item.category
        line.quantity = item.quantity
        line.unit_price = item.unit_price
        line.discount = item.discount
        line.tax = item.tax
        line.final_sale = item.final_sale
    # Lines the shop no longer sends are dropped unless a return already points at them.
    for line in existing.values():
        if line.id is None or not session.scalar(
            select(ReturnLine.id).where(ReturnLine.order_line_id == line.id).limit(1)
        ):
            order.lines.remove(line)
            session.delete(line)
    session.flush()
    return order, created


def upsert_order(session: Session, data: OrderData) -> tuple[Order, bool]:
    """Create or update an order by ``order_number``; the same payload twice leaves one order."""
    try:
        order, created = stage_order(session, data)
    except StaleUpdate:
        session.rollback()
        raise
    session.commit()
    return order, created


def _set_image(session: Session, row: Product | Variant, url: str | None) -> None:
    """A new picture address: forget the old copy and fetch the new one after the commit."""
    if row.image_url == url:
        return
    row.image_url, row.image_key, row.image_error = url, None, None
    if url:
        defer(session, "fetch_product_images")


@dataclass(frozen=True)
class ProductResult:
    created: int
    updated: int


def upsert_products(session: Session, products: list[ProductData]) -> ProductResult:
    """Create or update products and their variants (with stock) by code and SKU, in one transaction.

    Rows are created with ``INSERT ... ON CONFLICT DO NOTHING`` (concurrent first pushes of the same
    catalogue both succeed). When any product's ``updated_at`` is older than the stored one the
    whole push raises StaleUpdate and nothing is changed.
    """
    created = updated = 0
    try:
        for data in products:
            fields = {"name": data.name, "category": data.category, "shop_updated_at": data.updated_at}
            if insert_if_absent(session, Product, "product_code", {"product_code": data.product_code, **fields}):
                created += 1
            else:
                updated += 1
            product = session.scalars(
                select(Product)
                .where(Product.product_code == data.product_code)
                .with_for_update()
                .execution_options(populate_existing=True)
            ).one()
            _check_not_older(product.shop_updated_at, data.updated_at, "Product " + data.product_code)
            product.name = data.name
            product.category = data.category
            _set_image(session, product, data.image_url)
            if data.updated_at is not None:
                product.shop_updated_at = data.updated_at
            for v in data.variants:
                insert_if_absent(
                    session,
                    Variant,
                    "sku",
                    {"sku": v.sku, "product_id": product.id, "label": v.variant, "stock": v.stock, "price": v.price},
                )
                variant = session.scalars(
                    select(Variant)
                    .where(Variant.sku == v.sku)
                    .with_for_update()
                    .execution_options(populate_existing=True)
                ).one()
                variant.product = product
                variant.label = v.variant
                variant.stock = v.stock
                variant.price = v.price
                _set_image(session, variant, v.image_url)
    except StaleUpdate:
        session.rollback()
        raise
    session.commit()
    return ProductResult(created, updated)
