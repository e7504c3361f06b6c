"""Refunds: preview, approve (a second finance user above a threshold), execute exactly once.

The arithmetic is ``portal.domain.refunds``. The refund row and its idempotency
key are committed before the gateway is called; executing claims the row with a
conditional update, so two simultaneous "execute" clicks make one gateway call.
A retry after a failure reuses the key, so a refund that did go through is not
paid again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import CursorResult, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from portal.adapters.payments import GatewayError, PaymentGateway, PaymentResult
from portal.db.locks import lock_rows
from portal.db.models import LedgerEntry, Order, ReceiptLine, Refund, ReturnRequest, StaffUser, StoreCreditCode
from portal.domain import refunds as money
from portal.domain.actors import Actor
from portal.domain.codes import CodeError, new_store_credit_code, parse_for_lookup, parse_store_credit_code
from portal.domain.errors import Conflict, InvalidInput, NotFound, NotPermitted
from portal.domain.lifecycle import Status
from portal.domain.money import format_money, parse_money, plain_amount, round_money
from portal.domain.orders import Redemption
from portal.domain.reasons import Outcome, responsibility_of
from portal.domain.states import REFUND_ACTIVE, RefundStatus, check_refund
from portal.domain.text import N_
from portal.services.exchanges import difference_for, exchange_difference
from portal.services.outbox import enqueue_email, enqueue_webhook
from portal.services.timeline import move

log = logging.getLogger("portal.refunds")
NOTE_LOCALE = "en"

# A failed refund still counts: it is retried with the same key (a timeout may even have paid).
ACTIVE = tuple(s.value for s in REFUND_ACTIVE)


class StalePreview(Conflict):
    """What the approver saw is no longer what would be refunded; show the new preview."""

    default = N_("The refund changed since you opened it. Check the new amounts and approve again.")

    def __init__(self, basis_hash: str):
        super().__init__()
        self.basis_hash = basis_hash


def return_fee(config: Mapping[str, Any]) -> money.ReturnFee:
    """The return shipping fee from the configuration (``CUSTOMER_RETURN_FEE``): the one place it is read."""
    raw = config.get("CUSTOMER_RETURN_FEE")
    return money.ReturnFee(parse_money(str(raw))) if raw not in (None, "") else money.ReturnFee()


def refund_settings(config: Mapping[str, Any]) -> money.RefundSettings:
    """Refund settings from the configuration; the fee is the one the label announces, the bonus the
    one the shopper is shown when choosing store credit."""
    return return_fee(config).refund_settings(store_credit_bonus_percent=store_credit_bonus(config))


def store_credit_bonus(config: Mapping[str, Any]) -> Decimal:
    """The store-credit bonus in percent (``STORE_CREDIT_BONUS_PERCENT``; 0 when unset)."""
    raw = config.get("STORE_CREDIT_BONUS_PERCENT")
    return Decimal(str(raw)) if raw not in (None, "") else Decimal(0)


def refundable(request: ReturnRequest) -> bool:
    return money.awaits_refund(request.status, request.returnless)


def _lines(session: Session, request: ReturnRequest) -> list[money.RefundLine]:
    receipts = {
        r.return_line_id: r for r in session.scalars(select(ReceiptLine).where(ReceiptLine.request_id == request.id))
    }
    out = []
    for line in request.lines:
        if not line.accepted:
            continue
        receipt = receipts.get(line.id)
        quantity = receipt.quantity if receipt is not None else (line.quantity if request.returnless else 0)
        if quantity:
            out.append(
                money.RefundLine(
                    line.order_line.line_id,
                    quantity,
                    line.responsibility,
                    receipt.grade if receipt is not None and receipt.grade in money.GRADES else None,
                    line.outcome,
                    line.reason,
                    exchange_difference(session, line, quantity),
                )
            )
    return out


def _prior(session: Session, order_id: int) -> money.PriorRefunds:
    """What the order's refunds so far have settled."""
    prior = money.PriorRefunds()
    rows = session.scalars(
        select(Refund)
        .join(ReturnRequest, ReturnRequest.id == Refund.request_id)
        .where(ReturnRequest.order_id == order_id, Refund.status.in_(ACTIVE))
        .order_by(Refund.id)
    )
    for row in rows:
        prior = prior.after(money.RefundPreview.from_dict(row.preview))
    return prior


def preview_refund(
    session: Session, request: ReturnRequest, settings: money.RefundSettings | None = None
) -> money.RefundPreview:
    """What a refund of this request would pay now; only for a request waiting for one (else Conflict)."""
    if not refundable(request):
        raise Conflict(N_("This return is not waiting for a refund."), current=request.status)
    if session.scalar(select(Refund.id).where(Refund.request_id == request.id, Refund.status.in_(ACTIVE))) is not None:
        # Its units are counted by that refund: finish it (execute, retry or resolve) rather than preview another.
        raise Conflict(N_("A refund for this return is already under way."))
    return _compute(session, request.order, _lines(session, request), settings or money.RefundSettings())


def _compute(
    session: Session, order: Order, lines: list[money.RefundLine], settings: money.RefundSettings
) -> money.RefundPreview:
    order_lines = [
        money.OrderLineMoney(ol.line_id, ol.quantity, ol.unit_price, ol.discount, ol.tax) for ol in order.lines
    ]
    return money.compute_refund(
        order.currency, order_lines, order.shipping_paid, lines, _prior(session, order.id), settings
    )


@dataclass(frozen=True)
class EstimateLine:
    """A line the shopper is about to return, as the estimate needs it."""

    line_id: str
    quantity: int
    reason: str
    outcome: str
    exchange_sku: str | None = None


def estimate_refund(
    session: Session,
    order: Order,
    lines: list[EstimateLine],
    settings: money.RefundSettings,
    returned_as_new: bool = True,
) -> money.RefundPreview:
    """What the refund would pay if every chosen unit came back as new (grade A), or for a return
    the shopper keeps (no grade): the review page's estimate, computed by the same arithmetic, with
    the same settings, as the refund itself."""
    by_id = {ol.line_id: ol for ol in order.lines}
    refund_lines = []
    for line in lines:
        ol = by_id.get(line.line_id)
        responsibility = responsibility_of(line.reason)
        if ol is None or responsibility is None or line.quantity <= 0:
            continue
        difference = None
        if line.outcome == Outcome.EXCHANGE and line.exchange_sku:
            difference = difference_for(session, ol, order.currency, line.exchange_sku, line.quantity)
        refund_lines.append(
            money.RefundLine(
                line.line_id,
                line.quantity,
                responsibility,
                "A" if returned_as_new else None,
                line.outcome,
                line.reason,
                difference,
            )
        )
    return _compute(session, order, refund_lines, settings)


class AboveThreshold(Conflict):
    """A refund above the second-approval threshold offered where only refunds below it may be approved."""

    default = N_("Above %(limit)s a refund needs a second approver: approve it on its own.")


def needs_second_approval(preview: money.RefundPreview, threshold: Decimal) -> bool:
    """Whether a second finance user must approve this refund: what it pays and credits is above ``threshold``."""
    return preview.refund_total + preview.store_credit_total > threshold


def approve_refund(
    session: Session,
    request: ReturnRequest,
    staff: StaffUser,
    seen_hash: str,
    provider: str,
    threshold: Decimal,
    settings: money.RefundSettings | None = None,
    *,
    below_threshold_only: bool = False,
) -> Refund:
    """Record an approved refund for exactly the preview the approver saw (else StalePreview).

    The request is locked before anything is read, so two approvals at once record one refund.
    With ``below_threshold_only`` a refund that would need a second approver is not recorded
    (AboveThreshold)."""
    lock_rows(session, ReturnRequest, ReturnRequest.id == request.id)
    session.refresh(request)
    if not refundable(request):
        session.rollback()
        raise Conflict(current=request.status)
    if session.scalar(select(Refund.id).where(Refund.request_id == request.id, Refund.status.in_(ACTIVE))) is not None:
        session.rollback()
        raise Conflict(N_("A refund for this return is already under way."))
    preview = preview_refund(session, request, settings)
    if preview.basis_hash != seen_hash:
        session.rollback()
        raise StalePreview(preview.basis_hash)
    second = needs_second_approval(preview, threshold)
    if second and below_threshold_only:
        session.rollback()
        raise AboveThreshold(limit=str(threshold))
    count = session.scalar(select(func.count(Refund.id)).where(Refund.request_id == request.id)) or 0
    total = preview.refund_total + preview.store_credit_total
    refund = Refund(
        request_id=request.id,
        idempotency_key=f"rf-{request.rma}-{count + 1}",
        provider=provider,
        currency=preview.currency,
        amount=preview.refund_total,
        store_credit=preview.store_credit_total,
        preview=preview.to_dict(),
        basis_hash=preview.basis_hash,
        approved_by=staff.id,
        status=(RefundStatus.AWAITING_SECOND if second else RefundStatus.APPROVED).value,
    )
    session.add(refund)
    session.commit()
    log.info("refund %s approved by staff %s: %s %s", refund.idempotency_key, staff.id, total, preview.currency)
    return refund


@dataclass(frozen=True)
class BulkOutcome:
    """What bulk approval did with one request: ``refund`` when approved, else the rule that said no."""

    rma: str
    refund: Refund | None
    error: Conflict | None = None

    @property
    def outcome(self) -> str:
        """approved | above_threshold | stale (the preview changed) | refused (no longer refundable)."""
        if self.refund is not None:
            return "approved"
        if isinstance(self.error, AboveThreshold):
            return "above_threshold"
        return "stale" if isinstance(self.error, StalePreview) else "refused"


def approve_refunds(
    session: Session,
    picks: Sequence[tuple[str, str]],
    staff: StaffUser,
    provider: str,
    threshold: Decimal,
    settings: money.RefundSettings | None = None,
) -> list[BulkOutcome]:
    """Approve several refunds at once, each only at or below ``threshold`` and each exactly as
    ``approve_refund`` does (its own lock, state check and basis hash, its own transaction).

    ``picks`` are (RMA, basis hash seen). Nothing is approved when none is picked (InvalidInput)
    or one of them names no return (NotFound); otherwise every pick gets an outcome, in order."""
    if not picks:
        raise InvalidInput(N_("Choose at least one refund to approve."))
    rmas = [rma for rma, _ in picks]
    if len(set(rmas)) != len(rmas):
        raise InvalidInput(N_("Each refund can be chosen once."))
    found = {r.rma: r for r in session.scalars(select(ReturnRequest).where(ReturnRequest.rma.in_(rmas)))}
    unknown = [rma for rma in rmas if rma not in found]
    if unknown:
        raise NotFound(N_("There is no return %(rmas)s. Nothing was approved."), rmas=", ".join(unknown))
    outcomes = []
    for rma, seen in picks:
        try:
            refund = approve_refund(
                session, found[rma], staff, seen, provider, threshold, settings, below_threshold_only=True
            )
        except Conflict as exc:  # StalePreview and AboveThreshold among them
            outcomes.append(BulkOutcome(rma, None, exc))
        else:
            outcomes.append(BulkOutcome(rma, refund))
    return outcomes


def second_approve(session: Session, refund: Refund, staff: StaffUser) -> Refund:
    """Above the threshold a second, different finance user must approve."""
    lock_rows(session, Refund, Refund.id == refund.id)
    session.refresh(refund)
    if refund.status != RefundStatus.AWAITING_SECOND:
        session.rollback()
        raise Conflict(current=refund.status)
    if staff.id == refund.approved_by:
        session.rollback()
        raise NotPermitted(N_("The second approval must come from another finance user."))
    refund.status = check_refund(refund.status, RefundStatus.APPROVED).value
    refund.second_by, refund.second_at = staff.id, datetime.now(UTC)
    session.commit()
    return refund


def retry_refund(session: Session, refund_id: int) -> Refund:
    """A failed refund goes back to approved, with the same idempotency key."""
    check_refund(RefundStatus.FAILED, RefundStatus.APPROVED)
    result: CursorResult[Any] = session.execute(  # type: ignore[assignment]  # an UPDATE gives a CursorResult
        update(Refund)
        .where(Refund.id == refund_id, Refund.status == RefundStatus.FAILED.value)
        .values(status=RefundStatus.APPROVED.value)
    )
    session.commit()
    refund = session.get(Refund, refund_id)
    if refund is None:
        raise NotFound()
    session.refresh(refund)
    if result.rowcount != 1:
        raise Conflict(current=refund.status)
    return refund


def execute_refund(
    factory: sessionmaker[Session], refund_id: int, gateway: PaymentGateway, manual_reference: str | None = None
) -> Refund:
    """Pay an approved refund once. Concurrent calls: one claims it, the others return without paying.

    A manual refund (paid elsewhere) needs the payment's reference: without one nothing changes
    (InvalidInput), rather than a failed refund and a ``refund.failed`` event for the shop.
    The claim ("processing", with its time) is committed before the gateway is called; if this
    process dies after the gateway paid, ``resolve_stuck_refunds`` asks the gateway by the
    idempotency key and records the outcome once.
    """
    now = datetime.now(UTC)
    with factory() as session:
        pending = session.get_one(Refund, refund_id)
        if pending.provider == "manual" and pending.amount > 0 and not (manual_reference or "").strip():
            raise InvalidInput(N_("Enter the reference of the payment you made elsewhere."))
        claimed = session.execute(  # type: ignore[attr-defined]  # an UPDATE gives a CursorResult
            update(Refund)
            .where(Refund.id == refund_id, Refund.status == RefundStatus.APPROVED.value)
            .values(status=RefundStatus.PROCESSING.value, attempts=Refund.attempts + 1, processing_since=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        session.commit()
        refund = session.get_one(Refund, refund_id)
        if not claimed:
            return refund
        key, amount, currency = refund.idempotency_key, refund.amount, refund.currency
        payment_reference = refund.request.order.payment_reference or ""
    error = None
    result = None
    try:
        if amount > 0:
            result = gateway.refund(key, amount, currency, payment_reference, manual_reference)
    except Exception as exc:  # any provider failure is recorded; the key makes a retry safe
        error = f"{type(exc).__name__}: {exc}"[:2000]
    return _settle(factory, refund_id, error, result.reference if result else None, now)


def _settle(
    factory: sessionmaker[Session], refund_id: int, error: str | None, provider_ref: str | None, now: datetime
) -> Refund:
    """Record the outcome of a processing refund, exactly once: the row is locked and must still be
    processing (a resolver or a slow first attempt may have recorded it already)."""
    with factory() as session:
        lock_rows(session, Refund, Refund.id == refund_id)
        refund = session.get_one(Refund, refund_id, populate_existing=True)
        if refund.status != RefundStatus.PROCESSING:
            session.rollback()
            log.warning("refund %s already settled as %s; outcome not recorded again", refund_id, refund.status)
            return refund
        if error is not None:
            _record_failure(session, refund, error)
        else:
            _record_success(session, refund, provider_ref, now)
        session.commit()
        return refund


def _record_failure(session: Session, refund: Refund, error: str) -> None:
    refund.status, refund.last_error = check_refund(refund.status, RefundStatus.FAILED).value, error
    refund.processing_since = None
    enqueue_webhook(
        session, "refund.failed", {"rma": refund.request.rma, "refund": refund.idempotency_key, "error": error}
    )
    log.warning("refund %s failed: %s", refund.idempotency_key, error)


def _record_success(session: Session, refund: Refund, provider_ref: str | None, now: datetime) -> None:
    """The gateway paid: ledger rows, store credit, the request's move, the webhook and the email (no commit)."""
    request = refund.request
    key = refund.idempotency_key
    refund.processing_since = None
    refund.status = check_refund(refund.status, RefundStatus.SUCCEEDED).value
    refund.executed_at, refund.last_error = now, None
    refund.provider_ref = provider_ref
    method = request.order.payment_method
    if refund.amount > 0:
        session.add(
            LedgerEntry(
                at=now,
                kind="refund",
                method=method,
                currency=refund.currency,
                amount=refund.amount,
                request_id=request.id,
                refund_id=refund.id,
                reference=refund.provider_ref or "",
            )
        )
    if preview_owed(refund) > 0:
        session.add(
            LedgerEntry(
                at=now,
                kind="owed_by_shopper",
                method="exchange",
                currency=refund.currency,
                amount=preview_owed(refund),
                request_id=request.id,
                refund_id=refund.id,
                reference=key,
            )
        )
    credit_code = None
    if refund.store_credit > 0:
        credit_code = new_store_credit_code()
        session.add(
            StoreCreditCode(
                code=credit_code,
                currency=refund.currency,
                initial=refund.store_credit,
                balance=refund.store_credit,
                customer_email=request.order.customer_email,
                refund_id=refund.id,
            )
        )
        session.add(
            LedgerEntry(
                at=now,
                kind="store_credit_issued",
                method="store_credit",
                currency=refund.currency,
                amount=refund.store_credit,
                request_id=request.id,
                refund_id=refund.id,
                reference=credit_code,
            )
        )
    amount_text, store_credit_text = (
        plain_amount(refund.amount, refund.currency),
        plain_amount(refund.store_credit, refund.currency),
    )
    # Timeline notes are English text: amounts in the English form ("CN¥1,456.97").
    move(
        request,
        Status.EXCHANGED if request.all_exchanges else Status.REFUNDED,
        Actor.payment(refund.provider),
        f"refunded {format_money(refund.amount, refund.currency, NOTE_LOCALE)}"
        + (
            f" and store credit {format_money(refund.store_credit, refund.currency, NOTE_LOCALE)} ({credit_code})"
            if credit_code
            else ""
        ),
        at=now,
    )
    enqueue_webhook(
        session,
        "refund.succeeded",
        {
            "rma": request.rma,
            "refund": key,
            "amount": amount_text,
            "store_credit": store_credit_text,
            "store_credit_code": credit_code,
            "currency": refund.currency,
            "reference": refund.provider_ref,
        },
    )
    if request.order.customer_email:
        # Plain amounts; the email formats them in the shopper's locale (stored on the request).
        enqueue_email(
            session,
            request.order.customer_email,
            "return_refunded",
            request.locale,
            {
                "rma": request.rma,
                "amount": amount_text,
                "store_credit": store_credit_text,
                "code": credit_code,
                "currency": refund.currency,
            },
        )
    log.info("refund %s succeeded: %s %s", key, refund.amount, refund.currency)


STUCK_AFTER = timedelta(minutes=5)
"""A refund still "processing" this long after its claim is taken to be interrupted (no gateway
call here waits that long: the sandbox and HTTP gateways time out well before)."""


@dataclass(frozen=True)
class Resolution:
    refund_id: int
    outcome: str  # succeeded | failed | unknown (the gateway could not say) | running (too recent to judge)


def is_stuck(refund: Refund, now: datetime, older_than: timedelta = STUCK_AFTER) -> bool:
    """Processing for longer than any attempt takes: its process was interrupted."""
    return refund.status == RefundStatus.PROCESSING and (
        refund.processing_since is None or refund.processing_since <= now - older_than
    )


def resolve_stuck_refund(
    factory: sessionmaker[Session],
    refund_id: int,
    gateway: PaymentGateway,
    now: datetime | None = None,
    older_than: timedelta = STUCK_AFTER,
) -> Resolution:
    """Settle one refund left "processing" by asking the gateway about its idempotency key.

    Paid: recorded once (ledger, store credit, webhook, email), as if the first attempt had
    finished. Never paid: marked failed, so finance can retry with the same key. The gateway
    cannot tell: left as it is and reported "unknown". One whose attempt may still be running
    (claimed less than ``older_than`` ago) is left alone and reported "running".
    """
    now = now or datetime.now(UTC)
    with factory() as session:
        refund = session.get_one(Refund, refund_id)
        if refund.status != RefundStatus.PROCESSING:
            return Resolution(refund_id, refund.status)
        if not is_stuck(refund, now, older_than):
            return Resolution(refund_id, "running")
        key, amount = refund.idempotency_key, refund.amount
    try:
        found = gateway.lookup(key) if amount > 0 else PaymentResult("")
    except GatewayError as exc:
        log.warning("refund %s: the gateway could not say whether it paid: %s", key, exc)
        return Resolution(refund_id, "unknown")
    if found is None:
        settled = _settle(
            factory, refund_id, "interrupted before the payment was made: retry (the same key is used)", None, now
        )
    else:
        settled = _settle(factory, refund_id, None, found.reference or None, now)
    return Resolution(refund_id, settled.status)


def resolve_stuck_refunds(
    factory: sessionmaker[Session],
    gateways: Callable[[str], PaymentGateway],
    now: datetime | None = None,
    older_than: timedelta = STUCK_AFTER,
) -> list[Resolution]:
    """The periodic job: every refund processing for longer than ``older_than``, settled by asking its gateway."""
    now = now or datetime.now(UTC)
    with factory() as session:
        stuck = session.execute(
            select(Refund.id, Refund.provider).where(
                Refund.status == RefundStatus.PROCESSING.value,
                or_(Refund.processing_since.is_(None), Refund.processing_since <= now - older_than),
            )
        ).all()
    return [
        resolve_stuck_refund(factory, refund_id, gateways(provider), now, older_than) for refund_id, provider in stuck
    ]


def preview_owed(refund: Refund) -> Decimal:
    return money.RefundPreview.from_dict(refund.preview).owed_by_shopper


def ledger_rows(session: Session, start: datetime, end: datetime) -> list[tuple[Any, ...]]:
    """(day, method, currency, kind, count, total) for reconciliation, by day and payment method."""
    day = func.date(LedgerEntry.at)
    stmt = (
        select(
            day,
            LedgerEntry.method,
            LedgerEntry.currency,
            LedgerEntry.kind,
            func.count(LedgerEntry.id),
            func.sum(LedgerEntry.amount),
        )
        .where(LedgerEntry.at >= start, LedgerEntry.at < end)
        .group_by(day, LedgerEntry.method, LedgerEntry.currency, LedgerEntry.kind)
        .order_by(day, LedgerEntry.method, LedgerEntry.kind)
    )
    return [tuple(r) for r in session.execute(stmt)]


PROVIDERS = ("sandbox", "manual")
"""The payment providers a refund can be paid with: the sandbox gateway, or a payment made elsewhere."""

LEDGER_KINDS = {
    "refund": N_("Refund"),
    "store_credit_issued": N_("Store credit issued"),
    "store_credit_redeemed": N_("Store credit spent"),
    "owed_by_shopper": N_("Owed by the shopper"),
}


@dataclass(frozen=True)
class LedgerFilter:
    """Which movements to list: one UTC day, and optionally one payment method, provider and kind."""

    day: date
    method: str | None = None
    provider: str | None = None
    kind: str | None = None


@dataclass(frozen=True)
class Movement:
    """One money movement, with the refund and request it belongs to. ``provider`` and
    ``provider_ref`` are the refund's, and only on the payment itself (kind "refund"):
    store credit is issued by the portal."""

    at: datetime
    kind: str
    rma: str | None
    order_number: str | None
    refund_key: str | None
    provider: str | None
    provider_ref: str | None
    reference: str
    method: str
    amount: Decimal
    currency: str


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(), tzinfo=UTC)
    return start, start + timedelta(days=1)


def ledger_movements(session: Session, wanted: LedgerFilter) -> list[Movement]:
    """Every ledger entry of ``wanted.day`` that matches the filter, oldest first."""
    start, end = _day_bounds(wanted.day)
    stmt = (
        select(LedgerEntry, Refund, ReturnRequest.rma, Order.order_number)
        .outerjoin(Refund, Refund.id == LedgerEntry.refund_id)
        .outerjoin(ReturnRequest, ReturnRequest.id == LedgerEntry.request_id)
        .outerjoin(Order, Order.id == ReturnRequest.order_id)
        .where(LedgerEntry.at >= start, LedgerEntry.at < end)
        .order_by(LedgerEntry.at, LedgerEntry.id)
    )
    if wanted.method:
        stmt = stmt.where(LedgerEntry.method == wanted.method)
    if wanted.kind:
        stmt = stmt.where(LedgerEntry.kind == wanted.kind)
    if wanted.provider:
        stmt = stmt.where(LedgerEntry.kind == "refund", Refund.provider == wanted.provider)
    out = []
    for entry, refund, rma, order_number in session.execute(stmt):
        paid = refund is not None and entry.kind == "refund"
        out.append(
            Movement(
                at=entry.at,
                kind=entry.kind,
                rma=rma,
                order_number=order_number,
                refund_key=refund.idempotency_key if refund is not None else None,
                provider=refund.provider if paid else None,
                provider_ref=refund.provider_ref if paid else None,
                reference=entry.reference,
                method=entry.method,
                amount=entry.amount,
                currency=entry.currency,
            )
        )
    return out


@dataclass(frozen=True)
class DayTotal:
    kind: str
    method: str
    provider: str | None
    currency: str
    count: int
    total: Decimal


def day_totals(session: Session, day: date) -> list[DayTotal]:
    """One day's movements summed by kind, payment method, provider and currency (sandbox and
    manual refunds apart)."""
    totals: dict[tuple[str, str, str | None, str], tuple[int, Decimal]] = {}
    for m in ledger_movements(session, LedgerFilter(day)):
        key = (m.kind, m.method, m.provider, m.currency)
        count, total = totals.get(key, (0, Decimal(0)))
        totals[key] = (count + 1, total + m.amount)
    return [
        DayTotal(kind, method, provider, currency, count, round_money(total, currency))
        for (kind, method, provider, currency), (count, total) in sorted(
            totals.items(), key=lambda item: (item[0][0], item[0][1], item[0][2] or "", item[0][3])
        )
    ]


class CreditNotFound(NotFound):
    """No store credit behind the code: ``reason`` is "mistyped" (malformed, or its check character is
    wrong, so no lookup was made) or "unknown"."""

    def __init__(self, reason: str):
        super().__init__(
            N_("That store credit code has a typing mistake.")
            if reason == "mistyped"
            else N_("There is no store credit with that code.")
        )
        self.reason = reason


def redeem_store_credit(session: Session, redemption: Redemption) -> StoreCreditCode:
    """Spend store credit in the shop. The same (code, reference) twice debits once.

    A malformed or unknown code raises CreditNotFound; another currency or more than the
    balance raises Conflict. Nothing is debited then.
    """
    try:
        code, current_check = parse_for_lookup(parse_store_credit_code, redemption.code)
    except CodeError:
        raise CreditNotFound("mistyped") from None
    credit = session.scalars(
        select(StoreCreditCode).where(StoreCreditCode.code == code).with_for_update()
    ).one_or_none()
    if credit is None:
        session.rollback()
        raise CreditNotFound("unknown" if current_check else "mistyped")
    if redemption.currency != credit.currency:
        session.rollback()
        raise Conflict(N_("This store credit is in %(currency)s."), currency=credit.currency)
    reference = f"{credit.code}:{redemption.reference}"
    # One conditional UPDATE debits or does nothing, on SQLite (where a row lock is not taken)
    # as on PostgreSQL: concurrent redemptions can never take the balance below zero.
    debited = (
        redemption.amount > 0
        and session.execute(  # type: ignore[attr-defined]  # an UPDATE gives a CursorResult
            update(StoreCreditCode)
            .where(StoreCreditCode.id == credit.id, StoreCreditCode.balance >= redemption.amount)
            .values(balance=StoreCreditCode.balance - redemption.amount)
            .execution_options(synchronize_session=False)
        ).rowcount
        == 1
    )
    # Checked after the debit holds the write lock, so the same reference twice at once debits once.
    done = session.scalar(
        select(LedgerEntry.id).where(LedgerEntry.kind == "store_credit_redeemed", LedgerEntry.reference == reference)
    )
    if done is not None:
        session.rollback()
        session.refresh(credit)
        return credit
    if not debited:
        session.rollback()
        session.refresh(credit)
        raise Conflict(
            N_("The store credit balance is %(balance)s %(currency)s."),
            balance=str(round_money(credit.balance, credit.currency)),
            currency=credit.currency,
        )
    session.add(
        LedgerEntry(
            kind="store_credit_redeemed",
            method="store_credit",
            currency=credit.currency,
            amount=-redemption.amount,
            reference=reference,
        )
    )
    session.commit()
    session.refresh(credit)
    return credit


@dataclass(frozen=True)
class PaidOut:
    """What a shopper got for a request: paid refunds and the store credit they can spend."""

    refunded: Decimal
    store_credit: Decimal
    currency: str
    credit_code: str | None
    credit_balance: Decimal | None
    paid_at: datetime | None


def paid_out(session: Session, request: ReturnRequest) -> PaidOut | None:
    """The succeeded refunds of a request, summed, with its store-credit code and balance; None if none."""
    refunds = list(
        session.scalars(
            select(Refund).where(Refund.request_id == request.id, Refund.status == RefundStatus.SUCCEEDED.value)
        )
    )
    if not refunds:
        return None
    credit = session.scalars(
        select(StoreCreditCode)
        .where(StoreCreditCode.refund_id.in_([r.id for r in refunds]))
        .order_by(StoreCreditCode.id)
    ).first()
    return PaidOut(
        refunded=sum((r.amount for r in refunds), Decimal(0)),
        store_credit=sum((r.store_credit for r in refunds), Decimal(0)),
        currency=refunds[0].currency,
        credit_code=credit.code if credit else None,
        credit_balance=credit.balance if credit else None,
        paid_at=max((r.executed_at for r in refunds if r.executed_at), default=None),
    )
