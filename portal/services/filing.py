"""Filing a return: what the order allows, opening the request under the policy, and what the
shopper does afterwards (cancel while nothing has shipped, answer a question)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Row, bindparam, func, select
from sqlalchemy.orm import Session, aliased, joinedload

from portal.adapters.carriers import Carrier, CarrierError
from portal.db.models import Order, Photo, ReturnLine, ReturnRequest, TicketEvent, Variant
from portal.db.sealed import candidates
from portal.domain import lifecycle
from portal.domain.actors import POLICY, SHOPPER, Actor, ActorKind
from portal.domain.codes import new_rma
from portal.domain.errors import Conflict, DomainError, InvalidInput
from portal.domain.lifecycle import Status
from portal.domain.policy import (
    Decision,
    LineChoice,
    LineDecision,
    LineFacts,
    OrderFacts,
    Policy,
    Verdict,
    decide,
    precheck_line,
)
from portal.domain.reasons import Outcome, responsibility_of
from portal.domain.states import TicketStatus
from portal.domain.text import N_
from portal.services.exchanges import release_exchange_stock
from portal.services.outbox import enqueue_email, enqueue_webhook
from portal.services.shipping import issue_label
from portal.services.sla import notify_staff, resume_ticket_clocks
from portal.services.tickets import assign_ticket, close_request_ticket, open_ticket, set_ticket_status, ticket_for
from portal.services.timeline import discard_photos, lock_for_change, lock_order, move, record_event, shopper_items
from portal.services.work import defer
from portal.storage import PhotoStore, new_key
from portal.vision.intake import CleanPhoto

log = logging.getLogger("portal.returns")

RELEASED = [s.value for s in lifecycle.RELEASED]


# Rules staff may override for a shopper (goodwill); the others protect stock and arithmetic.
OVERRIDABLE_RULES = frozenset({"window", "delivered", "excluded_category", "final_sale", "gift", "photos"})


def blocking_rules(decision: Decision) -> list[str]:
    """Names of the failed rules that make the decision not eligible."""
    failed = [r for r in decision.trace if not r.passed and r.effect == Verdict.NOT_ELIGIBLE]
    failed += [r for line in decision.lines for r in line.trace if not r.passed and r.effect == Verdict.NOT_ELIGIBLE]
    return sorted({r.rule for r in failed})


class PickupNotCancelled(Conflict):
    """The carrier could not call off the pickup; the request stays as it was."""

    default = N_("The courier could not cancel the pickup just now. Nothing was changed; please try again shortly.")


class ReturnNotAllowed(DomainError):
    """The policy says no (or the choice is incomplete); the decision says why, rule by rule."""

    kind = "invalid"
    default = N_("This return is not possible; see the reasons below.")

    def __init__(self, decision: Decision):
        super().__init__()
        self.decision = decision


@dataclass
class LineRequest:
    line_id: str
    quantity: int
    reason: str | None
    sub_reason: str | None = None
    comment: str = ""
    outcome: str | None = None
    exchange_sku: str | None = None
    photos: list[CleanPhoto] = field(default_factory=list)

    def choice(self) -> LineChoice:
        return LineChoice(
            line_id=self.line_id,
            quantity=self.quantity,
            reason=self.reason,
            sub_reason=self.sub_reason,
            outcome=self.outcome,
            exchange_sku=self.exchange_sku,
            photo_count=len(self.photos),
        )


# --- facts the policy needs -------------------------------------------------


# The shopper's pages ask these on every view: the statements are built once (building one costs
# more than running it on SQLite) and take their values as parameters.
_ORDER_WITH_LINES = select(Order).where(Order.id == bindparam("order_id")).options(joinedload(Order.lines))
_REQUEST_LIST = (
    select(ReturnRequest.rma, ReturnRequest.status)
    .where(ReturnRequest.order_id == bindparam("order_id"))
    .order_by(ReturnRequest.id)
)


_LOOKUP = select(Order.id, Order.customer_email_bidx, Order.customer_postcode_bidx).where(
    Order.order_number == bindparam("number")
)


def lookup_indexes(session: Session, number: str) -> Row[int, str | None, str | None] | None:
    """The order's id and the blind indexes a lookup compares, by order number: only those columns,
    for a hit and a miss alike (one indexed read, no object built, nothing decrypted)."""
    return session.execute(_LOOKUP, {"number": number}).one_or_none()


def order_with_lines(session: Session, order_id: int) -> Order | None:
    """The order with its lines, read in one statement (the pages that show or check its lines)."""
    return session.scalars(_ORDER_WITH_LINES, {"order_id": order_id}).unique().one_or_none()


def request_list(session: Session, order_id: int) -> Sequence[Row[str, str]]:
    """The order's return requests, oldest first, as (``rma``, ``status``) rows: what its page lists."""
    return session.execute(_REQUEST_LIST, {"order_id": order_id}).all()


_HELD_UNITS = (
    select(ReturnLine.order_line_id, func.sum(ReturnLine.quantity))
    .join(ReturnRequest, ReturnRequest.id == ReturnLine.request_id)
    .where(ReturnRequest.order_id == bindparam("order_id"), ReturnRequest.status.not_in(RELEASED), ReturnLine.accepted)
    .group_by(ReturnLine.order_line_id)
)


def requested_units(
    session: Session, order: Order, before: datetime | None = None, exclude_request_id: int | None = None
) -> dict[int, int]:
    """Units of each order line already held by requests that were not cancelled or rejected."""
    stmt = _HELD_UNITS
    if before is not None:
        stmt = stmt.where(ReturnRequest.created_at < before)
    if exclude_request_id is not None:
        stmt = stmt.where(ReturnRequest.id != exclude_request_id)
    return {line_id: int(total) for line_id, total in session.execute(stmt, {"order_id": order.id})}


_base, _other = aliased(Variant), aliased(Variant)
_EXCHANGE_OPTIONS = (
    select(_base.sku, _other.sku, _other.label, _other.stock - _other.reserved)
    .join(_other, (_other.product_id == _base.product_id) & (_other.sku != _base.sku))
    .where(_base.sku.in_(bindparam("skus", expanding=True)), _other.stock - _other.reserved > 0)
)


@dataclass(frozen=True)
class ExchangeVariant:
    """A variant a line can be exchanged for: its SKU, what the shopper reads, the units free."""

    sku: str
    label: str
    available: int


def exchange_variants(session: Session, skus: list[str]) -> dict[str, tuple[ExchangeVariant, ...]]:
    """For each SKU, the in-stock other variants of its product with their labels (one query for all)."""
    found: dict[str, list[ExchangeVariant]] = {}
    if skus:
        for sku, option, label, available in session.execute(_EXCHANGE_OPTIONS, {"skus": list(skus)}):
            found.setdefault(sku, []).append(ExchangeVariant(option, label or option, int(available)))
    return {sku: tuple(found.get(sku, ())) for sku in skus}


def exchange_options(session: Session, skus: list[str]) -> dict[str, frozenset[str]]:
    """For each SKU, the in-stock SKUs of the other variants of its product (one query for all)."""
    return {sku: frozenset(v.sku for v in found) for sku, found in exchange_variants(session, skus).items()}


_RECENT_RETURNS = select(func.count(ReturnRequest.id)).where(
    ReturnRequest.customer_email_bidx.in_(bindparam("bidx", expanding=True)),
    ReturnRequest.created_at >= bindparam("since"),
    ReturnRequest.created_at < bindparam("now"),
    ReturnRequest.status != Status.CANCELLED.value,
)


def customer_recent_returns(
    session: Session, email: str | None, now: datetime, days: int, exclude_request_id: int | None = None
) -> int:
    if not email:
        return 0
    stmt = _RECENT_RETURNS
    if exclude_request_id is not None:
        stmt = stmt.where(ReturnRequest.id != exclude_request_id)
    found = session.scalar(
        stmt, {"bidx": list(candidates("email", email)), "since": now - timedelta(days=days), "now": now}
    )
    return int(found or 0)


def order_facts(
    session: Session,
    order: Order,
    policy: Policy,
    now: datetime,
    exclude_request_id: int | None = None,
    before: datetime | None = None,
    options: Mapping[str, frozenset[str]] | None = None,
) -> OrderFacts:
    """What the policy needs to know about the order; ``options`` (SKU -> exchange SKUs) when the
    caller has already read them with ``exchange_variants``."""
    held = requested_units(session, order, before=before, exclude_request_id=exclude_request_id)
    if options is None:
        options = exchange_options(session, [line.sku for line in order.lines])
    lines = tuple(
        LineFacts(
            line_id=line.line_id,
            sku=line.sku,
            product_name=line.product_name,
            category=line.category,
            quantity=line.quantity,
            unit_price=line.unit_price,
            discount=line.discount,
            tax=line.tax,
            final_sale=line.final_sale,
            already_requested=held.get(line.id, 0),
            exchange_options=options[line.sku],
        )
        for line in order.lines
    )
    return OrderFacts(
        order_number=order.order_number,
        currency=order.currency,
        delivered_at=order.delivered_at,
        gift=order.gift,
        lines=lines,
        customer_recent_returns=customer_recent_returns(
            session, order.customer_email, now, policy.frequent_returner_days, exclude_request_id
        ),
    )


def precheck_order(
    session: Session, order: Order, policy: Policy, now: datetime, facts: OrderFacts | None = None
) -> dict[str, LineDecision]:
    """What each line of the order allows before the shopper chooses anything."""
    facts = facts or order_facts(session, order, policy, now)
    return {line.line_id: precheck_line(policy, facts, line.line_id, now) for line in facts.lines}


def check_return(session: Session, order: Order, lines: list[LineRequest], policy: Policy, now: datetime) -> Decision:
    """The policy decision for a choice, without saving anything."""
    facts = order_facts(session, order, policy, now)
    return decide(policy, facts, [line.choice() for line in lines if line.quantity > 0], now)


# --- use cases ------------------------------------------------------------


def open_return(
    session: Session,
    order: Order,
    lines: list[LineRequest],
    policy: Policy,
    now: datetime,
    locale: str,
    store: PhotoStore,
    actor: Actor = SHOPPER,
    override_reason: str | None = None,
    carrier: Carrier | None = None,
    policy_version_id: int | None = None,
) -> ReturnRequest:
    """Open a return request if the policy allows it; ``policy_version_id`` names the stored policy
    version ``policy`` was read from, kept with the request.

    The decision is made again here under a lock on the order, so two tabs
    cannot both claim the last unit; it is stored with the request and never
    recomputed. Photos are stored first and removed again if the request cannot
    be saved, so nothing is left half-written. Raises ReturnNotAllowed.
    """
    lock_order(session, order.id)
    chosen = [line for line in lines if line.quantity > 0]
    decision = check_return(session, order, chosen, policy, now)
    overridden: list[str] = []
    if decision.verdict == Verdict.NOT_ELIGIBLE:
        blocking = blocking_rules(decision)
        if not (override_reason and override_reason.strip()) or not blocking or set(blocking) - OVERRIDABLE_RULES:
            session.rollback()
            raise ReturnNotAllowed(decision)
        overridden = blocking

    by_line_id = {line.line_id: line for line in order.lines}
    stored: list[str] = []
    try:
        request = ReturnRequest(
            rma=new_rma(),
            order=order,
            status=Status.SUBMITTED.value,
            locale=locale,
            verdict=Verdict.NEEDS_REVIEW.value if overridden else decision.verdict.value,
            decision={
                **decision.to_dict(),
                **(
                    {
                        "override": {
                            "by": str(actor),
                            "reason": (override_reason or "").strip()[:2000],
                            "rules": overridden,
                        }
                    }
                    if overridden
                    else {}
                ),
            },
            policy_version=decision.policy_version,
            policy_version_id=policy_version_id,
            value=decision.value,
            returnless=decision.returnless,
            customer_email=order.customer_email,
            created_at=now,
        )
        session.add(request)
        record_event(request, actor, "submitted", None, Status.SUBMITTED.value, at=now)
        seen: set[str] = set()
        line_decisions = {d.line_id: d for d in decision.lines}
        for item in chosen:
            line_decision = line_decisions[item.line_id]
            rline = ReturnLine(
                order_line=by_line_id[item.line_id],
                quantity=item.quantity,
                reason=item.reason or "",
                sub_reason=item.sub_reason,
                responsibility=responsibility_of(item.reason) if item.reason else "customer",
                comment=item.comment.strip()[:2000],
                outcome=item.outcome or "refund",
                exchange_sku=item.exchange_sku if item.outcome == Outcome.EXCHANGE else None,
                verdict=line_decision.verdict.value,
                value=line_decision.value,
            )
            request.lines.append(rline)
            for photo in item.photos:
                if photo.sha256 in seen:
                    continue
                seen.add(photo.sha256)
                key = new_key(".jpg")
                store.put(key, photo.data, photo.content_type)
                stored.append(key)
                thumb_key = None
                if photo.thumbnail:
                    thumb_key = key[: -len(".jpg")] + "-thumb.jpg"
                    store.put(thumb_key, photo.thumbnail, photo.content_type)
                    stored.append(thumb_key)
                request.photos.append(
                    Photo(
                        line=rline,
                        storage_key=key,
                        content_type=photo.content_type,
                        width=photo.width,
                        height=photo.height,
                        size=len(photo.data),
                        sha256=photo.sha256,
                        thumb_key=thumb_key,
                    )
                )
        if overridden:
            record_event(
                request,
                actor,
                "override",
                note=f"policy overridden ({', '.join(overridden)}): {(override_reason or '').strip()[:2000]}",
                at=now,
            )
            move(request, Status.PENDING_REVIEW, actor, "opened by staff with a policy override", at=now)
        elif decision.auto_approve:
            move(request, Status.APPROVED, POLICY, f"auto-approved under policy {decision.policy_version}", at=now)
            if carrier is not None:
                issue_label(session, request, carrier, POLICY, at=now, instant_exchange=policy.instant_exchange)
        else:
            move(
                request,
                Status.PENDING_REVIEW,
                POLICY,
                f"{decision.verdict.value} under policy {decision.policy_version}",
                at=now,
            )
        if request.status in (Status.APPROVED.value, Status.LABEL_ISSUED.value):
            enqueue_webhook(
                session,
                "return.approved",
                {
                    "rma": request.rma,
                    "order_number": order.order_number,
                    "status": request.status,
                    "pickup_code": request.pickup_code,
                    "reason": None,
                },
            )
        if order.customer_email:
            if request.status in (Status.APPROVED.value, Status.LABEL_ISSUED.value):
                enqueue_email(
                    session,
                    order.customer_email,
                    "return_approved",
                    locale,
                    {
                        "rma": request.rma,
                        "pickup_code": request.pickup_code,
                        "returnless": request.returnless,
                        "order_number": order.order_number,
                        "items": shopper_items(request),
                    },
                )
            else:
                enqueue_email(
                    session,
                    order.customer_email,
                    "return_submitted",
                    locale,
                    {"rma": request.rma, "items": shopper_items(request)},
                )
        session.flush()
        open_ticket(session, request)
        if request.photos:
            defer(session, "score_photos", request_id=request.id)
        session.commit()
    except Exception:
        session.rollback()
        discard_photos(store, stored)
        raise
    log.info("return %s opened for order %s: %s", request.rma, order.order_number, request.status)
    return request


def cancel_return(
    session: Session,
    request: ReturnRequest,
    actor: Actor,
    expected_status: str | None = None,
    carrier: Carrier | None = None,
) -> ReturnRequest:
    """Cancel while nothing has shipped. A stale form (status changed meanwhile) raises Conflict.

    A booked pickup is cancelled with the carrier (its code and label stop working), held exchange
    stock is given back and the request's ticket is closed. When the carrier cannot cancel the
    pickup, nothing changes (PickupNotCancelled) and the shopper can try again.
    """
    lock_for_change(session, request, expected_status)
    if not request.cancellable:
        session.rollback()
        raise lifecycle.IllegalTransition(request.status, Status.CANCELLED.value)
    move(
        request, Status.CANCELLED, actor, "cancelled by the shopper" if actor.kind is ActorKind.SHOPPER else "cancelled"
    )
    release_exchange_stock(session, request, actor)
    close_request_ticket(session, request, actor, "cancelled")
    if request.pickup_code and carrier is not None:
        try:
            carrier.cancel(request.pickup_code)
        except CarrierError as exc:
            session.rollback()
            log.warning("return %s: pickup %s not cancelled: %s", request.rma, request.pickup_code, exc)
            raise PickupNotCancelled() from None
        record_event(request, actor, "pickup", note=f"pickup {request.pickup_code} cancelled with {carrier.name}")
    enqueue_webhook(
        session,
        "return.cancelled",
        {"rma": request.rma, "order_number": request.order.order_number, "pickup_code": request.pickup_code},
    )
    if request.order.customer_email:
        enqueue_email(session, request.order.customer_email, "return_cancelled", request.locale, {"rma": request.rma})
    session.commit()
    return request


def answer_question(session: Session, request: ReturnRequest, answer: str) -> ReturnRequest:
    """The shopper's answer: back to review, clocks resume with the time they had left."""
    answer = (answer or "").strip()
    if not answer:
        raise InvalidInput(N_("Please write your answer."))
    lock_for_change(session, request, Status.AWAITING_SHOPPER.value)
    # Back to where the question was asked from: the review, or the warehouse discrepancy.
    move(request, request.asked_from or Status.PENDING_REVIEW, SHOPPER, answer[:2000])
    ticket = ticket_for(session, request)
    if ticket is not None:
        set_ticket_status(ticket, TicketStatus.OPEN)
        ticket.events.append(TicketEvent(actor=SHOPPER, kind="answered", note=answer[:2000]))
        resume_ticket_clocks(session, ticket, datetime.now(UTC), SHOPPER)
        if ticket.assignee_id is None:
            assign_ticket(session, ticket)
        else:
            # The person working the ticket hears at once; the queue row says so too.
            notify_staff(session, ticket.assignee, ticket, "replied", f"{request.rma}: the shopper replied")
    session.commit()
    return request
