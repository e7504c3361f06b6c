"""A ticket's ``due_at`` (the queue's default order) is the nearest deadline of its running clocks
after whatever changed them: each service that starts, stops, pauses, resumes, re-targets or
reopens a clock, the sweep, a direct edit, and the migration that added the column."""

from __future__ import annotations

from contextlib import ExitStack
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, func, select, text

from portal import create_app
from portal.db import downgrade, get_engine, make_engine, session_scope, upgrade
from portal.db.models import (
    BusinessCalendarRow,
    EscalationDue,
    ReturnRequest,
    SlaPolicy,
    StaffUser,
    Ticket,
    TicketClock,
)
from portal.domain.actors import Actor
from portal.domain.sla import LadderRow
from portal.services.admin import update_business_calendar, update_sla_policy
from portal.services.filing import answer_question
from portal.services.review import approve_return, ask_shopper
from portal.services.sla import reopen_ticket_clocks, sweep
from portal.services.tickets import reopen_ticket, send_reply
from tests.helpers import app_config, open_coat_ticket, scratch_database, shanghai_desk_with_policy


def due_by_ticket(app) -> dict[int, datetime | None]:
    """Every ticket's stored ``due_at``, read afresh, after checking it against its clocks."""
    nearest = (
        select(func.min(TicketClock.deadline))
        .where(TicketClock.ticket_id == Ticket.id, TicketClock.state == "running")
        .correlate(Ticket)
        .scalar_subquery()
    )
    with session_scope(app) as s:
        rows = s.execute(select(Ticket.id, Ticket.due_at, nearest).order_by(Ticket.id)).all()
    assert rows
    wrong = [(ticket_id, stored, computed) for ticket_id, stored, computed in rows if stored != computed]
    assert not wrong, f"due_at differs from the nearest running deadline: {wrong}"
    return {ticket_id: stored for ticket_id, stored, _ in rows}


def clock_deadline(app, ticket_id: int, metric: str) -> datetime | None:
    with session_scope(app) as s:
        return s.scalar(
            select(TicketClock.deadline).where(TicketClock.ticket_id == ticket_id, TicketClock.metric == metric)
        )


@pytest.fixture
def desk(session):
    """The Shanghai finance desk with a policy for its high-value tickets and the usual ladder."""
    return shanghai_desk_with_policy(session)


def test_due_at_is_the_nearest_running_deadline_after_every_clock_change(app, session, desk):
    start = datetime.now(UTC) - timedelta(hours=3)
    asked, replied = open_coat_ticket(app, "DUE-1", start), open_coat_ticket(app, "DUE-2", start)
    due = due_by_ticket(app)  # started: the first response is due first
    assert due[asked] == clock_deadline(app, asked, "first_response") is not None

    with session_scope(app) as s:  # a reply stops the first-response clock: the resolution is next
        send_reply(s, s.get(Ticket, replied).request, s.get(StaffUser, desk["agent"].id), "We are on it.")
    due = due_by_ticket(app)
    assert due[replied] == clock_deadline(app, replied, "resolution") is not None

    with session_scope(app) as s:  # a question stops one clock and pauses the other: nothing runs
        ask_shopper(s, s.get(Ticket, asked).request, Actor.staff(desk["agent"].id), "Which size?")
    assert due_by_ticket(app)[asked] is None

    with session_scope(app) as s:  # the answer resumes the resolution clock
        answer_question(s, s.get(Ticket, asked).request, "Size M")
    due = due_by_ticket(app)
    assert due[asked] == clock_deadline(app, asked, "resolution") is not None

    before = due
    with session_scope(app) as s:  # new targets re-target the policy's clocks
        manager = s.get(StaffUser, desk["manager"].id)
        remind = [LadderRow(key="remind", when="used", amount="75", action="remind")]
        update_sla_policy(s, manager, s.get(SlaPolicy, desk["policy"].id), 120, 960, remind, datetime.now(UTC))
    due = due_by_ticket(app)
    assert due[asked] > before[asked] and due[replied] > before[replied]

    before = due
    with session_scope(app) as s:  # shorter office hours move the deadlines again
        manager, calendar = s.get(StaffUser, desk["manager"].id), s.get(BusinessCalendarRow, desk["calendar"].id)
        week = {day: "09:00-11:00" for day in ("mon", "tue", "wed", "thu", "fri")}
        update_business_calendar(s, manager, calendar, {**week, "sat": "", "sun": ""}, "", datetime.now(UTC))
    due = due_by_ticket(app)
    assert due[asked] > before[asked]

    # The sweep records breaches and escalates; a breach does not stop a clock, so due_at stays.
    factory = app.extensions["portal.sessionmaker"]
    assert sweep(factory, now=datetime.now(UTC) + timedelta(days=60)).fired
    assert due_by_ticket(app) == due

    with session_scope(app) as s:  # deciding stops both clocks
        approve_return(s, s.get(Ticket, asked).request, Actor.staff(desk["agent"].id))
    assert due_by_ticket(app)[asked] is None

    with session_scope(app) as s:  # a warehouse discrepancy reopens the ticket and its resolution clock
        ticket = s.get(Ticket, asked)
        reopen_ticket(ticket)
        assert reopen_ticket_clocks(s, ticket, datetime.now(UTC), Actor.staff(desk["lead"].id)) == 1
        s.commit()
    assert due_by_ticket(app)[asked] == clock_deadline(app, asked, "resolution") is not None


def test_due_at_follows_clocks_changed_or_removed_directly(app, session, desk):
    ticket_id = open_coat_ticket(app, "DUE-1", datetime.now(UTC) - timedelta(hours=1))
    soon = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)
    with session_scope(app) as s:
        clock = s.scalars(
            select(TicketClock).where(TicketClock.ticket_id == ticket_id, TicketClock.metric == "resolution")
        ).one()
        clock.deadline = soon
        s.commit()
    assert due_by_ticket(app)[ticket_id] == soon
    with session_scope(app) as s:
        clock = s.scalars(select(TicketClock).where(TicketClock.deadline == soon)).one()
        s.execute(delete(EscalationDue).where(EscalationDue.clock_id == clock.id))
        s.delete(clock)
        s.commit()
    assert due_by_ticket(app)[ticket_id] == clock_deadline(app, ticket_id, "first_response") is not None


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def scratch_app(request, tmp_path):
    """An app on a database of its own, migrated to the head (the session's database is left alone)."""
    with ExitStack() as stack:
        url = stack.enter_context(scratch_database(request.param, tmp_path, "portal_due"))
        engine = make_engine(url)
        stack.callback(engine.dispose)
        upgrade(engine)
        app = create_app(app_config(tmp_path / "instance", url))
        stack.callback(lambda: get_engine(app).dispose())
        yield app, engine


def test_the_migration_fills_due_at_from_the_clocks(scratch_app):
    app, engine = scratch_app
    with session_scope(app) as s:
        desk = shanghai_desk_with_policy(s)
        agent = desk["agent"].id
    start = datetime.now(UTC) - timedelta(hours=3)
    running, replied, asked = (open_coat_ticket(app, f"DUE-{n}", start) for n in range(3))
    with session_scope(app) as s:
        send_reply(s, s.get(Ticket, replied).request, s.get(StaffUser, agent), "We are on it.")
    with session_scope(app) as s:
        ask_shopper(s, s.get(Ticket, asked).request, Actor.staff(agent), "Which size?")
    expected = due_by_ticket(app)
    assert expected[running] and expected[replied] and expected[asked] is None

    downgrade(engine, "0032")  # before the column: tickets written then have no due_at
    with engine.connect() as conn:
        assert "due_at" not in [c for c in conn.execute(text("SELECT * FROM ticket")).keys()]
    upgrade(engine)
    assert due_by_ticket(app) == expected
    with session_scope(app) as s:  # the requests are untouched
        assert s.scalar(select(func.count()).select_from(ReturnRequest)) == 3
