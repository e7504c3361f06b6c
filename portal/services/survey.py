"""The satisfaction survey: due once a request is finished, sent once by the sweep, answered
through a signed link, and a low score or a comment reopens the request's ticket for its team.

Sending follows the escalation sweep (``portal.services.sla``): a sweeper claims due rows with a
conditional update (``SKIP LOCKED`` on PostgreSQL) under a claim token that expires, then writes
the invitation to the outbox and marks the row sent in one transaction. A sweeper killed before
its commit leaves claims that expire and nothing sent; a row already sent is never sent again.

Follow-up: a ticket is one per request, so the request's own ticket is reopened for the team that
handled it (higher priority, an agent assigned and told, a "survey" event with the scores and the
shopper's words) rather than a second ticket beside it. Its SLA clocks are not restarted: the
request itself is finished, and nothing would ever stop them again.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from portal.db.dialects import on_postgresql
from portal.db.locks import lock_rows
from portal.db.models import ReturnRequest, SurveyAnswer, SurveyDue, SurveyOptOut, TicketEvent
from portal.db.upsert import insert_if_absent
from portal.domain.actors import SHOPPER
from portal.domain.errors import Conflict, NotFound
from portal.domain.survey import (
    SurveyAnswerValues,
    SurveyStatus,
    can_change,
    change_deadline,
    check_survey,
    email_key,
    in_quiet_period,
)
from portal.domain.text import N_, Text
from portal.services.outbox import enqueue_email
from portal.services.sla import notify_staff
from portal.services.tickets import assign_ticket, open_ticket, reopen_ticket, ticket_for

log = logging.getLogger("portal.survey")

CLAIM_TTL = timedelta(minutes=5)
# A survey not sent within this long after it fell due (the survey was switched off, the portal
# was down) is dropped: an invitation weeks after the return reads as noise.
STALE_AFTER = timedelta(days=7)
TEMPLATE = "survey_invite"


@dataclass(frozen=True)
class SurveySettings:
    enabled: bool = True
    delay: timedelta = timedelta(hours=24)
    quiet_days: int = 30
    answer_days: int = 7
    link_days: int = 30


def survey_settings(config: Mapping[str, Any]) -> SurveySettings:
    """The survey settings from the configuration (``SURVEY_*``)."""
    return SurveySettings(
        enabled=bool(config.get("SURVEY_ENABLED", True)),
        delay=timedelta(hours=int(config.get("SURVEY_DELAY_HOURS", 24))),
        quiet_days=int(config.get("SURVEY_QUIET_DAYS", 30)),
        answer_days=int(config.get("SURVEY_ANSWER_DAYS", 7)),
        link_days=int(config.get("SURVEY_LINK_DAYS", 30)),
    )


class SurveyClosed(Conflict):
    default = N_("This answer can no longer be changed. Thank you for giving it.")


def _now() -> datetime:
    return datetime.now(UTC)


def _address(request: ReturnRequest) -> str | None:
    return request.order.customer_email or None


# --- due -------------------------------------------------------------------------------------


def schedule_survey(session: Session, request: ReturnRequest, at: datetime | None = None) -> bool:
    """The request is finished: its survey falls due after the delay (no commit). Idempotent: a
    request gets one due row whatever moves it makes afterwards; True when this call added it."""
    if request.id is None:
        session.flush()
    return insert_if_absent(
        session,
        SurveyDue,
        "request_id",
        {
            "request_id": request.id,
            "finished_at": at or _now(),
            "status": SurveyStatus.PENDING.value,
            "attempts": 0,
        },
    )


# --- the sweep -------------------------------------------------------------------------------


@dataclass
class SurveySweep:
    claimed: int = 0
    sent: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _claim(session: Session, now: datetime, ready: datetime, token: str, batch: int) -> list[int]:
    """Claim up to ``batch`` due rows under ``token`` (pending ones first, then expired claims)."""
    pending = (SurveyDue.status == SurveyStatus.PENDING.value) & (SurveyDue.finished_at <= ready)
    expired = (SurveyDue.status == SurveyStatus.CLAIMED.value) & (SurveyDue.claim_expires < now)
    claim = {
        "status": SurveyStatus.CLAIMED.value,
        "claimed_by": token,
        "claim_expires": now + CLAIM_TTL,
        "attempts": SurveyDue.attempts + 1,
    }
    if not on_postgresql(session):
        # SQLite: write first, so the database lock is taken before anything is read (see sla._claim).
        for condition, order in ((pending, SurveyDue.finished_at), (expired, SurveyDue.claim_expires)):
            chosen = select(SurveyDue.id).where(condition).order_by(order).limit(batch).scalar_subquery()
            session.execute(
                update(SurveyDue)
                .where(SurveyDue.id.in_(chosen))
                .values(**claim)
                .execution_options(synchronize_session=False)
            )
        session.commit()
        return list(session.scalars(select(SurveyDue.id).where(SurveyDue.claimed_by == token).order_by(SurveyDue.id)))
    ids: list[int] = []
    for condition, order in ((pending, SurveyDue.finished_at), (expired, SurveyDue.claim_expires)):
        if len(ids) < batch:
            stmt = select(SurveyDue.id).where(condition).order_by(order).limit(batch - len(ids))
            ids += session.scalars(stmt.with_for_update(skip_locked=True))
    if ids:
        session.execute(
            update(SurveyDue).where(SurveyDue.id.in_(ids)).values(**claim).execution_options(synchronize_session=False)
        )
    session.commit()
    return ids


def _send_one(session: Session, row: SurveyDue, now: datetime, settings: SurveySettings, secret: str) -> str:
    """Invite the shopper, or say why not; the row is done either way."""
    request = session.get_one(ReturnRequest, row.request_id)
    address = _address(request)
    outcome = ""
    if address is None:
        outcome = "no address"
    elif row.finished_at < now - settings.delay - STALE_AFTER:
        outcome = "too late"
    else:
        key = email_key(secret, address)
        if on_postgresql(session):
            # Two sweepers with two requests of one address: the second waits and sees the first send.
            session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})
        if session.scalar(select(SurveyOptOut.id).where(SurveyOptOut.email_key == key)) is not None:
            outcome = "opted out"
        else:
            last = session.scalar(
                select(func.max(SurveyDue.sent_at)).where(
                    SurveyDue.email_key == key, SurveyDue.status == SurveyStatus.SENT.value
                )
            )
            if in_quiet_period(last, now, settings.quiet_days):
                outcome = "surveyed recently"
            else:
                enqueue_email(session, address, TEMPLATE, request.locale, {"rma": request.rma, "survey": request.id})
                row.status, row.sent_at, row.email_key = check_survey(row.status, SurveyStatus.SENT).value, now, key
                row.outcome = "sent"
                return f"{request.rma}: sent"
    row.status, row.outcome = check_survey(row.status, SurveyStatus.SKIPPED).value, outcome
    return f"{request.rma}: skipped ({outcome})"


def _send_batch(
    session: Session, ids: list[int], token: str, now: datetime, settings: SurveySettings, secret: str
) -> SurveySweep:
    """Act on our claimed rows and mark them done, in one transaction (a savepoint per row). A row
    whose claim passed to another sweeper meanwhile is left alone."""
    stmt = select(SurveyDue).where(
        SurveyDue.id.in_(ids), SurveyDue.status == SurveyStatus.CLAIMED.value, SurveyDue.claimed_by == token
    )
    if on_postgresql(session):
        stmt = stmt.with_for_update()
    else:
        lock_rows(session, SurveyDue, SurveyDue.id.in_(ids))
    result = SurveySweep()
    for row in session.scalars(stmt.order_by(SurveyDue.id)).all():
        try:
            with session.begin_nested():
                said = _send_one(session, row, now, settings, secret)
        except Exception:  # one broken row must not block the others; its claim expires and it is retried
            log.exception("survey %s failed", row.id)
            continue
        (result.sent if said.endswith(": sent") else result.skipped).append(said)
    session.commit()
    return result


def sweep_surveys(
    factory: sessionmaker[Session],
    settings: SurveySettings,
    secret: str,
    now: datetime | None = None,
    batch: int = 200,
    worker: str = "sweeper",
) -> SurveySweep:
    """Send every due survey once (nothing when the survey is switched off)."""
    result = SurveySweep()
    if not settings.enabled:
        return result
    now = now or _now()
    while True:
        token = f"{worker}:{uuid.uuid4().hex[:12]}"
        with factory() as session:
            ids = _claim(session, now, now - settings.delay, token, batch)
        if not ids:
            return result
        result.claimed += len(ids)
        with factory() as session:
            done = _send_batch(session, ids, token, now, settings, secret)
        result.sent += done.sent
        result.skipped += done.skipped
        if len(ids) < batch:
            return result


# --- answering -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SurveyView:
    """What the survey page shows: the request, the answer so far, and whether it may change."""

    request: ReturnRequest
    answer: SurveyAnswer | None
    changeable: bool
    change_until: datetime | None


def survey_view(session: Session, request_id: int, settings: SurveySettings, now: datetime | None = None) -> SurveyView:
    request = session.get(ReturnRequest, request_id)
    if request is None:
        raise NotFound()
    answer = session.scalars(select(SurveyAnswer).where(SurveyAnswer.request_id == request_id)).one_or_none()
    first = answer.answered_at if answer else None
    return SurveyView(
        request=request,
        answer=answer,
        changeable=can_change(first, now or _now(), settings.answer_days),
        change_until=change_deadline(first, settings.answer_days) if first else None,
    )


def answer_survey(
    session: Session,
    request_id: int,
    values: SurveyAnswerValues,
    settings: SurveySettings,
    now: datetime | None = None,
) -> SurveyAnswer:
    """Record the shopper's answer, or change it while the first answer is recent enough
    (SurveyClosed after that). An answer that needs a follow-up reopens the request's ticket
    once; a later change of a followed-up answer is added to that ticket's timeline."""
    now = now or _now()
    request = session.get(ReturnRequest, request_id)
    if request is None:
        raise NotFound()
    fields = {"nps": values.nps, "satisfaction": values.satisfaction, "comment": values.comment, "updated_at": now}
    created = insert_if_absent(
        session, SurveyAnswer, "request_id", {"request_id": request_id, "answered_at": now, **fields}
    )
    lock_rows(session, SurveyAnswer, SurveyAnswer.request_id == request_id)
    answer = session.scalars(
        select(SurveyAnswer).where(SurveyAnswer.request_id == request_id).execution_options(populate_existing=True)
    ).one()
    if not created:
        if not can_change(answer.answered_at, now, settings.answer_days):
            session.rollback()
            raise SurveyClosed()
        for name, value in fields.items():
            setattr(answer, name, value)
    if answer.followed_up_at is not None and not created:
        _tell_ticket(session, request, values, follow_up=False)
    elif values.needs_follow_up:
        _tell_ticket(session, request, values, follow_up=True)
        answer.followed_up_at = now
    session.commit()
    return answer


def _tell_ticket(session: Session, request: ReturnRequest, values: SurveyAnswerValues, follow_up: bool) -> None:
    ticket = ticket_for(session, request) or open_ticket(session, request)
    scores = {"nps": values.nps, "satisfaction": values.satisfaction}
    ticket.events.append(
        TicketEvent(actor=SHOPPER, kind="survey", note=values.comment[:4000], data={**scores, "follow_up": follow_up})
    )
    if not follow_up:
        return
    reopen_ticket(ticket, raise_priority=True)
    session.flush()
    if ticket.assignee_id is None:
        assign_ticket(session, ticket)
        session.flush()
        session.refresh(ticket)
    notify_staff(
        session,
        ticket.assignee,
        ticket,
        "survey",
        Text(
            N_("%(rma)s: the shopper's survey answer needs a follow-up (recommend %(nps)s/10, satisfaction %(sat)s/5)"),
            {"rma": request.rma, "nps": values.nps, "sat": values.satisfaction},
        ),
    )


# --- opting out ------------------------------------------------------------------------------


def opt_out(session: Session, request_id: int, secret: str, now: datetime | None = None) -> None:
    """No more survey emails to the request's address (idempotent). Only a keyed hash is kept."""
    request = session.get(ReturnRequest, request_id)
    if request is None:
        raise NotFound()
    address = _address(request)
    if address is not None:
        insert_if_absent(
            session, SurveyOptOut, "email_key", {"email_key": email_key(secret, address), "at": now or _now()}
        )
    session.commit()


def opted_out(session: Session, request_id: int, secret: str) -> bool:
    request = session.get(ReturnRequest, request_id)
    address = _address(request) if request is not None else None
    if address is None:
        return False
    key = email_key(secret, address)
    return session.scalar(select(SurveyOptOut.id).where(SurveyOptOut.email_key == key)) is not None
