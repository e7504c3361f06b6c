"""Personal data over time: retention (anonymise finished requests after a while) and the
shopper's own requests for a copy of their data or for its erasure.

What goes: the shopper's name, email, phone and postcode, the free text they (or staff about
them) wrote, and their photos in the store. What stays, for the dashboard and for finance:
amounts, reasons, grades, dates, statuses, refund rows and their references, the ledger.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, exists, func, select
from sqlalchemy.orm import Session

from portal.db.models import (
    BusinessCalendarRow,
    CarrierClaim,
    Discrepancy,
    Order,
    OutboxMessage,
    Photo,
    PrivacyRequest,
    Refund,
    RequestEvent,
    ReturnLine,
    ReturnRequest,
    SlaPolicy,
    StaffNotification,
    StaffUser,
    SurveyAnswer,
    Team,
    Ticket,
    TicketEvent,
)
from portal.domain.actors import SYSTEM, Actor, ActorKind
from portal.domain.errors import InvalidInput, NotFound
from portal.domain.privacy import (
    COPY_AVAILABLE_DAYS,
    FINISHED,
    ROUND_THE_CLOCK_CALENDAR,
    SUBJECT_KIND_LABELS,
    SUBJECT_LADDER,
    SUBJECT_RESOLUTION_MINUTES,
    SUBJECT_TICKET_PRIORITY,
    SubjectKind,
    SubjectStatus,
    parse_retention_days,
    retention_cutoff,
    subject_due,
)
from portal.domain.roles import ADMIN
from portal.domain.states import TicketKind, TicketStatus
from portal.domain.text import N_, Text
from portal.services.audit import record_access
from portal.services.outbox import enqueue_email
from portal.services.sla import start_ticket_clocks, stop_ticket_clocks
from portal.services.tickets import assign_ticket, ensure_team, set_ticket_status
from portal.storage import PhotoStore, StorageError

log = logging.getLogger("portal.privacy")

ERASED_PREFIX = "erased/"  # a photo row whose stored image is gone keeps its scores under this key
PRIVACY_TEAM = "privacy"  # requests go to this team when it exists (admins see them all)
# Free text written by staff on tickets that may quote the shopper.
_TICKET_TEXT_KINDS = ("note", "reply", "message")
_FINISHED = tuple(s.value for s in FINISHED)
# How long after an order's last change emails about it may still have been sent (survey delay,
# quiet days and reminders fit well inside).
MESSAGE_WINDOW = timedelta(days=90)


def retention_days(config: Mapping[str, Any]) -> int:
    value = config.get("RETENTION_DAYS", 0)
    return value if isinstance(value, int) else parse_retention_days(str(value))


@dataclass
class Erased:
    """What one anonymisation removed (counts only: the report itself holds no personal data)."""

    orders: int = 0
    requests: int = 0
    photos: int = 0
    texts: int = 0
    messages: int = 0
    photo_errors: int = 0

    def add(self, other: Erased) -> None:
        for name in ("orders", "requests", "photos", "texts", "messages", "photo_errors"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, int]:
        return {
            "orders": self.orders,
            "requests": self.requests,
            "photos": self.photos,
            "texts": self.texts,
            "messages": self.messages,
            "photo_errors": self.photo_errors,
        }


@dataclass
class PurgeReport:
    dry_run: bool
    cutoff: datetime | None
    erased: Erased = field(default_factory=Erased)
    order_numbers: list[str] = field(default_factory=list)  # shown by the dry run, never stored


# --- what is due ----------------------------------------------------------------------------


def _last_activity() -> ColumnElement[Any]:
    """When an order's requests last changed state (or were made): the retention clock starts there."""
    events = (
        select(func.max(RequestEvent.at))
        .join(ReturnRequest, RequestEvent.request_id == ReturnRequest.id)
        .where(ReturnRequest.order_id == Order.id)
        .scalar_subquery()
    )
    made = select(func.max(ReturnRequest.created_at)).where(ReturnRequest.order_id == Order.id).scalar_subquery()
    return func.coalesce(events, made)


def due_for_retention(session: Session, cutoff: datetime, limit: int) -> list[int]:
    """Orders not yet anonymised whose requests are all finished, the last change before ``cutoff``."""
    has_request = exists().where(ReturnRequest.order_id == Order.id)
    unfinished = exists().where(ReturnRequest.order_id == Order.id, ReturnRequest.status.not_in(_FINISHED))
    stmt = (
        select(Order.id)
        .where(Order.anonymised_at.is_(None), has_request, ~unfinished, _last_activity() < cutoff)
        .order_by(Order.id)
        .limit(limit)
    )
    return list(session.scalars(stmt))


# --- removing -------------------------------------------------------------------------------


def _scrub_messages(session: Session, order: Order) -> int:
    """Sent emails about this order (by its number or its requests' RMAs: not every email to the
    same address, which may be about another order still running) keep their template and time;
    the address and context go."""
    count = 0
    # Emails about an order go out while its requests run and shortly after (the survey): only
    # that window is read, so a purge does not decrypt the whole outbox for every order.
    last = max([r.updated_at for r in order.requests] + [order.updated_at])
    rows = session.scalars(
        select(OutboxMessage).where(
            OutboxMessage.channel == "email",
            OutboxMessage.sent_at.is_not(None),
            OutboxMessage.created_at >= order.created_at - timedelta(days=1),
            OutboxMessage.created_at <= last + MESSAGE_WINDOW,
        )
    )
    rmas = {r.rma for r in order.requests}
    for message in rows:
        payload = message.payload or {}
        ctx = payload.get("context") or {}
        if payload.get("erased"):
            continue
        if ctx.get("order_number") == order.order_number or ctx.get("rma") in rmas:
            message.payload = {
                "to": "",
                "template": payload.get("template"),
                "locale": payload.get("locale"),
                "context": {},
                "erased": True,
            }
            count += 1
    return count


def delete_photos(store: PhotoStore, photos: list[Photo]) -> tuple[int, int]:
    """Remove the images (and thumbnails) from the store; the rows keep their scores for the model
    report under an ``erased/`` key. Returns (removed, failed); a failed one is tried again next run."""
    removed = failed = 0
    for photo in photos:
        if photo.storage_key.startswith(ERASED_PREFIX):
            continue
        try:
            store.delete(photo.storage_key)
            if photo.thumb_key:
                store.delete(photo.thumb_key)
        except StorageError:
            log.warning("could not remove photo %s from the store", photo.id)
            failed += 1
            continue
        photo.storage_key = f"{ERASED_PREFIX}{photo.id}"
        photo.thumb_key = None
        removed += 1
    return removed, failed


def anonymise_order(session: Session, order: Order, store: PhotoStore, now: datetime) -> Erased:
    """Remove the shopper's personal data from one order and its requests (the caller commits).
    Amounts, reasons, grades, dates, statuses, refunds and ledger rows are left as they are."""
    done = Erased()
    done.messages = _scrub_messages(session, order)
    order.customer_name = ""
    order.customer_email = None
    order.customer_phone = None
    order.customer_postcode = None
    request_ids = [r.id for r in order.requests]
    for req in order.requests:
        req.customer_email = None
        done.requests += 1
    if request_ids:
        for line in session.scalars(select(ReturnLine).where(ReturnLine.request_id.in_(request_ids))):
            if line.comment:
                line.comment = ""
                done.texts += 1
        shopper_events = select(RequestEvent).where(
            RequestEvent.request_id.in_(request_ids), RequestEvent.actor_kind == ActorKind.SHOPPER.value
        )
        staff_messages = select(RequestEvent).where(
            RequestEvent.request_id.in_(request_ids), RequestEvent.kind == "message"
        )
        for event in [*session.scalars(shopper_events), *session.scalars(staff_messages)]:
            if event.note:
                event.note = ""
                done.texts += 1
        ticket_ids = select(Ticket.id).where(Ticket.request_id.in_(request_ids))
        for tevent in session.scalars(
            select(TicketEvent).where(TicketEvent.ticket_id.in_(ticket_ids), TicketEvent.kind.in_(_TICKET_TEXT_KINDS))
        ):
            if tevent.note:
                tevent.note = ""
                done.texts += 1
        for row in [
            *session.scalars(select(SurveyAnswer).where(SurveyAnswer.request_id.in_(request_ids))),
            *session.scalars(select(Discrepancy).where(Discrepancy.request_id.in_(request_ids))),
            *session.scalars(select(CarrierClaim).where(CarrierClaim.request_id.in_(request_ids))),
        ]:
            text_field = "comment" if isinstance(row, SurveyAnswer) else "note"
            if getattr(row, text_field):
                setattr(row, text_field, "")
                done.texts += 1
        photos = list(session.scalars(select(Photo).where(Photo.request_id.in_(request_ids))))
        done.photos, done.photo_errors = delete_photos(store, photos)
    order.anonymised_at = now
    done.orders = 1
    return done


def purge(
    session: Session,
    store: PhotoStore,
    days: int,
    now: datetime | None = None,
    *,
    dry_run: bool = False,
    batch: int = 100,
    max_batches: int | None = None,
) -> PurgeReport:
    """Anonymise every order whose requests finished more than ``days`` ago, in batches of
    ``batch`` orders, each batch committed with one audit row of its counts. Running it again
    finds nothing new (idempotent); ``dry_run`` only lists what would go. ``days`` 0 is off."""
    now = now or datetime.now(UTC)
    cutoff = retention_cutoff(now, days)
    report = PurgeReport(dry_run=dry_run, cutoff=cutoff)
    if cutoff is None:
        return report
    if dry_run:
        ids = due_for_retention(session, cutoff, limit=10**9)
        orders = list(session.scalars(select(Order).where(Order.id.in_(ids)).order_by(Order.id))) if ids else []
        report.order_numbers = [o.order_number for o in orders]
        report.erased.orders = len(orders)
        report.erased.requests = sum(len(o.requests) for o in orders)
        if ids:
            report.erased.photos = (
                session.scalar(
                    select(func.count(Photo.id))
                    .join(ReturnRequest, Photo.request_id == ReturnRequest.id)
                    .where(ReturnRequest.order_id.in_(ids), ~Photo.storage_key.startswith(ERASED_PREFIX))
                )
                or 0
            )
        session.rollback()
        return report
    batches = 0
    while max_batches is None or batches < max_batches:
        ids = due_for_retention(session, cutoff, batch)
        if not ids:
            break
        done = Erased()
        for order in session.scalars(select(Order).where(Order.id.in_(ids)).order_by(Order.id)):
            report.order_numbers.append(order.order_number)
            done.add(anonymise_order(session, order, store, now))
        record_access(
            session,
            None,
            "retention_purge",
            f"retention:{days}d",
            detail=f"finished before {cutoff:%Y-%m-%d}",
        ).after = done.as_dict()
        session.commit()
        report.erased.add(done)
        batches += 1
    log.info("retention: %s", report.erased.as_dict())
    return report


def retry_photo_removals(session: Session, store: PhotoStore) -> int:
    """Photos of anonymised orders the store failed to remove last time (commits)."""
    photos = list(
        session.scalars(
            select(Photo)
            .join(ReturnRequest, Photo.request_id == ReturnRequest.id)
            .join(Order, ReturnRequest.order_id == Order.id)
            .where(Order.anonymised_at.is_not(None), ~Photo.storage_key.startswith(ERASED_PREFIX))
        )
    )
    removed, _failed = delete_photos(store, photos)
    session.commit()
    return removed


# --- the shopper's requests -----------------------------------------------------------------


def open_subject_requests(session: Session, order_id: int) -> list[PrivacyRequest]:
    return list(
        session.scalars(select(PrivacyRequest).where(PrivacyRequest.order_id == order_id).order_by(PrivacyRequest.id))
    )


def ask_about_data(
    session: Session, order: Order, request: ReturnRequest | None, kind: str, locale: str, now: datetime | None = None
) -> PrivacyRequest:
    """The signed-in shopper asks for a copy of their data or for its erasure. It is due 30 calendar
    days later and goes to the privacy team (when there is one). Asking again while one of the same
    kind is open returns that one."""
    now = now or datetime.now(UTC)
    try:
        wanted = SubjectKind(kind)
    except ValueError:
        raise InvalidInput(N_("Choose what you would like us to do with your data.")) from None
    if order.anonymised_at is not None:
        raise InvalidInput(N_("Your personal data has already been removed from this order."))
    existing = session.scalars(
        select(PrivacyRequest).where(
            PrivacyRequest.order_id == order.id,
            PrivacyRequest.kind == wanted.value,
            PrivacyRequest.status == SubjectStatus.OPEN.value,
        )
    ).first()
    if existing is not None:
        return existing
    team = ensure_team(session, PRIVACY_TEAM, "Privacy")
    row = PrivacyRequest(
        order_id=order.id,
        request_id=request.id if request else None,
        kind=wanted.value,
        status=SubjectStatus.OPEN.value,
        locale=locale[:16],
        team_id=team.id if team else None,
        asked_at=now,
        due_at=subject_due(now),
        note="",
    )
    session.add(row)
    session.flush()
    _open_ticket(session, row, request, team, now)
    record_access(
        session,
        None,
        "privacy_asked",
        f"privacy_request:{row.id}",
        order_number=order.order_number,
        detail=wanted.value,
    )
    _notify_handlers(session, row, team, order.order_number)
    session.commit()
    return row


def ensure_subject_policy(session: Session, team: Team) -> SlaPolicy:
    """The privacy team's SLA policy for data requests: 30 calendar days on a round-the-clock
    calendar with its escalation ladder. Made once when missing; an admin's later edits stay."""
    policy = session.scalars(
        select(SlaPolicy).where(SlaPolicy.team_id == team.id, SlaPolicy.priority == SUBJECT_TICKET_PRIORITY)
    ).first()
    if policy is not None:
        return policy
    spec = ROUND_THE_CLOCK_CALENDAR
    calendar = session.scalars(select(BusinessCalendarRow).where(BusinessCalendarRow.code == spec["code"])).first()
    if calendar is None:
        calendar = BusinessCalendarRow(
            code=spec["code"], name=spec["name"], timezone=spec["timezone"], weekly=spec["weekly"]
        )
        session.add(calendar)
        session.flush()
    policy = SlaPolicy(
        team_id=team.id,
        priority=SUBJECT_TICKET_PRIORITY,
        # Acknowledging is answering here: both clocks run to the due date.
        first_response_minutes=SUBJECT_RESOLUTION_MINUTES,
        resolution_minutes=SUBJECT_RESOLUTION_MINUTES,
        calendar_id=calendar.id,
        ladder=SUBJECT_LADDER,
    )
    session.add(policy)
    session.flush()
    return policy


def _open_ticket(
    session: Session, row: PrivacyRequest, request: ReturnRequest | None, team: Team, now: datetime
) -> Ticket | None:
    """The data request's ticket in the privacy team's queue, its clocks started under the team's
    policy (no commit). A ticket hangs on a return request: without one there is none."""
    if request is None:
        return None
    ensure_subject_policy(session, team)
    ticket = Ticket(
        request_id=request.id,
        kind=TicketKind.DATA_REQUEST.value,
        team_id=team.id,
        priority=SUBJECT_TICKET_PRIORITY,
        ticket_class="B",
        rule=None,
        routing_inputs={"data_request": row.kind},
        status=TicketStatus.OPEN.value,
        created_at=now,
    )
    session.add(ticket)
    ticket.events.append(
        TicketEvent(
            actor=SYSTEM,
            kind="routed",
            note=f"data request {row.id} ({row.kind}) to the {team.code} team",
            data={"team": team.code, "priority": SUBJECT_TICKET_PRIORITY, "data_request": row.id},
        )
    )
    session.flush()
    row.ticket_id = ticket.id
    assign_ticket(session, ticket)
    start_ticket_clocks(session, ticket, now)
    return ticket


def _close_ticket(session: Session, row: PrivacyRequest, actor: Actor, now: datetime) -> None:
    """Completing the data request closes its ticket and stops its clocks (no commit)."""
    ticket = row.ticket
    if ticket is None or ticket.status == TicketStatus.CLOSED:
        return
    ticket.first_response_at = ticket.first_response_at or now
    set_ticket_status(ticket, TicketStatus.CLOSED, now)
    ticket.events.append(TicketEvent(actor=actor, kind="decided", note=f"data request {row.id} answered"))
    stop_ticket_clocks(session, ticket, now, actor, ("first_response", "resolution"), "data request answered")


def _tell(session: Session, team: Team | None, words: Text) -> None:
    """Tell who answers data requests: every active admin, and the privacy team's lead and manager."""
    ids = set(session.scalars(select(StaffUser.id).where(StaffUser.role == ADMIN, StaffUser.active.is_(True))))
    if team is not None:
        ids |= {i for i in (team.lead_id, team.manager_id) if i is not None}
    for staff_id in sorted(ids):
        session.add(
            StaffNotification(staff_id=staff_id, kind="data_request", message=words.render(), words=words.to_dict())
        )


def _notify_handlers(session: Session, row: PrivacyRequest, team: Team | None, order_number: str) -> None:
    words = Text(
        N_("A shopper asked: %(what)s (order %(order)s). Answer by %(due)s."),
        {
            "what": Text(SUBJECT_KIND_LABELS[SubjectKind(row.kind)]),
            "order": order_number,
            "due": f"{row.due_at:%Y-%m-%d}",
        },
    )
    _tell(session, team, words)


def scrub_sent_confirmations(session: Session) -> int:
    """The erasure confirmation has to reach the old address; once sent, the address goes too (commits)."""
    count = 0
    for message in session.scalars(
        select(OutboxMessage).where(OutboxMessage.topic == "privacy_erased", OutboxMessage.sent_at.is_not(None))
    ):
        if not (message.payload or {}).get("erased"):
            message.payload = {"to": "", "template": "privacy_erased", "locale": None, "context": {}, "erased": True}
            count += 1
    session.commit()
    return count


def subject_queue(session: Session, include_done: bool = False) -> list[PrivacyRequest]:
    """Data requests, the ones due first at the top."""
    stmt = select(PrivacyRequest)
    if not include_done:
        stmt = stmt.where(PrivacyRequest.status == SubjectStatus.OPEN.value)
    return list(session.scalars(stmt.order_by(PrivacyRequest.due_at, PrivacyRequest.id)))


def data_request_tickets(session: Session, request: ReturnRequest) -> list[Ticket]:
    """The tickets of data requests asked on this return, open ones first."""
    return list(
        session.scalars(
            select(Ticket)
            .where(Ticket.request_id == request.id, Ticket.kind == TicketKind.DATA_REQUEST.value)
            .order_by(Ticket.status == TicketStatus.CLOSED.value, Ticket.id)
        )
    )


def get_subject_request(session: Session, request_id: int) -> PrivacyRequest:
    row = session.get(PrivacyRequest, request_id)
    if row is None:
        raise NotFound()
    return row


def complete_subject_request(
    session: Session, staff: StaffUser, row: PrivacyRequest, store: PhotoStore, now: datetime | None = None
) -> Erased | None:
    """Staff answer a data request once. A copy becomes downloadable by the signed-in shopper for a
    few days (nobody else can download it) and the shopper is emailed; an erasure anonymises the
    order as retention does, keeping what finance must keep. Completing twice is refused."""
    now = now or datetime.now(UTC)
    if row.status != SubjectStatus.OPEN.value:
        raise InvalidInput(N_("This data request has already been completed."))
    order = row.order
    rma = (
        session.scalar(select(ReturnRequest.rma).where(ReturnRequest.id == row.request_id)) if row.request_id else None
    )
    email = order.customer_email
    context = {"order_number": order.order_number, "rma": rma or ""}
    erased: Erased | None = None
    if row.kind == SubjectKind.COPY.value:
        row.copy_until = now + timedelta(days=COPY_AVAILABLE_DAYS)
        record_access(
            session, staff.id, "privacy_copy_ready", f"privacy_request:{row.id}", order_number=order.order_number
        )
        if email:
            enqueue_email(session, email, "privacy_copy_ready", row.locale, {**context, "days": COPY_AVAILABLE_DAYS})
    else:
        if email:  # the confirmation goes before the address does; the context holds no personal data
            enqueue_email(session, email, "privacy_erased", row.locale, {"order_number": order.order_number})
        erased = anonymise_order(session, order, store, now) if order.anonymised_at is None else Erased()
        entry = record_access(
            session, staff.id, "privacy_erased", f"privacy_request:{row.id}", order_number=order.order_number
        )
        entry.after = erased.as_dict()
    row.status = SubjectStatus.DONE.value
    row.completed_at = now
    row.completed_by = staff.id
    _close_ticket(session, row, Actor.staff(staff.id), now)
    session.commit()
    return erased


def copy_available(row: PrivacyRequest, now: datetime | None = None) -> bool:
    now = now or datetime.now(UTC)
    return (
        row.kind == SubjectKind.COPY.value
        and row.status == SubjectStatus.DONE.value
        and row.copy_until is not None
        and now < row.copy_until
    )


def shopper_copy(session: Session, row: PrivacyRequest, now: datetime | None = None) -> dict[str, Any]:
    """The shopper's own data for their download (the caller checked it is theirs); the download is recorded."""
    if not copy_available(row, now):
        raise NotFound()
    order = row.order
    data = subject_data(session, order)
    record_access(
        session, None, "privacy_copy_downloaded", f"privacy_request:{row.id}", order_number=order.order_number
    )
    session.commit()
    return data


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


def subject_data(session: Session, order: Order) -> dict[str, Any]:
    """Everything the portal holds about the shopper of ``order``, as plain JSON-ready values."""
    refunds = session.scalars(
        select(Refund)
        .join(ReturnRequest, Refund.request_id == ReturnRequest.id)
        .where(ReturnRequest.order_id == order.id)
    )
    by_request: dict[int, list[dict[str, Any]]] = {}
    for refund in refunds:
        by_request.setdefault(refund.request_id, []).append(
            {
                "amount": str(refund.amount),
                "store_credit": str(refund.store_credit),
                "status": refund.status,
                "at": _iso(refund.executed_at or refund.approved_at),
            }
        )
    return {
        "order": {
            "order_number": order.order_number,
            "placed_at": _iso(order.placed_at),
            "delivered_at": _iso(order.delivered_at),
            "currency": order.currency,
            "name": order.customer_name,
            "email": order.customer_email,
            "phone": order.customer_phone,
            "postcode": order.customer_postcode,
            "payment_method": order.payment_method,
            "lines": [
                {
                    "sku": line.sku,
                    "product": line.product_name,
                    "variant": line.variant,
                    "quantity": line.quantity,
                    "unit_price": str(line.unit_price),
                }
                for line in order.lines
            ],
        },
        "returns": [
            {
                "rma": req.rma,
                "status": req.status,
                "created_at": _iso(req.created_at),
                "email": req.customer_email,
                "value": str(req.value),
                "lines": [
                    {
                        "sku": line.order_line.sku,
                        "quantity": line.quantity,
                        "reason": line.reason,
                        "comment": line.comment,
                        "outcome": line.outcome,
                        "grade": line.grade,
                    }
                    for line in req.lines
                ],
                "messages": [
                    {"at": _iso(e.at), "from": e.actor_kind, "text": e.note}
                    for e in req.events
                    if e.note and (e.actor_kind == ActorKind.SHOPPER.value or e.kind == "message")
                ],
                "photos": len(req.photos),
                "refunds": by_request.get(req.id, []),
            }
            for req in order.requests
        ],
        "data_requests": [
            {"kind": r.kind, "status": r.status, "asked_at": _iso(r.asked_at)}
            for r in open_subject_requests(session, order.id)
        ],
    }
