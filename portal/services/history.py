"""What staff need to know about a shopper when deciding: their earlier returns and how often they return."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.db.models import Order, ReturnRequest
from portal.db.sealed import candidates
from portal.domain.lifecycle import Status
from portal.domain.text import N_

RECENT = timedelta(days=90)
FLAG_LABELS = {"frequent": N_("frequent returner"), "high_rate": N_("returns half their orders or more")}


@dataclass(frozen=True)
class CustomerHistory:
    earlier: list[ReturnRequest]  # newest first, this request left out
    orders: int
    returned_orders: int  # orders with at least one return that was not cancelled
    recent: int  # returns in the last 90 days, this one left out

    @property
    def rate(self) -> float | None:
        """Share of the shopper's orders that came back (None without orders)."""
        return self.returned_orders / self.orders if self.orders else None

    @property
    def flags(self) -> list[str]:
        """Codes the page words: ``frequent`` (3+ returns in 90 days), ``high_rate`` (half the orders or more)."""
        out = []
        if self.recent >= 3:
            out.append("frequent")
        if self.rate is not None and self.orders >= 2 and self.rate >= 0.5:
            out.append("high_rate")
        return out


def customer_history(session: Session, request: ReturnRequest, now: datetime, limit: int = 10) -> CustomerHistory:
    email = request.order.customer_email
    if not email:
        return CustomerHistory([], 0, 0, 0)
    mine = select(Order.id).where(Order.customer_email_bidx.in_(candidates("email", email)))
    earlier = list(
        session.scalars(
            select(ReturnRequest)
            .where(ReturnRequest.order_id.in_(mine), ReturnRequest.id != request.id)
            .order_by(ReturnRequest.created_at.desc())
            .limit(limit)
        )
    )
    orders = session.scalar(select(func.count()).select_from(mine.subquery())) or 0
    live = ReturnRequest.status != Status.CANCELLED.value
    returned = (
        session.scalar(
            select(func.count(func.distinct(ReturnRequest.order_id))).where(ReturnRequest.order_id.in_(mine), live)
        )
        or 0
    )
    recent = (
        session.scalar(
            select(func.count(ReturnRequest.id)).where(
                ReturnRequest.order_id.in_(mine),
                live,
                ReturnRequest.id != request.id,
                ReturnRequest.created_at >= now - RECENT,
            )
        )
        or 0
    )
    return CustomerHistory(earlier, int(orders), int(returned), int(recent))
