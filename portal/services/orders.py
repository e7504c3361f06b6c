"""Orders and products pushed in by the shop. The portal stores them; it never edits them."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.db.models import Order, OrderLine, Product, ReturnLine, Variant
from portal.domain.orders import OrderData, ProductData, normalise_order_number


def _apply_order(order: Order, data: OrderData) -> None:
    order.placed_at = data.placed_at
    order.delivered_at = data.delivered_at
    order.currency = data.currency
    order.channel = data.channel
    order.customer_name = data.customer.name
    order.customer_email = data.customer.email
    order.customer_phone = data.customer.phone
    order.customer_postcode = data.customer.postcode
    order.payment_method = data.payment.method
    order.payment_reference = data.payment.reference
    order.shipping_paid = data.shipping_paid
    order.gift = data.gift


def stage_order(session: Session, data: OrderData) -> tuple[Order, bool]:
    """Upsert one order by its number without committing (the caller commits)."""
    number = normalise_order_number(data.order_number)
    order = session.scalars(select(Order).where(Order.order_number == number)).one_or_none()
    created = order is None
    if order is None:
        order = Order(order_number=number)
        session.add(order)
    _apply_order(order, data)
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
    order, created = stage_order(session, data)
    session.commit()
    return order, created


@dataclass(frozen=True)
class ProductResult:
    created: int
    updated: int


def upsert_products(session: Session, products: list[ProductData]) -> ProductResult:
    """Create or update products and their variants (with stock) by code and SKU."""
    created = updated = 0
    for data in products:
        product = session.scalars(select(Product).where(Product.product_code == data.product_code)).one_or_none()
        if product is None:
            product = Product(product_code=data.product_code)
            session.add(product)
            created += 1
        else:
            updated += 1
        product.name = data.name
        product.category = data.category
        for v in data.variants:
            variant = session.scalars(select(Variant).where(Variant.sku == v.sku)).one_or_none()
            if variant is None:
                variant = Variant(sku=v.sku, reserved=0)
                session.add(variant)
            variant.product = product
            variant.label = v.variant
            variant.stock = v.stock
            variant.price = v.price
    session.commit()
    return ProductResult(created, updated)
