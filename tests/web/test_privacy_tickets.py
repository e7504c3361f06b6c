"""A shopper's data request is worked as a ticket: the privacy team's queue, a 30-calendar-day
resolution clock, the escalation ladder of any ticket, closed when the request is answered, while
the return keeps its own ticket."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask_babel import force_locale, gettext
from sqlalchemy import func, select

from portal.db.models import (
    BusinessCalendarRow,
    EscalationDue,
    PrivacyRequest,
    ReturnRequest,
    SlaPolicy,
    StaffNotification,
    StaffUser,
    Team,
    TeamMember,
    Ticket,
    TicketClock,
)
from portal.domain.privacy import SUBJECT_RESOLUTION_MINUTES
from portal.services.bulk import bulk_action
from portal.services.insights import Filters, backlog
from portal.services.privacy import data_request_tickets
from portal.services.sla import sweep
from portal.services.staff import create_staff
from portal.services.tickets import ensure_team, ticket_for
from tests.helpers import PASSWORD, csrf_token, form_for, login_shopper, sign_in, soup


def _file_return(app):
    shopper = app.test_client()
    login_shopper(shopper, number="SO-1001", contact="li.wei@example.com")
    filed = shopper.post(
        "/order/request", data=form_for(shopper, **{"0": {"quantity": "1", "reason": "size_fit", "outcome": "refund"}})
    )
    return shopper, filed.headers["Location"].rsplit("/", 1)[1]


def _ask(shopper, rma, **data):
    page = shopper.get(f"/requests/{rma}/privacy").get_data(as_text=True)
    return shopper.post(f"/requests/{rma}/privacy", data={"csrf_token": csrf_token(page), **data})


def _privacy_team(session):
    """The privacy team with an agent (who gets the tickets), a lead and a manager."""
    agent = create_staff(session, "pia@example.com", "Pia Agent", "agent", PASSWORD)
    lead = create_staff(session, "lead@example.com", "Lena Lead", "lead", PASSWORD)
    manager = create_staff(session, "max@example.com", "Max Manager", "manager", PASSWORD)
    team = ensure_team(session, "privacy", "Privacy")
    team.lead_id, team.manager_id = lead.id, manager.id
    session.add_all([TeamMember(team_id=team.id, staff_id=agent.id), TeamMember(team_id=team.id, staff_id=lead.id)])
    session.commit()
    return team, agent, lead, manager


def _clock(session, ticket, metric="resolution") -> TicketClock:
    return session.scalars(
        select(TicketClock).where(TicketClock.ticket_id == ticket.id, TicketClock.metric == metric)
    ).one()


def _told(session, staff: StaffUser, ticket: Ticket) -> list[str]:
    session.expire_all()
    return [
        n.kind
        for n in session.scalars(
            select(StaffNotification)
            .where(StaffNotification.staff_id == staff.id, StaffNotification.ticket_id == ticket.id)
            .order_by(StaffNotification.id)
        )
    ]


def test_a_data_request_opens_a_ticket_with_a_30_day_clock_and_escalates_like_any(app, order, session):
    team, agent, lead, manager = _privacy_team(session)
    shopper, rma = _file_return(app)
    req = session.scalars(select(ReturnRequest).where(ReturnRequest.rma == rma)).one()
    own = ticket_for(session, req)
    assert own is not None and own.kind == "return"
    own_before = (own.id, own.status, own.assignee_id, own.escalation_level, own.team_id)

    assert _ask(shopper, rma, kind="copy").status_code == 303
    row = session.scalars(select(PrivacyRequest)).one()
    ticket = row.ticket
    assert ticket is not None and ticket.kind == "data_request" and ticket.request_id == req.id
    assert (ticket.team_id, ticket.status, ticket.assignee_id) == (team.id, "open", agent.id)
    # The privacy team's policy was made: 30 days on a round-the-clock calendar.
    policy = session.scalars(select(SlaPolicy).where(SlaPolicy.team_id == team.id)).one()
    assert policy.resolution_minutes == SUBJECT_RESOLUTION_MINUTES == 30 * 24 * 60
    calendar = session.get(BusinessCalendarRow, policy.calendar_id)
    assert calendar.timezone == "UTC" and len(calendar.weekly) == 7
    assert all(hours == ["00:00-24:00"] for hours in calendar.weekly.values())
    resolution = _clock(session, ticket)
    assert resolution.state == "running" and resolution.deadline == row.asked_at + timedelta(days=30)
    assert resolution.deadline.date() == row.due_at.date()
    # The return's own ticket is the one ticket_for finds, and it is as it was.
    session.expire_all()
    assert ticket_for(session, req).id == own.id != ticket.id
    # A second data request on the same return gets a ticket of its own.
    assert _ask(shopper, rma, kind="erasure", confirm="y").status_code == 303
    assert [t.data_request.kind for t in data_request_tickets(session, req)] == ["copy", "erasure"]
    # The returns figures count the return's own ticket only.
    open_returns = select(func.count(Ticket.id)).where(Ticket.kind == "return", Ticket.status != "closed")
    now = datetime.now(UTC)
    assert sum(r.count for r in backlog(session, Filters(), now)) == session.scalar(open_returns)
    assert backlog(session, Filters(team_id=team.id), now) == []

    # The sweep, run as if days had passed, reminds the assignee, then moves it to the lead, then
    # tells the manager, each once.
    factory = app.extensions["portal.sessionmaker"]
    asked = row.asked_at
    sweep(factory, now=asked + timedelta(days=24))
    assert _told(session, agent, ticket) == []  # 6 days left: too early
    sweep(factory, now=asked + timedelta(days=25, minutes=1))
    assert _told(session, agent, ticket) == ["reminder"]
    sweep(factory, now=asked + timedelta(days=30, minutes=1))
    session.expire_all()
    ticket = session.get(Ticket, ticket.id)
    assert (ticket.assignee_id, ticket.escalation_level) == (lead.id, 1)
    assert _told(session, lead, ticket) == ["escalation"] and _told(session, agent, ticket) == ["reminder", "moved"]
    # The messages name the data request, not only the return it was asked on.
    said = session.scalars(select(StaffNotification.message).where(StaffNotification.ticket_id == ticket.id)).all()
    assert said and all(m.startswith(f"data request {row.id} on {rma}: ") for m in said), said
    assert _clock(session, ticket).breached_at is not None
    sweep(factory, now=asked + timedelta(days=31, minutes=1))
    sweep(factory, now=asked + timedelta(days=40))
    assert _told(session, manager, ticket) == ["escalation"]
    ticket = session.get(Ticket, ticket.id)
    assert ticket.escalation_level == 2
    # Nothing of this touched the return's own ticket.
    own = session.get(Ticket, own_before[0])
    assert (own.id, own.status, own.assignee_id, own.escalation_level, own.team_id) == own_before
    fired = select(EscalationDue).where(EscalationDue.ticket_id == own.id, EscalationDue.status == "done")
    assert session.scalars(fired).all() == []


def test_answering_closes_the_ticket_and_stops_its_clocks(app, order, session):
    team, agent, lead, _manager = _privacy_team(session)
    shopper, rma = _file_return(app)
    assert _ask(shopper, rma, kind="erasure", confirm="y").status_code == 303
    row = session.scalars(select(PrivacyRequest)).one()
    ticket_id = row.ticket_id
    # Bulk approval is for returns: a data request's ticket is refused with a reason.
    (outcome,) = bulk_action(session, lead, "approve", [ticket_id])
    assert not outcome.done and "data request" in outcome.message.render()

    staff = app.test_client()
    sign_in(staff, "lead@example.com")
    page = staff.get(f"/staff/privacy/{row.id}").get_data(as_text=True)
    answered = staff.post(f"/staff/privacy/{row.id}/complete", data={"csrf_token": csrf_token(page), "confirm": "y"})
    assert answered.status_code == 303
    session.expire_all()
    ticket = session.get(Ticket, ticket_id)
    assert ticket.status == "closed" and ticket.closed_at is not None
    clocks = session.scalars(select(TicketClock).where(TicketClock.ticket_id == ticket_id)).all()
    assert {(c.metric, c.state, c.met) for c in clocks} == {
        ("first_response", "stopped", True),
        ("resolution", "stopped", True),
    }
    pending = session.scalars(
        select(EscalationDue).where(EscalationDue.ticket_id == ticket_id, EscalationDue.status == "pending")
    ).all()
    assert pending == []
    # Long after, the sweep has nothing to say about it.
    factory = app.extensions["portal.sessionmaker"]
    sweep(factory, now=row.asked_at + timedelta(days=60))
    assert _told(session, agent, ticket) == [] and _told(session, lead, ticket) == []
    # The erasure itself happened as before.
    req = session.scalars(select(ReturnRequest).where(ReturnRequest.rma == rma)).one()
    assert req.order.anonymised_at is not None and ticket_for(session, req).kind == "return"


def test_queue_and_ticket_pages_show_the_badge_in_both_languages(app, order, session):
    _privacy_team(session)
    shopper, rma = _file_return(app)
    assert _ask(shopper, rma, kind="copy").status_code == 303
    row = session.scalars(select(PrivacyRequest)).one()
    lead = app.test_client()
    sign_in(lead, "lead@example.com")
    token = csrf_token(lead.get("/staff/queue").get_data(as_text=True))
    for lang in ("en", "zh_Hans"):
        lead.post("/lang", data={"csrf_token": token, "lang": lang, "next": "/staff/queue"})
        with app.test_request_context(), force_locale(lang):
            badge = gettext("Data request: copy")
        page = soup(lead.get("/staff/queue?view=team"))
        (tr,) = page.select('tr[data-kind="data_request"]')
        assert tr.select_one(".badge-data-request").get_text(strip=True) == badge
        assert tr.select_one("td.rma a")["href"] == f"/staff/privacy/{row.id}"
        detail = soup(lead.get(f"/staff/privacy/{row.id}"))
        card = detail.select_one("section.ticket")
        assert card.select_one(".badge-data-request").get_text(strip=True) == badge
        assert card.select_one(".clocks .badge") is not None
        assert detail.select_one(f'form[action="/staff/privacy/{row.id}/complete"]') is not None
        # The return's own page lists it and links to the data request's actions.
        own = soup(lead.get(f"/staff/requests/{rma}"))
        assert own.select_one("section.data-requests .badge-data-request").get_text(strip=True) == badge
        assert own.select_one(f'section.data-requests a[href="/staff/privacy/{row.id}"]') is not None
    assert 'lang="zh' in str(page)
    # An agent of the team sees it in the queue too; the row leads to the return (data requests are
    # answered by leads, managers and admins).
    agent = app.test_client()
    sign_in(agent, "pia@example.com")
    (tr,) = soup(agent.get("/staff/queue?view=team")).select('tr[data-kind="data_request"]')
    assert tr.select_one("td.rma a")["href"].startswith(f"/staff/requests/{rma}")
    # Taking it from the data request's page keeps the lead there.
    detail = lead.get(f"/staff/privacy/{row.id}").get_data(as_text=True)
    ticket = session.get(Ticket, row.ticket_id)
    taken = lead.post(
        f"/staff/tickets/{ticket.id}/take",
        data={"csrf_token": csrf_token(detail), "assignee": str(ticket.assignee_id or "")},
    )
    assert taken.status_code == 303 and taken.headers["Location"].endswith(f"/staff/privacy/{row.id}")
    session.expire_all()
    assert session.get(Ticket, ticket.id).assignee.email == "lead@example.com"
    assert session.scalars(select(Team).where(Team.code == "privacy")).one().id == ticket.team_id
