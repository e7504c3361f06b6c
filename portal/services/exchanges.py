"""Exchanges: hold the replacement on approval, give it back on rejection or cancellation, release
it to ship after inspection (or at approval with the policy's instant exchange), never twice.

What is held and what shipped are columns on the line (``reserved_quantity``,
``exchange_shipped_at``); the timeline notes are for people only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import CursorResult, case, select, update
from sqlalchemy.orm import Session

from portal.db.models import OrderLine, ReturnLine, ReturnRequest, Variant
from portal.domain.actors import Actor
from portal.domain.lifecycle import Status
from portal.domain.money import line_paid_per_unit, round_money
from portal.services.outbox import enqueue_webhook
from portal.services.timeline import move, record_event

# Grades a returned item may have for its replacement to ship.
SHIPPABLE_GRADES = frozenset({"A", "B"})


def _changed(session: Session, statement: Any) -> bool:
    """Run one conditional UPDATE; True when it changed a row."""
    result: CursorResult[Any] = session.execute(  # type: ignore[assignment]  # an UPDATE gives a CursorResult
        statement.execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def _less(column: Any, quantity: int) -> Any:
    """``column - quantity``, never below zero, computed by the database."""
    return case((column >= quantity, column - quantity), else_=0)


def reserve_exchange_stock(session: Session, request: ReturnRequest, actor: Actor) -> None:
    """On approval, hold the replacement variants (no commit). Out of stock is recorded, not hidden."""
    for line in request.exchange_lines:
        if line.reserved_quantity or line.exchange_shipped_at is not None:
            continue
        # One conditional UPDATE holds the units or does nothing: two approvals at once can never
        # hold more than is on the shelf, on SQLite as on PostgreSQL.
        held = _changed(
            session,
            update(Variant)
            .where(Variant.sku == line.exchange_sku, Variant.stock - Variant.reserved >= line.quantity)
            .values(reserved=Variant.reserved + line.quantity),
        )
        if not held:
            record_event(
                request, actor, "exchange", note=f"{line.exchange_sku}: not enough stock to reserve {line.quantity}"
            )
            continue
        line.reserved_quantity = line.quantity
        record_event(request, actor, "exchange", note=f"reserved {line.quantity} x {line.exchange_sku}")


def release_exchange_stock(
    session: Session, request: ReturnRequest, actor: Actor, lines: list[ReturnLine] | None = None
) -> None:
    """On rejection or cancellation (or for the ``lines`` refused), give the held variants back (no commit)."""
    for line in request.lines if lines is None else lines:
        if not line.reserved_quantity:
            continue
        _changed(
            session,
            update(Variant)
            .where(Variant.sku == line.exchange_sku)
            .values(reserved=_less(Variant.reserved, line.reserved_quantity)),
        )
        record_event(request, actor, "exchange", note=f"released {line.reserved_quantity} x {line.exchange_sku}")
        line.reserved_quantity = 0


def exchange_difference(session: Session, line: ReturnLine, units: int) -> Decimal | None:
    """What was paid for ``units`` of the line minus the replacement's price: positive is refunded,
    negative is owed by the shopper. None when the replacement has no price of its own."""
    if not line.is_exchange or not line.exchange_sku:
        return None
    return difference_for(session, line.order_line, line.request.order.currency, line.exchange_sku, units)


def difference_for(session: Session, order_line: OrderLine, currency: str, sku: str, units: int) -> Decimal | None:
    """``exchange_difference`` before a return line exists (the shopper's estimate)."""
    if units <= 0:
        return None
    price = session.scalar(select(Variant.price).where(Variant.sku == sku))
    if price is None:
        return None
    ol = order_line
    paid = line_paid_per_unit(ol.unit_price, ol.quantity, ol.discount, ol.tax, currency)
    return round_money((paid - price) * units, currency)


def exchanges_ready(
    session: Session, request: ReturnRequest, actor: Actor, instant: bool = False
) -> list[dict[str, Any]]:
    """Release exchange lines to ship (no commit): after inspection those received as grade A or B,
    or, with the policy's instant exchange, all of them at approval. Never twice."""
    if request.exchange_shipped:
        if request.all_exchanges and request.status == Status.INSPECTED.value:
            move(request, Status.EXCHANGED, actor, "exchange already shipped at approval")
        return []
    now = datetime.now(UTC)
    ready = []
    for line in request.exchange_lines:
        if not (instant or line.grade in SHIPPABLE_GRADES):
            continue
        ready.append({"sku": line.exchange_sku, "quantity": line.quantity, "returned_sku": line.order_line.sku})
        _changed(  # the held unit leaves the shelf
            session,
            update(Variant)
            .where(Variant.sku == line.exchange_sku)
            .values(
                stock=_less(Variant.stock, line.quantity), reserved=_less(Variant.reserved, line.reserved_quantity)
            ),
        )
        line.reserved_quantity = 0
        line.exchange_shipped_at = now
    if ready:
        enqueue_webhook(
            session, "exchange.ready", {"rma": request.rma, "order_number": request.order.order_number, "ship": ready}
        )
        record_event(
            request,
            actor,
            "exchange",
            note="ready to ship: " + ", ".join(f"{r['quantity']} x {r['sku']}" for r in ready),
        )
        settled = not any(exchange_difference(session, line, line.quantity) for line in request.exchange_lines)
        if not instant and settled and request.all_exchanges:
            move(request, Status.EXCHANGED, actor, "exchange released to ship")
        # With a price difference the request stays inspected: finance refunds it or records it as owed.
    return ready
