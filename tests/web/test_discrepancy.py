"""A warehouse discrepancy is not a dead end: the agent sees it and accepts what arrived, and
finance then refunds the units received (and nothing that did not come back)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from portal.adapters.carriers import InHouseCourier
from portal.db.models import (
    BusinessCalendarRow,
    CarrierClaim,
    Discrepancy,
    EscalationDue,
    OutboxMessage,
    ReturnRequest,
    SlaPolicy,
    StaffNotification,
    TeamMember,
    Ticket,
    TicketClock,
)
from portal.domain.actors import Actor
from portal.domain.lifecycle import Status
from portal.domain.receiving import Finding, ReceivedLine
from portal.domain.states import TicketStatus
from portal.jobs import build_email
from portal.services.receiving import accept_what_arrived, receive_parcel, refuse_items
from portal.services.refunds import preview_refund, refundable
from portal.services.review import approve_return
from portal.services.staff import create_staff
from portal.services.tickets import DEFAULT_TEAM, ensure_team
from tests.helpers import (
    PASSWORD,
    csrf_token,
    email_text,
    form_for,
    inspected,
    login_shopper,
    order_payload,
    post_json,
    sign_in,
    soup,
    warehouse_worker,
)


def test_agent_accepts_what_arrived_and_finance_refunds_the_units_received(app, client, order, session):
    req = inspected(app, client, session, number="SHORT-1", quantity="2", missing=1)
    assert req.status == Status.DISCREPANCY
    create_staff(session, "agent@example.com", "Ann Agent", "agent", PASSWORD)
    session.commit()
    sign_in(client, "agent@example.com")
    page = client.get(f"/staff/requests/{req.rma}")
    form = soup(page).select_one("form#discrepancy")
    assert form is not None and "Accept what arrived" in form.get_text()
    # A stale page (the status it showed is no longer the request's) changes nothing.
    stale = client.post(
        f"/staff/requests/{req.rma}/accept-arrived", data={"csrf_token": csrf_token(page), "status": "in_transit"}
    )
    assert stale.status_code == 303
    session.expire_all()
    assert session.get(ReturnRequest, req.id).status == Status.DISCREPANCY
    done = client.post(
        f"/staff/requests/{req.rma}/accept-arrived",
        data={"csrf_token": csrf_token(page), "status": "discrepancy", "note": "Shopper kept one; refund the other"},
    )
    assert done.status_code == 303
    session.expire_all()
    req = session.get(ReturnRequest, req.id)
    assert req.status == Status.INSPECTED
    assert "Shopper kept one" in " ".join(e.note or "" for e in req.events)
    # One T-shirt of two came back: 99.00 less its half of the 10.00 line discount.
    assert preview_refund(session, req).refund_total == Decimal("94.00")
    finance = app.test_client()
    create_staff(session, "fay@example.com", "Fay Finance", "finance", PASSWORD)
    session.commit()
    sign_in(finance, "fay@example.com")
    assert req.rma in finance.get("/finance/").get_data(as_text=True)


# --- the agent's side: what arrived, the clock, the other two ways out -----------------


@pytest.fixture
def service_desk(session):
    """The default team with one agent, and an SLA for high priority (what a discrepancy raises to)
    over a calendar open every day."""
    agent = create_staff(session, "agent@example.com", "Ann Agent", "agent", PASSWORD)
    team = ensure_team(session, DEFAULT_TEAM, "Customer service")
    session.add(TeamMember(team_id=team.id, staff_id=agent.id, cap=10))
    week = {d: ["00:00-23:59"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    calendar = BusinessCalendarRow(code="all", name="Every day", timezone="UTC", weekly=week, country=None)
    session.add(calendar)
    session.flush()
    session.add(
        SlaPolicy(
            team_id=None,
            priority="high",
            first_response_minutes=60,
            resolution_minutes=240,
            calendar_id=calendar.id,
            ladder=[{"key": "remind", "at_fraction": 0.75, "action": "remind"}],
        )
    )
    session.commit()
    return agent


def short_parcel(app, client, session, number="SHORT-2"):
    req = inspected(app, client, session, number=number, quantity="2", missing=1)
    session.expire_all()
    return session.get(ReturnRequest, req.id)


def test_a_discrepancy_reopens_the_ticket_with_a_running_clock_and_tells_the_assignee(
    app, client, session, service_desk
):
    req = short_parcel(app, client, session)
    assert req.status == Status.DISCREPANCY
    ticket = session.scalars(select(Ticket).where(Ticket.request_id == req.id)).one()
    assert ticket.status == TicketStatus.OPEN and ticket.assignee_id == service_desk.id
    clocks = {c.metric: c for c in session.scalars(select(TicketClock).where(TicketClock.ticket_id == ticket.id))}
    assert clocks["resolution"].state == "running" and clocks["resolution"].deadline is not None
    steps = session.scalars(select(EscalationDue).where(EscalationDue.ticket_id == ticket.id)).all()
    assert steps and all(s.status == "pending" for s in steps)  # the ladder will fire if nobody acts
    note = session.scalars(select(StaffNotification).where(StaffNotification.staff_id == service_desk.id)).one()
    assert note.kind == "discrepancy" and req.rma in note.message

    # Deciding closes the ticket and stops its clocks.
    accept_what_arrived(session, req, Actor.staff(service_desk.id))
    session.expire_all()
    assert session.get(Ticket, ticket.id).status == TicketStatus.CLOSED
    assert {c.state for c in session.scalars(select(TicketClock).where(TicketClock.ticket_id == ticket.id))} == {
        "stopped"
    }
    assert all(d.resolved_at is not None for d in session.scalars(select(Discrepancy)))


def test_the_agent_sees_expected_beside_arrived_per_line(app, client, session, service_desk):
    req = short_parcel(app, client, session)
    sign_in(client, "agent@example.com")
    page = soup(client.get(f"/staff/requests/{req.rma}"))
    row = page.select_one(f'#arrivals tr[data-line="{req.lines[0].id}"]')
    cells = [td.get_text(" ", strip=True) for td in row.select("td")]
    assert cells[1:3] == ["2", "1"]  # expected 2, arrived 1
    assert cells[3].startswith("A") and "Fewer units than expected × 1" in cells[4] and "not in the parcel" in cells[4]
    assert page.select_one("form#discrepancy-ask") and page.select_one("form#discrepancy-refuse")


def test_asking_the_shopper_pauses_the_clock_and_the_answer_comes_back_to_the_discrepancy(
    app, client, session, service_desk
):
    req = short_parcel(app, client, session)
    sign_in(client, "agent@example.com")
    page = client.get(f"/staff/requests/{req.rma}")
    empty = client.post(
        f"/staff/requests/{req.rma}/discrepancy/ask",
        data={"csrf_token": csrf_token(page), "status": "discrepancy", "question": ""},
    )
    assert empty.status_code == 422
    asked = client.post(
        f"/staff/requests/{req.rma}/discrepancy/ask",
        data={"csrf_token": csrf_token(page), "status": "discrepancy", "question": "Did you keep one T-shirt?"},
    )
    assert asked.status_code == 303
    session.expire_all()
    req = session.get(ReturnRequest, req.id)
    assert req.status == Status.AWAITING_SHOPPER and not req.cancellable
    ticket = session.scalars(select(Ticket).where(Ticket.request_id == req.id)).one()
    resolution = session.scalars(
        select(TicketClock).where(TicketClock.ticket_id == ticket.id, TicketClock.metric == "resolution")
    ).one()
    assert resolution.state == "paused"
    # The shopper sees the question (and no cancel button: the parcel is at the warehouse) and answers.
    shopper = app.test_client()
    login_shopper(shopper, number="SHORT-2")
    status = soup(shopper.get(f"/requests/{req.rma}"))
    assert "Did you keep one T-shirt?" in status.get_text(" ")
    assert not status.select(f'form[action="/requests/{req.rma}/cancel"]')
    answered = shopper.post(
        f"/requests/{req.rma}/answer", data={"csrf_token": csrf_token(str(status)), "answer": "Yes, I kept one."}
    )
    assert answered.status_code == 303
    session.expire_all()
    assert session.get(ReturnRequest, req.id).status == Status.DISCREPANCY
    session.refresh(resolution)
    assert resolution.state == "running"


def two_line_discrepancy(app, client, session, number="SHORT-3") -> ReturnRequest:
    """T-shirt and scarf returned; both arrive, but the scarf is not the one sold (wrong item)."""
    post_json(client, "/api/v1/orders", order_payload(number))
    shopper = app.test_client()
    login_shopper(shopper, number=number)
    shopper.post(
        "/order/request",
        data=form_for(
            shopper,
            **{
                "0": {"quantity": "1", "reason": "size_fit", "outcome": "refund"},
                "1": {"quantity": "1", "reason": "changed_mind", "outcome": "refund"},
            },
        ),
    )
    req = session.scalars(select(ReturnRequest)).one()
    if req.status == Status.PENDING_REVIEW:
        approve_return(session, req, Actor.staff(warehouse_worker(session)), carrier=InHouseCourier())
    tee, scarf = req.lines
    receive_parcel(
        session,
        req,
        warehouse_worker(session),
        [ReceivedLine(tee.id, 1, "A", False, "restock"), ReceivedLine(scarf.id, 1, "C", True, "outlet")],
        [Finding("wrong_item", scarf.id, 1, "a cheaper scarf, not ours")],
    )
    session.expire_all()
    return session.get(ReturnRequest, req.id)


def test_refusing_items_tells_the_shopper_why_and_what_happens_and_refunds_nothing_for_them(
    app, client, session, service_desk
):
    req = two_line_discrepancy(app, client, session)
    assert req.status == Status.DISCREPANCY
    tee, scarf = req.lines
    sign_in(client, "agent@example.com")
    page = client.get(f"/staff/requests/{req.rma}")
    base = {"csrf_token": csrf_token(page), "status": "discrepancy"}
    # Nothing chosen, no reason or no fate: a 422 that says so, and nothing changes.
    nothing = client.post(
        f"/staff/requests/{req.rma}/discrepancy/refuse", data={**base, "reason": "x", "fate": "return_to_shopper"}
    )
    assert nothing.status_code == 422 and "Choose the items you refuse" in nothing.get_data(as_text=True)
    no_fate = client.post(
        f"/staff/requests/{req.rma}/discrepancy/refuse", data={**base, "lines": [str(scarf.id)], "reason": "x"}
    )
    assert no_fate.status_code == 422
    session.expire_all()
    assert session.get(ReturnRequest, req.id).status == Status.DISCREPANCY

    done = client.post(
        f"/staff/requests/{req.rma}/discrepancy/refuse",
        data={
            **base,
            "lines": [str(scarf.id)],
            "reason": "The scarf in the parcel is not the one we sold.",
            "fate": "return_to_shopper",
        },
    )
    assert done.status_code == 303
    session.expire_all()
    req = session.get(ReturnRequest, req.id)
    assert req.status == Status.INSPECTED  # the T-shirt goes on to finance
    assert [line.accepted for line in req.lines] == [True, False]
    preview = preview_refund(session, req)
    assert dict(preview.units) == {"1": 1}  # nothing for the refused scarf
    # The shopper reads why and what happens to it, on the status page and in the email.
    shopper = app.test_client()
    login_shopper(shopper, number="SHORT-3")
    status = soup(shopper.get(f"/requests/{req.rma}")).get_text(" ")
    assert "The scarf in the parcel is not the one we sold." in status and "send it back to you" in status
    refused = [
        m
        for m in session.scalars(select(OutboxMessage).where(OutboxMessage.channel == "email"))
        if m.payload["template"] == "return_items_refused"
    ]
    body = email_text(build_email(app, refused[0]))
    assert "1 × Silk scarf (Red)" in body and "not the one we sold" in body and "send it back to you" in body


def test_refusing_everything_closes_the_request(app, client, session, service_desk):
    req = short_parcel(app, client, session, number="SHORT-4")
    refuse_items(
        session, req, Actor.staff(service_desk.id), {req.lines[0].id}, "Both were worn.", "hold_for_collection"
    )
    session.expire_all()
    req = session.get(ReturnRequest, req.id)
    assert req.status == Status.CLOSED
    assert not refundable(req)  # nothing is waiting for finance


def test_damage_in_transit_records_a_carrier_claim(app, client, session, service_desk):
    post_json(client, "/api/v1/orders", order_payload("DMG-1"))
    shopper = app.test_client()
    login_shopper(shopper, number="DMG-1")
    shopper.post(
        "/order/request", data=form_for(shopper, **{"0": {"quantity": "2", "reason": "size_fit", "outcome": "refund"}})
    )
    req = session.scalars(select(ReturnRequest)).one()
    line = req.lines[0]
    receive_parcel(
        session,
        req,
        warehouse_worker(session),
        [ReceivedLine(line.id, 2, "D", False, "destroy")],
        [Finding("damaged_in_transit", line.id, 1, "box crushed, one shirt torn")],
    )
    claim = session.scalars(select(CarrierClaim)).one()
    # One of two T-shirts worth 188.00 together (2 x 99.00 less the 10.00 discount).
    assert (claim.carrier, claim.units, claim.amount, claim.status) == ("in-house", 1, Decimal("94.00"), "open")
    assert claim.pickup_code == req.pickup_code
    sign_in(client, "agent@example.com")
    page = soup(client.get(f"/staff/requests/{req.rma}")).get_text(" ")
    assert "Claim against in-house for 1 unit(s) damaged in transit" in page
