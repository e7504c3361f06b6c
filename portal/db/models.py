"""Typed SQLAlchemy 2 tables. Schema changes go through Alembic migrations."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    event,
    or_,
    select,
    text,
)
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, composite, mapped_column, relationship, validates
from sqlalchemy.orm.attributes import get_history

from portal.db.sealed import Sealed, SealedJSON, index_of
from portal.domain.actors import Actor
from portal.domain.lifecycle import CANCELLABLE, Status
from portal.domain.reasons import Outcome
from portal.domain.sla import ClockState
from portal.domain.states import LineDecision, ScoreState, StepStatus, TicketStatus
from portal.domain.survey import SurveyStatus

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


Money = Numeric(14, 4, asdecimal=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), Decimal: Money, dict[str, Any]: JSON}


class Product(Base):
    __tablename__ = "product"

    id: Mapped[int] = mapped_column(primary_key=True)
    product_code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    category: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    shop_updated_at: Mapped[datetime | None]  # the shop's own "last changed" of the newest push applied
    image_url: Mapped[str | None] = mapped_column(String(1024))  # where the shop keeps its picture
    image_key: Mapped[str | None] = mapped_column(String(128))  # our copy in the photo store, once fetched
    image_error: Mapped[str | None] = mapped_column(String(255))  # why the copy could not be made

    variants: Mapped[list[Variant]] = relationship(back_populates="product", order_by="Variant.id")


class Variant(Base):
    __tablename__ = "variant"

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("product.id"), index=True)
    sku: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(128), default="")
    stock: Mapped[int] = mapped_column(Integer, default=0)
    reserved: Mapped[int] = mapped_column(Integer, default=0)
    price: Mapped[Decimal | None] = mapped_column(Money)
    image_url: Mapped[str | None] = mapped_column(String(1024))
    image_key: Mapped[str | None] = mapped_column(String(128))
    image_error: Mapped[str | None] = mapped_column(String(255))

    product: Mapped[Product] = relationship(back_populates="variants")

    @property
    def available(self) -> int:
        return max(self.stock - self.reserved, 0)


class Order(Base):
    __tablename__ = "shop_order"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_number: Mapped[str] = mapped_column(String(64), unique=True)
    placed_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]
    currency: Mapped[str] = mapped_column(String(3))
    channel: Mapped[str] = mapped_column(String(32), default="web")
    # The shopper's details, encrypted (portal.db.sealed); equality lookups use the keyed blind
    # indexes beside them, set whenever a value is.
    customer_name: Mapped[str] = mapped_column(Sealed("shop_order.customer_name", index="name"))
    customer_email: Mapped[str | None] = mapped_column(Sealed("shop_order.customer_email", index="email"))
    customer_phone: Mapped[str | None] = mapped_column(Sealed("shop_order.customer_phone", index="phone"))
    customer_postcode: Mapped[str | None] = mapped_column(Sealed("shop_order.customer_postcode", index="postcode"))
    customer_name_bidx: Mapped[str | None] = mapped_column(String(64), index=True)
    customer_email_bidx: Mapped[str | None] = mapped_column(String(64), index=True)
    customer_phone_bidx: Mapped[str | None] = mapped_column(String(64), index=True)
    customer_postcode_bidx: Mapped[str | None] = mapped_column(String(64))
    payment_method: Mapped[str] = mapped_column(String(32))
    payment_reference: Mapped[str | None] = mapped_column(String(128))
    shipping_paid: Mapped[Decimal] = mapped_column(default=Decimal(0))
    gift: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    shop_updated_at: Mapped[datetime | None]  # the shop's own "last changed" of the newest push applied
    # When retention or an erasure request removed the shopper's personal data (amounts and dates stay).
    anonymised_at: Mapped[datetime | None]

    lines: Mapped[list[OrderLine]] = relationship(back_populates="order", order_by="OrderLine.id")
    requests: Mapped[list[ReturnRequest]] = relationship(back_populates="order", order_by="ReturnRequest.id")

    @validates("customer_name", "customer_email", "customer_phone", "customer_postcode")
    def _keep_blind_index(self, key: str, value: str | None) -> str | None:
        setattr(self, key + "_bidx", index_of(key.removeprefix("customer_"), value))
        return value


class ApiSignature(Base):
    """A signature the shop API accepted, kept while its timestamp is inside the window so a
    captured request replayed in that window is refused."""

    __tablename__ = "api_signature"

    signature: Mapped[str] = mapped_column(String(80), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class OrderLine(Base):
    __tablename__ = "order_line"
    __table_args__ = (UniqueConstraint("order_id", "line_id", name="uq_order_line_order_id_line_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("shop_order.id"))
    line_id: Mapped[str] = mapped_column(String(64))
    sku: Mapped[str] = mapped_column(String(64), index=True)
    product_name: Mapped[str] = mapped_column(String(255))
    variant: Mapped[str] = mapped_column(String(128), default="")
    category: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[Decimal]
    discount: Mapped[Decimal] = mapped_column(default=Decimal(0))
    tax: Mapped[Decimal] = mapped_column(default=Decimal(0))
    final_sale: Mapped[bool] = mapped_column(Boolean, default=False)

    order: Mapped[Order] = relationship(back_populates="lines")


class ReturnRequest(Base):
    __tablename__ = "return_request"

    id: Mapped[int] = mapped_column(primary_key=True)
    rma: Mapped[str] = mapped_column(String(16), unique=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("shop_order.id"), index=True)
    status: Mapped[str] = mapped_column(String(32), index=True)
    locale: Mapped[str] = mapped_column(String(16), default="en")
    verdict: Mapped[str] = mapped_column(String(16))
    decision: Mapped[dict[str, Any]]
    policy_version: Mapped[str] = mapped_column(String(64))
    # The stored policy version the decision was made under (None for requests older than versions).
    policy_version_id: Mapped[int | None] = mapped_column(ForeignKey("policy_version.id"), index=True)
    value: Mapped[Decimal]
    returnless: Mapped[bool] = mapped_column(Boolean, default=False)
    max_wear: Mapped[float | None] = mapped_column(Float)
    pickup_code: Mapped[str | None] = mapped_column(String(24), unique=True)
    # The admin-kept reason a rejection was given under (reports count them); the shopper reads the note.
    rejection_reason_id: Mapped[int | None] = mapped_column(ForeignKey("rejection_reason.id"))
    carrier: Mapped[str | None] = mapped_column(String(32))
    label_issued_at: Mapped[datetime | None]
    customer_email: Mapped[str | None] = mapped_column(Sealed("return_request.customer_email", index="email"))
    customer_email_bidx: Mapped[str | None] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    order: Mapped[Order] = relationship(back_populates="requests")
    lines: Mapped[list[ReturnLine]] = relationship(back_populates="request", order_by="ReturnLine.id")
    events: Mapped[list[RequestEvent]] = relationship(back_populates="request", order_by="RequestEvent.id")
    photos: Mapped[list[Photo]] = relationship(back_populates="request", order_by="Photo.id")

    @validates("customer_email")
    def _keep_blind_index(self, key: str, value: str | None) -> str | None:
        self.customer_email_bidx = index_of("email", value)
        return value

    @property
    def accepted_lines(self) -> list[ReturnLine]:
        """The lines the request still covers (a reviewer may have turned some down)."""
        return [line for line in self.lines if line.accepted]

    @property
    def exchange_lines(self) -> list[ReturnLine]:
        """Accepted lines that swap for another variant."""
        return [line for line in self.accepted_lines if line.is_exchange]

    @property
    def all_exchanges(self) -> bool:
        """Every accepted line is an exchange (the request ends "exchanged", not "refunded")."""
        return all(line.outcome == Outcome.EXCHANGE for line in self.accepted_lines)

    @property
    def exchange_shipped(self) -> bool:
        return any(line.exchange_shipped_at is not None for line in self.lines)

    @property
    def asked_from(self) -> Status | None:
        """The state the open question to the shopper was asked from (review or a discrepancy)."""
        if self.status != Status.AWAITING_SHOPPER:
            return None
        asked = [e for e in self.events if e.to_status == Status.AWAITING_SHOPPER.value]
        return Status(asked[-1].from_status) if asked and asked[-1].from_status else Status.PENDING_REVIEW

    @property
    def cancellable(self) -> bool:
        """Nothing has shipped either way: not the parcel, not a replacement sent at approval."""
        return (
            Status(self.status) in CANCELLABLE
            and not self.exchange_shipped
            and self.asked_from != Status.DISCREPANCY  # the parcel is already at the warehouse
        )


class ReturnLine(Base):
    __tablename__ = "return_line"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("return_request.id"), index=True)
    order_line_id: Mapped[int] = mapped_column(ForeignKey("order_line.id"), index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(32))
    sub_reason: Mapped[str | None] = mapped_column(String(32))
    responsibility: Mapped[str] = mapped_column(String(16))
    comment: Mapped[str] = mapped_column(Sealed("return_line.comment"), default="")  # the shopper's words
    outcome: Mapped[str] = mapped_column(String(16))
    exchange_sku: Mapped[str | None] = mapped_column(String(64))
    verdict: Mapped[str] = mapped_column(String(16))
    value: Mapped[Decimal]
    # What the warehouse saw: the classifier's ground truth (A as new, B opened, C worn, D damaged).
    grade: Mapped[str | None] = mapped_column(String(1))
    wear_confirmed: Mapped[bool | None] = mapped_column(Boolean)
    # A reviewer may approve some lines and not others.
    staff_decision: Mapped[str | None] = mapped_column(String(16))  # portal.domain.states.LineDecision
    staff_note: Mapped[str | None] = mapped_column(Sealed("return_line.staff_note"))  # shown to the shopper
    refused_fate: Mapped[str | None] = mapped_column(String(24))  # domain.receiving.REFUSED_FATES, when refused
    # Units of ``exchange_sku`` held on the shelf for this line (released on rejection or cancellation).
    reserved_quantity: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # When the replacement was released to ship (never twice).
    exchange_shipped_at: Mapped[datetime | None]

    request: Mapped[ReturnRequest] = relationship(back_populates="lines")
    order_line: Mapped[OrderLine] = relationship()
    photos: Mapped[list[Photo]] = relationship(back_populates="line", order_by="Photo.id")

    @hybrid_property
    def accepted(self) -> bool:
        """Not turned down by a reviewer: the one home of that rule, in Python and in SQL."""
        return self.staff_decision != LineDecision.REJECTED

    @accepted.inplace.expression
    @classmethod
    def _accepted_expression(cls):  # type: ignore[no-untyped-def]
        return or_(cls.staff_decision.is_(None), cls.staff_decision != LineDecision.REJECTED.value)

    @property
    def is_exchange(self) -> bool:
        return self.outcome == Outcome.EXCHANGE and bool(self.exchange_sku)


class Photo(Base):
    __tablename__ = "photo"
    __table_args__ = (UniqueConstraint("request_id", "sha256", name="uq_photo_request_id_sha256"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("return_request.id"), index=True)
    line_id: Mapped[int | None] = mapped_column(ForeignKey("return_line.id"), index=True)
    storage_key: Mapped[str] = mapped_column(String(255), unique=True)
    content_type: Mapped[str] = mapped_column(String(32))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    thumb_key: Mapped[str | None] = mapped_column(String(255))
    source: Mapped[str] = mapped_column(String(16), default="shopper", server_default="shopper")  # shopper | warehouse
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The wear classifier's opinion (advice for staff, never a decision).
    score_state: Mapped[str] = mapped_column(
        String(16), default=ScoreState.PENDING.value, server_default=ScoreState.PENDING.value
    )
    wear_probability: Mapped[float | None] = mapped_column(Float)
    wear_label: Mapped[str | None] = mapped_column(String(16))
    model_version: Mapped[str | None] = mapped_column(String(64))
    score_map: Mapped[list | None] = mapped_column(JSON)
    scored_at: Mapped[datetime | None]
    score_note: Mapped[str | None] = mapped_column(String(255))

    request: Mapped[ReturnRequest] = relationship(back_populates="photos")
    line: Mapped[ReturnLine | None] = relationship(back_populates="photos")


class RequestEvent(Base):
    __tablename__ = "request_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("return_request.id"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_kind: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str | None] = mapped_column(String(64))
    actor: Mapped[Actor] = composite("actor_kind", "actor_id")
    kind: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(32))
    to_status: Mapped[str | None] = mapped_column(String(32))
    note: Mapped[str] = mapped_column(Sealed("request_event.note"), default="")  # may be the shopper's words

    request: Mapped[ReturnRequest] = relationship(back_populates="events")


class OutboxMessage(Base):
    """Notifications and webhooks, written in the same transaction as the change that causes them."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_pending", "sent_at", "available_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    channel: Mapped[str] = mapped_column(String(16))  # "email" | "webhook"
    topic: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(SealedJSON("outbox.payload"))  # addresses, message bodies
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    available_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)


class StaffUser(Base):
    """A back-office account. ``session_version`` changes on logout and disable, ending every session."""

    __tablename__ = "staff_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(255), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    session_version: Mapped[int] = mapped_column(Integer, default=1)
    # The time zone this person reads times in (None: the portal's own).
    timezone: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]

    # Flask-Login protocol
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return f"{self.id}:{self.session_version}"


class Team(Base):
    __tablename__ = "team"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    manager_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    lead: Mapped[StaffUser | None] = relationship(foreign_keys=[lead_id])
    manager: Mapped[StaffUser | None] = relationship(foreign_keys=[manager_id])
    members: Mapped[list[TeamMember]] = relationship(back_populates="team", order_by="TeamMember.id")


class TeamMember(Base):
    __tablename__ = "team_member"
    __table_args__ = (UniqueConstraint("team_id", "staff_id", name="uq_team_member_team_id_staff_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("team.id"), index=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff_user.id"), index=True)
    cap: Mapped[int] = mapped_column(Integer, default=25)
    available: Mapped[bool] = mapped_column(Boolean, default=True)

    team: Mapped[Team] = relationship(back_populates="members")
    staff: Mapped[StaffUser] = relationship()


class RoutingRuleRow(Base):
    """An admin-editable routing rule; ``conditions`` is ``portal.domain.routing.Conditions`` as data."""

    __tablename__ = "routing_rule"

    id: Mapped[int] = mapped_column(primary_key=True)
    position: Mapped[int] = mapped_column(Integer, default=100)
    name: Mapped[str] = mapped_column(String(128))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    conditions: Mapped[dict[str, Any]]
    team_id: Mapped[int] = mapped_column(ForeignKey("team.id"))
    priority: Mapped[str] = mapped_column(String(16), default="normal")
    ticket_class: Mapped[str] = mapped_column(String(1), default="B")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    team: Mapped[Team] = relationship()


class Ticket(Base):
    """The back-office work item for a return request."""

    __tablename__ = "ticket"
    __table_args__ = (
        # Queue pages: open tickets by assignee or team, newest first.
        Index(
            "ix_ticket_open_assignee",
            "assignee_id",
            "created_at",
            postgresql_where=text("status <> 'closed'"),
            sqlite_where=text("status <> 'closed'"),
        ),
        Index(
            "ix_ticket_open_team",
            "team_id",
            "created_at",
            postgresql_where=text("status <> 'closed'"),
            sqlite_where=text("status <> 'closed'"),
        ),
        # The queue's default order, the nearest running deadline first (``due_at``; none last):
        # every ticket, the open ones, and one person's (or nobody's) open ones.
        Index("ix_ticket_due", "due_at", "id"),
        Index(
            "ix_ticket_open_due",
            "due_at",
            "id",
            postgresql_where=text("status <> 'closed'"),
            sqlite_where=text("status <> 'closed'"),
        ),
        Index(
            "ix_ticket_open_assignee_due",
            "assignee_id",
            "due_at",
            "id",
            postgresql_where=text("status <> 'closed'"),
            sqlite_where=text("status <> 'closed'"),
        ),
        # A request has one ticket of its own; the shopper's data requests asked on it have theirs.
        Index(
            "ux_ticket_request_return",
            "request_id",
            unique=True,
            postgresql_where=text("kind = 'return'"),
            sqlite_where=text("kind = 'return'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("return_request.id"), index=True)
    # portal.domain.states.TicketKind: "return" (the request's own ticket) or "data_request".
    kind: Mapped[str] = mapped_column(String(16), default="return", server_default="return")
    team_id: Mapped[int] = mapped_column(ForeignKey("team.id"), index=True)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"), index=True)
    priority: Mapped[str] = mapped_column(String(16), default="normal")
    ticket_class: Mapped[str] = mapped_column(String(1), default="B")
    status: Mapped[str] = mapped_column(String(16), default=TicketStatus.OPEN.value, index=True)
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    rule: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    routing_inputs: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    first_response_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    # The nearest deadline among the ticket's running clocks (None while none runs), so the queue
    # orders by an index rather than by the clocks; every flush that changes a clock sets it
    # (``_keep_due_at``).
    due_at: Mapped[datetime | None]

    request: Mapped[ReturnRequest] = relationship()
    team: Mapped[Team] = relationship()
    assignee: Mapped[StaffUser | None] = relationship()
    events: Mapped[list[TicketEvent]] = relationship(back_populates="ticket", order_by="TicketEvent.id")
    data_request: Mapped[PrivacyRequest | None] = relationship(back_populates="ticket")  # kind "data_request"


class TicketEvent(Base):
    __tablename__ = "ticket_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_kind: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str | None] = mapped_column(String(64))
    actor: Mapped[Actor] = composite("actor_kind", "actor_id")
    kind: Mapped[str] = mapped_column(String(32))
    note: Mapped[str] = mapped_column(Sealed("ticket_event.note"), default="")  # messages to and from the shopper
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    ticket: Mapped[Ticket] = relationship(back_populates="events")


class AuditLog(Base):
    """Sensitive staff actions and every admin change: who, when, what, and the values before and after."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(128))
    detail: Mapped[str] = mapped_column(Text, default="")
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Where the person acted from (the client address as the web server saw it; "cli" for commands),
    # why (asked for when revealing contact details), and which order it concerned (for the filter).
    address: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(String(255))
    order_number: Mapped[str | None] = mapped_column(String(64), index=True)


class PrivacyRequest(Base):
    """A shopper's request for a copy of their data or for its erasure, worked by staff within 30
    calendar days. ``status`` moves open → done (or refused) once; a copy is downloadable by the
    signed-in shopper until ``copy_until``."""

    __tablename__ = "privacy_request"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("shop_order.id"), index=True)
    request_id: Mapped[int | None] = mapped_column(ForeignKey("return_request.id"))  # the status page it came from
    kind: Mapped[str] = mapped_column(String(16))  # portal.domain.privacy.SubjectKind
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    locale: Mapped[str] = mapped_column(String(16), default="en")
    team_id: Mapped[int | None] = mapped_column(ForeignKey("team.id"))
    asked_at: Mapped[datetime] = mapped_column(default=utcnow)
    due_at: Mapped[datetime] = mapped_column(index=True)
    completed_at: Mapped[datetime | None]
    completed_by: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    note: Mapped[str] = mapped_column(Text, default="")
    copy_until: Mapped[datetime | None]
    # The staff ticket that carries its 30-day clock (kind "data_request"); none for older rows.
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("ticket.id"))

    order: Mapped[Order] = relationship()
    team: Mapped[Team | None] = relationship()
    ticket: Mapped[Ticket | None] = relationship(back_populates="data_request")


class BusinessCalendarRow(Base):
    """Working hours in a time zone; holidays and partial days are ``CalendarException`` rows."""

    __tablename__ = "business_calendar"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    timezone: Mapped[str] = mapped_column(String(64))
    weekly: Mapped[dict[str, Any]]  # {"mon": ["09:00-12:00", "13:00-18:00"], ...}
    country: Mapped[str | None] = mapped_column(String(8))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    exceptions: Mapped[list[CalendarException]] = relationship(
        back_populates="calendar", order_by="CalendarException.day"
    )


class CalendarException(Base):
    __tablename__ = "calendar_exception"
    __table_args__ = (UniqueConstraint("calendar_id", "day", name="uq_calendar_exception_calendar_id_day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    calendar_id: Mapped[int] = mapped_column(ForeignKey("business_calendar.id"), index=True)
    day: Mapped[date] = mapped_column(Date)
    hours: Mapped[list] = mapped_column(JSON)  # [] closed all day, or ["09:00-13:00"]
    note: Mapped[str] = mapped_column(String(128), default="")

    calendar: Mapped[BusinessCalendarRow] = relationship(back_populates="exceptions")


class SlaPolicy(Base):
    """Targets per team and priority (team NULL = any team), in business minutes of a calendar."""

    __tablename__ = "sla_policy"
    __table_args__ = (UniqueConstraint("team_id", "priority", name="uq_sla_policy_team_id_priority"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("team.id"))
    priority: Mapped[str] = mapped_column(String(16))
    first_response_minutes: Mapped[int] = mapped_column(Integer)
    resolution_minutes: Mapped[int] = mapped_column(Integer)
    calendar_id: Mapped[int] = mapped_column(ForeignKey("business_calendar.id"))
    # [{"key": "remind", "at_fraction": 0.75, "action": "remind"}, {"key": "lead", "after_breach_minutes": 0, "action": "move_to_lead"}, ...]
    ladder: Mapped[list] = mapped_column(JSON)

    calendar: Mapped[BusinessCalendarRow] = relationship()
    team: Mapped[Team | None] = relationship()


class TicketClock(Base):
    """A persisted ``portal.domain.sla.Clock`` for one metric of one ticket."""

    __tablename__ = "ticket_clock"
    __table_args__ = (
        UniqueConstraint("ticket_id", "metric", name="uq_ticket_clock_ticket_id_metric"),
        # Breaching-soon and breached views look up running clocks (either metric) by deadline,
        # and live clocks whose breach is recorded.
        Index(
            "ix_ticket_clock_running_deadline_any",
            "deadline",
            "ticket_id",
            postgresql_where=text("state = 'running'"),
            sqlite_where=text("state = 'running'"),
        ),
        Index(
            "ix_ticket_clock_live_breach",
            "ticket_id",
            postgresql_where=text("breached_at IS NOT NULL AND state IN ('running', 'paused')"),
            sqlite_where=text("breached_at IS NOT NULL AND state IN ('running', 'paused')"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Looked up by ticket through the unique constraint above, which starts with it (no index of its own).
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id"))
    policy_id: Mapped[int] = mapped_column(ForeignKey("sla_policy.id"))
    calendar_id: Mapped[int] = mapped_column(ForeignKey("business_calendar.id"))
    metric: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), index=True)
    target_minutes: Mapped[float] = mapped_column(Float)
    used_minutes: Mapped[float] = mapped_column(Float, default=0.0)
    started_at: Mapped[datetime]
    changed_at: Mapped[datetime]
    running_since: Mapped[datetime | None]
    deadline: Mapped[datetime | None] = mapped_column(index=True)
    stopped_at: Mapped[datetime | None]
    met: Mapped[bool | None] = mapped_column(Boolean)
    breached_at: Mapped[datetime | None]
    generation: Mapped[int] = mapped_column(Integer, default=0)

    ticket: Mapped[Ticket] = relationship()


# What a clock change can move a ticket's ``due_at`` by.
_DUE_INPUTS = ("state", "deadline", "ticket_id", "ticket")


def running_due(clocks: Iterable[TicketClock]) -> datetime | None:
    """A ticket's ``due_at``: the nearest deadline among its running clocks (None while none runs)."""
    return min((c.deadline for c in clocks if c.state == ClockState.RUNNING and c.deadline is not None), default=None)


def _clock_owner(session: Session, clock: TicketClock) -> Ticket | None:
    """The ticket the clock belongs to once flushed (the object given, or the one its key names)."""
    given = clock.__dict__.get("ticket")
    if given is not None and (clock.ticket_id is None or get_history(clock, "ticket").has_changes()):
        return given
    return session.get(Ticket, clock.ticket_id) if clock.ticket_id is not None else None


@event.listens_for(Session, "before_flush")
def _keep_due_at(session: Session, _context: Any, _instances: Any) -> None:
    """A flush that adds or removes a clock, or changes its state, deadline or ticket, also sets
    ``due_at`` on each ticket concerned, from all of its clocks as they stand after the flush.
    Statements that write ``ticket_clock`` without the ORM (bulk loads) set ``due_at`` themselves."""
    touched = [o for o in (*session.new, *session.deleted) if isinstance(o, TicketClock)]
    touched += [
        o
        for o in session.dirty
        if isinstance(o, TicketClock) and any(get_history(o, name).has_changes() for name in _DUE_INPUTS)
    ]
    if not touched:
        return
    with session.no_autoflush:
        tickets: dict[int, Ticket] = {}  # by identity: a new ticket has no id yet
        for clock in touched:
            before = [session.get(Ticket, i) for i in get_history(clock, "ticket_id").deleted if i is not None]
            for ticket in (_clock_owner(session, clock), *get_history(clock, "ticket").deleted, *before):
                if ticket is not None and ticket not in session.deleted:
                    tickets[id(ticket)] = ticket
        ids = [t.id for t in tickets.values() if t.id is not None]
        stored = session.scalars(select(TicketClock).where(TicketClock.ticket_id.in_(ids))).all() if ids else []
        clocks: dict[int, list[TicketClock]] = {}
        for clock in {*stored, *touched}:
            owner = None if clock in session.deleted else _clock_owner(session, clock)
            if owner is not None:
                clocks.setdefault(id(owner), []).append(clock)
        for key, ticket in tickets.items():
            due = running_due(clocks.get(key, []))
            if ticket.due_at != due:
                ticket.due_at = due


class EscalationDue(Base):
    """One escalation step waiting for its time. A unique key makes a retried schedule harmless;
    ``status`` moves pending → claimed → done exactly once (or cancelled when the clock moves)."""

    __tablename__ = "escalation_due"
    __table_args__ = (
        UniqueConstraint("clock_id", "step_key", "generation", name="uq_escalation_due_clock_step_generation"),
        Index(
            "ix_escalation_due_pending",
            "fire_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index(
            "ix_escalation_due_claimed",
            "claim_expires",
            postgresql_where=text("status = 'claimed'"),
            sqlite_where=text("status = 'claimed'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Looked up by clock through the unique constraint above, which starts with it (no index of its own).
    clock_id: Mapped[int] = mapped_column(ForeignKey("ticket_clock.id"))
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id"), index=True)
    step_key: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(32))
    generation: Mapped[int] = mapped_column(Integer)
    fire_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), default=StepStatus.PENDING.value)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claim_expires: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    done_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(255))


class StaffNotification(Base):
    __tablename__ = "staff_notification"

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff_user.id"), index=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("ticket.id"))
    kind: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text)  # in English: the email, and rows older than ``words``
    # The message as a translatable ``portal.domain.text.Text`` (its dict form), shown in the reader's language.
    words: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    read_at: Mapped[datetime | None]


class CannedReplyRow(Base):
    """An admin-editable reply, suggested by reason codes and keywords, in one language."""

    __tablename__ = "canned_reply"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    locale: Mapped[str] = mapped_column(String(16), default="en")
    body: Mapped[str] = mapped_column(Text)
    reasons: Mapped[list] = mapped_column(JSON, default=list)
    keywords: Mapped[list] = mapped_column(JSON, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # A macro: sending this reply also records this decision ("approve", "reject" or "ask"), or none.
    decision: Mapped[str | None] = mapped_column(String(16))


class CarrierEvent(Base):
    """A tracking event from the carrier; its id makes a replay harmless."""

    __tablename__ = "carrier_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("return_request.id"), index=True)
    carrier: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(32))  # picked_up | in_transit | delivered | exception
    at: Mapped[datetime]
    location: Mapped[str] = mapped_column(String(128), default="")
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReceiptLine(Base):
    """What the warehouse saw for one return line: quantity, grade, wear, disposition."""

    __tablename__ = "receipt_line"
    __table_args__ = (UniqueConstraint("return_line_id", name="uq_receipt_line_return_line_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("return_request.id"), index=True)
    return_line_id: Mapped[int] = mapped_column(ForeignKey("return_line.id"))
    quantity: Mapped[int] = mapped_column(Integer)
    grade: Mapped[str] = mapped_column(String(1))
    wear_confirmed: Mapped[bool] = mapped_column(Boolean, default=False)
    disposition: Mapped[str] = mapped_column(String(24))
    note: Mapped[str] = mapped_column(Text, default="")
    received_by: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)

    return_line: Mapped[ReturnLine] = relationship()


class Discrepancy(Base):
    __tablename__ = "discrepancy"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("return_request.id"), index=True)
    return_line_id: Mapped[int | None] = mapped_column(ForeignKey("return_line.id"))
    kind: Mapped[str] = mapped_column(String(24))  # wrong_item | missing | extra | damaged_in_transit | short_quantity
    quantity: Mapped[int] = mapped_column(Integer, default=0)
    note: Mapped[str] = mapped_column(Text, default="")
    responsibility: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]


class CarrierClaim(Base):
    """A claim against the carrier for units damaged in transit (the logistics side's responsibility)."""

    __tablename__ = "carrier_claim"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("return_request.id"), index=True)
    carrier: Mapped[str] = mapped_column(String(32))
    pickup_code: Mapped[str | None] = mapped_column(String(32))
    units: Mapped[int] = mapped_column(Integer)
    amount: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    note: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Refund(Base):
    """One refund of a request: the approved preview, its idempotency key and its outcome.

    The row and its key are committed before any gateway call; a retry reuses the key.
    """

    __tablename__ = "refund"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("return_request.id"), index=True)
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(24), index=True)  # states.RefundStatus
    provider: Mapped[str] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[Decimal]  # to the original payment method
    store_credit: Mapped[Decimal] = mapped_column(default=Decimal(0))
    preview: Mapped[dict[str, Any]]
    basis_hash: Mapped[str] = mapped_column(String(64))
    approved_by: Mapped[int] = mapped_column(ForeignKey("staff_user.id"))
    approved_at: Mapped[datetime] = mapped_column(default=utcnow)
    second_by: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    second_at: Mapped[datetime | None]
    provider_ref: Mapped[str | None] = mapped_column(String(128))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    executed_at: Mapped[datetime | None]
    processing_since: Mapped[datetime | None]  # when the running attempt claimed it (cleared when settled)

    request: Mapped[ReturnRequest] = relationship()


class StoreCreditCode(Base):
    __tablename__ = "store_credit"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(24), unique=True)
    currency: Mapped[str] = mapped_column(String(3))
    initial: Mapped[Decimal]
    balance: Mapped[Decimal]
    customer_email: Mapped[str | None] = mapped_column(Sealed("store_credit.customer_email"))
    refund_id: Mapped[int | None] = mapped_column(ForeignKey("refund.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LedgerEntry(Base):
    """Every money movement, for reconciliation per day and payment method."""

    __tablename__ = "ledger_entry"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    kind: Mapped[str] = mapped_column(String(24))  # refund | store_credit_issued | store_credit_redeemed
    method: Mapped[str] = mapped_column(String(32))
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[Decimal]
    request_id: Mapped[int | None] = mapped_column(ForeignKey("return_request.id"))
    refund_id: Mapped[int | None] = mapped_column(ForeignKey("refund.id"))
    reference: Mapped[str] = mapped_column(String(128), default="")


class RejectionReason(Base):
    """An admin-kept reason for rejecting a return: picked by staff, counted in reports."""

    __tablename__ = "rejection_reason"

    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class SavedView(Base):
    """A queue view someone saved for themselves: its name and the queue's address query."""

    __tablename__ = "saved_view"
    __table_args__ = (UniqueConstraint("staff_id", "name", name="uq_saved_view_staff_id_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff_user.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    query: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TicketViewer(Base):
    """Who has a ticket open, and since when they were last seen on it (the collision notice)."""

    __tablename__ = "ticket_viewer"

    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id"), primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff_user.id"), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class SandboxPayment(Base):
    """The simulated gateway's own book (its external side): one row per idempotency key."""

    __tablename__ = "sandbox_payment"

    id: Mapped[int] = mapped_column(primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    amount: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    payment_reference: Mapped[str] = mapped_column(String(128), default="")
    calls: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SurveyDue(Base):
    """The satisfaction survey of one finished request: one row per request, sent at most once.
    ``status`` moves pending → claimed → sent (or skipped) exactly once; the delay is applied to
    ``finished_at`` when the sweep runs, so a changed setting holds for surveys not yet sent."""

    __tablename__ = "survey_due"
    __table_args__ = (
        Index(
            "ix_survey_due_pending",
            "finished_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index(
            "ix_survey_due_claimed",
            "claim_expires",
            postgresql_where=text("status = 'claimed'"),
            sqlite_where=text("status = 'claimed'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("return_request.id"), unique=True)
    finished_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), default=SurveyStatus.PENDING.value)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claim_expires: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    sent_at: Mapped[datetime | None]
    # Keyed hash of the address it went to (for the quiet period); never the address itself.
    email_key: Mapped[str | None] = mapped_column(String(64), index=True)
    outcome: Mapped[str | None] = mapped_column(String(64))


class SurveyAnswer(Base):
    """The shopper's answer for one request; changeable for a few days after the first answer."""

    __tablename__ = "survey_answer"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("return_request.id"), unique=True)
    nps: Mapped[int] = mapped_column(Integer)
    satisfaction: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str] = mapped_column(Sealed("survey_answer.comment"), default="")
    answered_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When the answer reopened the request's ticket for its team (once per request).
    followed_up_at: Mapped[datetime | None]


class SurveyOptOut(Base):
    """An address that asked for no more surveys, kept as a keyed hash of the normalised address."""

    __tablename__ = "survey_optout"

    id: Mapped[int] = mapped_column(primary_key=True)
    email_key: Mapped[str] = mapped_column(String(64), unique=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class InsightAlert(Base):
    """A figure past its alert line, told to the leads: the unique key (what, about which, which
    period) makes telling it a second time in the same period impossible."""

    __tablename__ = "insight_alert"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(32))  # return_rate | first_response
    subject: Mapped[str] = mapped_column(String(128))  # the SKU, or "all"
    value: Mapped[str] = mapped_column(String(32))  # the figure when it was told
    fired_at: Mapped[datetime] = mapped_column(default=utcnow)


class PolicyVersion(Base):
    """One numbered version of the return policy (its TOML text). Exactly one is published: the
    active policy of every web host and worker; publishing another (or rolling back) moves the mark."""

    __tablename__ = "policy_version"
    __table_args__ = (
        Index(
            "ix_policy_version_one_published",
            "published",
            unique=True,
            postgresql_where=text("published"),
            sqlite_where=text("published"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[int] = mapped_column(Integer, unique=True)
    label: Mapped[str] = mapped_column(String(64))  # the ``version`` written in the TOML
    source: Mapped[str] = mapped_column(Text)
    checksum: Mapped[str] = mapped_column(String(64))  # sha256 of ``source``
    origin: Mapped[str] = mapped_column(String(16))  # admin | import | file | default
    note: Mapped[str] = mapped_column(String(500), default="")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    published: Mapped[bool] = mapped_column(Boolean, default=False)
    published_at: Mapped[datetime | None]  # the last time it was published
    published_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))

    created_by: Mapped[StaffUser | None] = relationship(foreign_keys=[created_by_id])
    published_by: Mapped[StaffUser | None] = relationship(foreign_keys=[published_by_id])


class JobFailure(Base):
    """A background job that kept failing (a Celery task out of retries, or an in-process job that
    raised): what ran, with which parameters (ids only), the error and where it happened (no
    personal data), how often, and when an admin retried it."""

    __tablename__ = "job_failure"
    __table_args__ = (
        # One open record per job and parameters: workers failing at once count on the same row.
        Index(
            "ix_job_failure_open",
            "fingerprint",
            unique=True,
            postgresql_where=text("resolved_at IS NULL"),
            sqlite_where=text("resolved_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    task: Mapped[str] = mapped_column(String(100))
    args: Mapped[dict[str, Any]]
    fingerprint: Mapped[str] = mapped_column(String(64))  # task and args, to count repeats on one row
    error: Mapped[str] = mapped_column(String(500))
    traceback: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    first_failed_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_failed_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))


class WearThreshold(Base):
    """A merchant's threshold for the wear classifier in one product category, for one model version
    (a threshold fitted to one model's scores means nothing for another's), set from the wear report.
    It comes before ``PORTAL_WEAR_THRESHOLDS``, which comes before the model's own."""

    __tablename__ = "wear_threshold"
    __table_args__ = (UniqueConstraint("model_version", "category", name="uq_wear_threshold_model_version_category"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_version: Mapped[str] = mapped_column(String(120))
    category: Mapped[str] = mapped_column(String(64))  # ``wear.category_key``: trimmed and case-folded
    threshold: Mapped[float] = mapped_column(Float)
    set_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    set_at: Mapped[datetime] = mapped_column(default=utcnow)

    set_by: Mapped[StaffUser | None] = relationship()
