"""Tickets: routed by rules stored as data, assigned to the least-loaded agent under their cap."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from portal.db import session_scope
from portal.db.models import ReturnRequest, RoutingRuleRow, StaffUser, TeamMember, Ticket
from portal.domain.orders import parse_order
from portal.domain.policy import load_policy
from portal.services import Conflict
from portal.services.filing import LineRequest, open_return
from portal.services.orders import upsert_order
from portal.services.policies import default_policy_text
from portal.services.tickets import assign_ticket, ensure_team, reroute_if_untouched, take_ticket
from portal.storage import LocalPhotoStore
from tests.helpers import order_payload

POLICY = load_policy(default_policy_text())
NOW = datetime.now(UTC)
COAT = [
    {
        "line_id": "1",
        "sku": "COAT-M",
        "product_name": "Coat",
        "variant": "M",
        "category": "outerwear",
        "quantity": 5,
        "unit_price": "2899.00",
        "discount": "0",
        "tax": "0",
        "final_sale": False,
    }
]


def staff(session, name, role="agent"):
    user = StaffUser(
        email=f"{name}@example.com", name=name, role=role, password_hash="x", active=True, session_version=1
    )
    session.add(user)
    session.flush()
    return user


@pytest.fixture
def teams(session):
    service = ensure_team(session, "service", "Customer service")
    finance = ensure_team(session, "finance", "Finance desk")
    inspection = ensure_team(session, "inspection", "Inspection")
    session.add_all(
        [
            RoutingRuleRow(
                position=10,
                name="worn photos",
                conditions={"min_wear": 0.7},
                team=inspection,
                priority="high",
                ticket_class="C",
            ),
            RoutingRuleRow(
                position=20,
                name="high value",
                conditions={"min_value": "1000"},
                team=finance,
                priority="high",
                ticket_class="A",
            ),
            RoutingRuleRow(
                position=30, name="everything else", conditions={}, team=service, priority="normal", ticket_class="B"
            ),
            RoutingRuleRow(position=5, name="switched off", conditions={}, team=inspection, active=False),
        ]
    )
    session.commit()
    return {"service": service.id, "finance": finance.id, "inspection": inspection.id}


def open_request(app, number, lines=None, quantity=1, reason="size_fit"):
    with session_scope(app) as s:
        order, _ = upsert_order(s, parse_order(order_payload(number, lines=lines)))
        req = open_return(
            s,
            order,
            [LineRequest("1", quantity, reason, outcome="refund")],
            POLICY,
            NOW,
            "en",
            LocalPhotoStore(app.config["PHOTO_PATH"]),
        )
        return req.id


def ticket_for(session, request_id) -> Ticket:
    session.expire_all()
    return session.scalars(select(Ticket).where(Ticket.request_id == request_id)).one()


def test_auto_approved_request_gets_a_closed_ticket(app, session, teams):
    ticket = ticket_for(session, open_request(app, "T-1"))
    assert ticket.status == "closed" and ticket.assignee_id is None
    assert ticket.team_id == teams["service"] and ticket.rule["name"] == "everything else"
    assert [e.kind for e in ticket.events] == ["routed", "closed"]


def test_high_value_is_routed_to_finance_and_assigned(app, session, teams):
    member = staff(session, "fay")
    session.add(TeamMember(team_id=teams["finance"], staff_id=member.id, cap=3))
    session.commit()
    ticket = ticket_for(session, open_request(app, "T-2", lines=COAT))
    assert (ticket.team_id, ticket.priority, ticket.ticket_class) == (teams["finance"], "high", "A")
    assert ticket.status == "open" and ticket.assignee_id == member.id
    assert ticket.routing_inputs["value"] == "2899.00" and ticket.routing_inputs["needs_review"] is True
    assert [e.kind for e in ticket.events] == ["routed", "assigned"]


def test_least_loaded_under_cap_then_unassigned(app, session, teams):
    a, b = staff(session, "ann"), staff(session, "bob")
    session.add_all(
        [
            TeamMember(team_id=teams["finance"], staff_id=a.id, cap=1),
            TeamMember(team_id=teams["finance"], staff_id=b.id, cap=1),
        ]
    )
    session.commit()
    first = ticket_for(session, open_request(app, "T-3", lines=COAT))
    second = ticket_for(session, open_request(app, "T-4", lines=COAT))
    third = ticket_for(session, open_request(app, "T-5", lines=COAT))
    assert {first.assignee_id, second.assignee_id} == {a.id, b.id}
    assert third.assignee_id is None and third.events[-1].kind == "unassigned"


def test_unavailable_and_disabled_agents_are_skipped(app, session, teams):
    away, gone, here = staff(session, "away"), staff(session, "gone"), staff(session, "here")
    gone.active = False
    session.add_all(
        [
            TeamMember(team_id=teams["finance"], staff_id=away.id, available=False),
            TeamMember(team_id=teams["finance"], staff_id=gone.id),
            TeamMember(team_id=teams["finance"], staff_id=here.id),
        ]
    )
    session.commit()
    assert ticket_for(session, open_request(app, "T-6", lines=COAT)).assignee_id == here.id


def test_take_and_stale_take(app, session, teams):
    ticket = ticket_for(session, open_request(app, "T-7", lines=COAT))
    me, other = staff(session, "me"), staff(session, "other")
    session.commit()
    take_ticket(session, ticket.id, other, expected_assignee=None)
    with pytest.raises(Conflict):
        take_ticket(session, ticket.id, me, expected_assignee=None)
    assert ticket_for(session, ticket.request_id).assignee_id == other.id


def test_wear_score_reroutes_an_untouched_ticket(app, session, teams):
    inspector = staff(session, "ivy")
    session.add(TeamMember(team_id=teams["inspection"], staff_id=inspector.id))
    session.commit()
    request_id = open_request(app, "T-8", lines=COAT)
    req = session.get(ReturnRequest, request_id)
    req.max_wear = 0.91
    reroute_if_untouched(session, req)
    session.commit()
    ticket = ticket_for(session, request_id)
    assert ticket.team_id == teams["inspection"] and ticket.assignee_id == inspector.id
    assert "rerouted" in [e.kind for e in ticket.events]


def test_simultaneous_assignments_never_pass_a_cap(app, session, teams):
    """Two tickets assigned at the same moment in two connections: the one-slot agent gets at most one."""
    solo = staff(session, "solo")
    session.add(TeamMember(team_id=teams["finance"], staff_id=solo.id, cap=1))
    session.commit()
    ids = []
    for n in range(2):
        ticket = ticket_for(session, open_request(app, f"T-9{n}", lines=COAT))
        ids.append(ticket.id)
    # Free the agent, then race two assignments.
    for tid in ids:
        session.get(Ticket, tid).assignee_id = None
    session.commit()
    barrier = threading.Barrier(2)
    errors = []

    def worker(tid):
        try:
            with session_scope(app) as s:
                ticket = s.get(Ticket, tid)
                barrier.wait()
                assign_ticket(s, ticket)
                s.commit()
        except Exception as exc:  # reported below: a worker that fails must not pass unnoticed
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(tid,)) for tid in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    session.expire_all()
    assert not errors, errors
    assert (
        session.scalar(select(func.count(Ticket.id)).where(Ticket.assignee_id == solo.id)) == 1
    )  # one got the slot, never two


def test_tickets_waiting_on_the_shopper_do_not_count_against_the_cap(app, session, teams):
    solo = staff(session, "solo")
    session.add(TeamMember(team_id=teams["finance"], staff_id=solo.id, cap=1))
    session.commit()
    first = ticket_for(session, open_request(app, "W-1", lines=COAT))
    assert first.assignee_id == solo.id
    first.status = "waiting"  # as ask_shopper leaves it, clocks paused
    session.commit()
    second = ticket_for(session, open_request(app, "W-2", lines=COAT))
    assert second.assignee_id == solo.id
    third = ticket_for(session, open_request(app, "W-3", lines=COAT))
    assert third.assignee_id is None
