"""Escalations without noise, against the real database: one notification per step per person
(both clocks merged when they fall due within minutes), the previous assignee told where the ticket
went, no "now yours" to whoever already had it, one timeline event per step, a recorded breach that
survives a policy edited back, and first-response breaches in the Breached and Breaching-soon views.

Time is passed to the sweep as ``now``; nothing waits."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from portal.db import session_scope
from portal.db.models import (
    EscalationDue,
    OutboxMessage,
    SlaPolicy,
    StaffNotification,
    Ticket,
    TicketClock,
    TicketEvent,
)
from portal.db.queries import queue_counts, queue_total, ticket_queue
from portal.domain.actors import Actor
from portal.domain.sla import add_business_minutes
from portal.services.sla import calendar_of, queue_clocks, retarget_policy_clocks, sweep
from tests.helpers import PASSWORD, SLA_LADDER, open_coat_ticket, shanghai_desk, sign_in, soup

MONDAY_10 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # Monday 10:00 in Shanghai


def shanghai(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """A wall time in Shanghai in November 2026, as UTC (Shanghai is UTC+8 all year)."""
    return datetime(2026, 11, day, hour, minute, second, tzinfo=UTC) - timedelta(hours=8)


@pytest.fixture
def desk(session):
    """The finance desk, 09:00-12:00 and 13:00-18:00 Shanghai time on weekdays (Tuesday a holiday),
    with an agent who takes new tickets, a lead and a manager. ``policy(first, resolution)`` adds its SLA."""
    desk = shanghai_desk(session, PASSWORD)
    agent, lead, manager, team, calendar = (desk[k] for k in ("agent", "lead", "manager", "team", "calendar"))

    def policy(first_response: int, resolution: int) -> SlaPolicy:
        row = SlaPolicy(
            team_id=team.id,
            priority="high",
            first_response_minutes=first_response,
            resolution_minutes=resolution,
            calendar_id=calendar.id,
            ladder=SLA_LADDER,
        )
        session.add(row)
        session.commit()
        return row

    return {"agent": agent.id, "lead": lead.id, "manager": manager.id, "policy": policy, "calendar": calendar}


def open_ticket(app, number="NOISE-1", at=MONDAY_10) -> int:
    return open_coat_ticket(app, number, at)


def factory(app):
    return app.extensions["portal.sessionmaker"]


def notes(session, staff_id) -> list[str]:
    session.expire_all()
    return list(
        session.scalars(
            select(StaffNotification.message)
            .where(StaffNotification.staff_id == staff_id)
            .order_by(StaffNotification.id)
        )
    )


def step_events(session, ticket_id) -> list[TicketEvent]:
    session.expire_all()
    return list(
        session.scalars(
            select(TicketEvent)
            .where(TicketEvent.ticket_id == ticket_id, TicketEvent.kind.in_(("step", "escalated")))
            .order_by(TicketEvent.id)
        )
    )


def clock_rows(session, ticket_id) -> dict[str, TicketClock]:
    session.expire_all()
    return {c.metric: c for c in session.scalars(select(TicketClock).where(TicketClock.ticket_id == ticket_id))}


def test_both_clocks_reminding_within_minutes_is_one_notification_and_one_event(app, session, desk):
    desk["policy"](120, 130)  # reminders at 90 and 97.5 business minutes: 11:30 and 11:37:30
    ticket_id = open_ticket(app)
    assert session.get(Ticket, ticket_id).assignee_id == desk["agent"]
    cal = calendar_of(desk["calendar"])
    c = clock_rows(session, ticket_id)
    remind_fr = add_business_minutes(cal, MONDAY_10, 0.75 * 120)
    remind_res = add_business_minutes(cal, MONDAY_10, 0.75 * 130)
    assert (remind_fr, remind_res) == (shanghai(23, 11, 30), shanghai(23, 11, 37, 30))
    assert c["resolution"].deadline == shanghai(23, 13, 10)  # 120 before lunch, 10 after
    # A sweep every minute through the morning, as the scheduler would run it.
    fired = []
    for minute in range(0, 121):
        fired += sweep(factory(app), now=MONDAY_10 + timedelta(minutes=minute)).fired
    assert [f.split(" ")[1] for f in fired] == ["first_response/remind:", "resolution/remind:"]
    messages = notes(session, desk["agent"])
    assert len(messages) == 1
    assert "first response due at 2026-11-23 04:00 UTC" in messages[0]
    assert "resolution due at 2026-11-23 05:10 UTC" in messages[0]
    assert notes(session, desk["lead"]) == [] and notes(session, desk["manager"]) == []
    events = step_events(session, ticket_id)
    assert len(events) == 1 and events[0].kind == "step"
    assert events[0].data["metrics"] == ["first_response", "resolution"]
    assert events[0].data["notified"] == [desk["agent"]]
    steps = session.scalars(select(EscalationDue).where(EscalationDue.step_key == "remind")).all()
    assert {s.status for s in steps} == {"done"}
    assert session.scalar(select(func.count(OutboxMessage.id)).where(OutboxMessage.topic == "staff_escalation")) == 1


def test_reminders_hours_apart_stay_two_but_each_once(app, session, desk):
    desk["policy"](120, 240)  # 11:30 and 14:00: not within minutes, so two reminders
    ticket_id = open_ticket(app)
    for hour in (3, 4, 6, 6):
        sweep(factory(app), now=datetime(2026, 11, 23, hour, 1, tzinfo=UTC))
    messages = notes(session, desk["agent"])
    assert len(messages) == 2 and "first response" in messages[0] and "resolution" in messages[1]
    assert [e.data["metrics"] for e in step_events(session, ticket_id)] == [["first_response"], ["resolution"]]


def test_a_late_sweep_merges_reminders_that_were_due_together(app, session, desk):
    desk["policy"](120, 240)
    open_ticket(app)
    result = sweep(factory(app), now=shanghai(23, 14, 30))  # the sweeper was down: both reminders are overdue
    assert len(result.fired) == 2
    assert len(notes(session, desk["agent"])) == 1


def test_moving_to_the_lead_tells_the_previous_assignee_where_it_went(app, session, desk):
    desk["policy"](120, 130)
    ticket_id = open_ticket(app)
    sweep(factory(app), now=shanghai(23, 11, 40))  # the reminders
    result = sweep(factory(app), now=shanghai(23, 13, 10))  # the resolution deadline
    assert [f.split(" ")[1] for f in result.fired] == ["resolution/lead:"]
    session.expire_all()
    ticket = session.get(Ticket, ticket_id)
    assert ticket.assignee_id == desk["lead"] and ticket.escalation_level == 1
    lead_says, agent_says = notes(session, desk["lead"]), notes(session, desk["agent"])
    assert len(lead_says) == 1 and lead_says[0].endswith("resolution breached; the ticket is now yours")
    assert agent_says[-1].endswith("resolution breached; the ticket moved to Leo")
    assert len(agent_says) == 2  # the merged reminder, then the move
    lead_events = [e for e in step_events(session, ticket_id) if e.data["step"] == "lead"]
    assert len(lead_events) == 1 and lead_events[0].kind == "escalated"
    assert (lead_events[0].data["from_staff"], lead_events[0].data["to_staff"]) == (desk["agent"], desk["lead"])
    assert sorted(lead_events[0].data["notified"]) == sorted([desk["lead"], desk["agent"]])
    # An hour of business time after the breach the manager hears, once; the timeline has each step once.
    sweep(factory(app), now=shanghai(23, 14, 10))
    assert clock_rows(session, ticket_id)["resolution"].breached_at == shanghai(23, 13, 10)  # recorded by the sweep
    sweep(factory(app), now=shanghai(23, 17, 0))
    assert len(notes(session, desk["manager"])) == 1
    assert Counter(e.data["step"] for e in step_events(session, ticket_id)) == {"remind": 1, "lead": 1, "manager": 1}


def test_no_now_yours_for_a_lead_who_already_had_the_ticket(app, session, desk):
    desk["policy"](120, 130)
    ticket_id = open_ticket(app)
    ticket = session.get(Ticket, ticket_id)
    ticket.assignee_id = desk["lead"]
    session.commit()
    sweep(factory(app), now=shanghai(23, 11, 40))
    sweep(factory(app), now=shanghai(23, 13, 10))
    lead_says = notes(session, desk["lead"])
    assert len(lead_says) == 2  # one reminder (both clocks), one for the breach
    assert not any("now yours" in m for m in lead_says)
    assert lead_says[1].endswith("resolution breached; you already have the ticket")
    assert notes(session, desk["agent"]) == []
    session.expire_all()
    assert session.get(Ticket, ticket_id).assignee_id == desk["lead"]
    assert len([e for e in step_events(session, ticket_id) if e.data["step"] == "lead"]) == 1


@pytest.mark.parametrize("swept", [True, False], ids=["breach-seen-by-sweep", "breach-seen-by-the-edit"])
def test_editing_a_policy_back_keeps_the_breach(app, session, desk, swept):
    policy = desk["policy"](120, 130)
    ticket_id = open_ticket(app)
    with session_scope(app) as s:  # tightened at 10:15: resolution due 10:30
        row = s.get(SlaPolicy, policy.id)
        row.resolution_minutes = 30
        s.flush()
        retarget_policy_clocks(s, row, shanghai(23, 10, 15), Actor.staff(desk["lead"]))
        s.commit()
    assert clock_rows(session, ticket_id)["resolution"].deadline == shanghai(23, 10, 30)
    if swept:
        assert [f.split(" ")[1] for f in sweep(factory(app), now=shanghai(23, 10, 31)).fired] == [
            "resolution/remind:",
            "resolution/lead:",
        ]
    with session_scope(app) as s:  # restored at 11:00: the deadline moves back to 13:10
        row = s.get(SlaPolicy, policy.id)
        row.resolution_minutes = 130
        s.flush()
        retarget_policy_clocks(s, row, shanghai(23, 11, 0), Actor.staff(desk["lead"]))
        s.commit()
    c = clock_rows(session, ticket_id)["resolution"]
    assert c.deadline == shanghai(23, 13, 10)  # the future deadline moved
    assert c.breached_at == shanghai(23, 10, 30)  # the breach did not go away
    now = shanghai(23, 11, 5)
    ticket = session.get(Ticket, ticket_id)
    state = queue_clocks(session, [ticket], now)[ticket_id]["resolution"]
    assert state["breached"] and not state["soon"] and state["breached_at"] == shanghai(23, 10, 30)
    breached = session.scalars(ticket_queue("breached", desk["lead"], now=now)).unique().all()
    assert [t.id for t in breached] == [ticket_id]
    # The escalation the breach earned is not pushed back: the manager hears an hour after 10:30.
    sweep(factory(app), now=shanghai(23, 11, 31))
    assert len(notes(session, desk["manager"])) == 1
    session.expire_all()
    assert session.get(Ticket, ticket_id).escalation_level == 2
    assert Counter(e.data["step"] for e in step_events(session, ticket_id))["lead"] == 1


def test_a_breach_that_never_happened_is_not_recorded_by_an_edit(app, session, desk):
    policy = desk["policy"](120, 130)
    ticket_id = open_ticket(app)
    with session_scope(app) as s:
        row = s.get(SlaPolicy, policy.id)
        row.resolution_minutes = 30
        s.flush()
        retarget_policy_clocks(s, row, shanghai(23, 10, 15), Actor.staff(desk["lead"]))
        row.resolution_minutes = 130
        s.flush()
        retarget_policy_clocks(s, row, shanghai(23, 10, 20), Actor.staff(desk["lead"]))  # before 10:30
        s.commit()
    c = clock_rows(session, ticket_id)["resolution"]
    assert c.breached_at is None and c.deadline == shanghai(23, 13, 10)
    assert session.scalar(queue_total("breached", desk["lead"], now=shanghai(23, 11, 0))) == 0


def test_a_first_response_breach_puts_the_ticket_in_the_breached_view(app, session, desk):
    desk["policy"](120, 2400)  # first response due 12:00 Monday; resolution days away
    ticket_id = open_ticket(app)
    ticket = session.get(Ticket, ticket_id)
    now = shanghai(23, 13, 30)  # half an hour of business time after the first-response deadline
    both = queue_clocks(session, [ticket], now)[ticket_id]
    assert both["first_response"]["breached"] and both["first_response"]["remaining"] == pytest.approx(-30)
    assert not both["resolution"]["breached"] and not both["resolution"]["soon"]
    for view, expected in (("breached", [ticket_id]), ("breaching", [])):
        assert [t.id for t in session.scalars(ticket_queue(view, desk["lead"], now=now)).unique()] == expected
        assert session.scalar(queue_total(view, desk["lead"], now=now)) == len(expected)
    counts = session.execute(queue_counts(("breaching", "breached"), desk["lead"], now)).one()
    assert tuple(counts) == (0, 1)


def test_a_first_response_due_soon_puts_the_ticket_in_the_breaching_soon_view(app, session, desk):
    desk["policy"](120, 2400)
    ticket_id = open_ticket(app)
    ticket = session.get(Ticket, ticket_id)
    now = shanghai(23, 11, 0)  # first response due in an hour
    both = queue_clocks(session, [ticket], now)[ticket_id]
    assert both["first_response"]["soon"] and both["first_response"]["remaining"] == pytest.approx(60)
    assert not both["resolution"]["soon"]
    for view, expected in (("breaching", [ticket_id]), ("breached", [])):
        assert [t.id for t in session.scalars(ticket_queue(view, desk["lead"], now=now)).unique()] == expected
        assert session.scalar(queue_total(view, desk["lead"], now=now)) == len(expected)
    # Answered in time: the first-response clock stops and the ticket leaves the view.
    with session_scope(app) as s:
        from portal.services.sla import stop_ticket_clocks

        stop_ticket_clocks(s, s.get(Ticket, ticket_id), now, Actor.staff(desk["agent"]), ("first_response",), "replied")
        s.commit()
    assert session.scalar(queue_total("breaching", desk["lead"], now=now)) == 0


def test_the_staff_queue_lists_a_first_response_breach(app, session, desk):
    import time_machine

    desk["policy"](120, 2400)
    open_ticket(app)
    with time_machine.travel(shanghai(23, 13, 30), tick=False):
        client = app.test_client()
        sign_in(client, "mia@example.com")
        page = soup(client.get("/staff/queue?view=breached"))
        assert "NOISE-1" in page.get_text()
        assert "Breached (1)" in page.get_text() and "Breaching soon (0)" in page.get_text()


def test_two_sweepers_at_once_still_send_one_reminder_per_ticket(app, session, desk):
    import threading

    desk["policy"](120, 130)
    tickets = [open_ticket(app, number=f"NOISE-{n}") for n in range(6)]
    results, barrier = [], threading.Barrier(2)

    def run(name):
        barrier.wait()
        results.append(sweep(factory(app), now=shanghai(23, 11, 45), batch=2, worker=name))

    threads = [threading.Thread(target=run, args=(f"w{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    fired = [f for r in results for f in r.fired]
    assert len(fired) == len(set(fired)) == 12  # both reminders of each ticket, each reported once
    session.expire_all()
    per_ticket = Counter(
        session.scalars(select(StaffNotification.ticket_id).where(StaffNotification.staff_id == desk["agent"]))
    )
    assert per_ticket == dict.fromkeys(tickets, 1)
    assert Counter(e.ticket_id for t in tickets for e in step_events(session, t)) == dict.fromkeys(tickets, 1)


def test_the_ticket_timeline_tells_each_step_once_in_words(app, session, desk):
    desk["policy"](120, 130)
    ticket_id = open_ticket(app)
    for when in (shanghai(23, 11, 40), shanghai(23, 13, 10), shanghai(23, 14, 10)):
        sweep(factory(app), now=when)
    rma = session.get(Ticket, ticket_id).request.rma
    client = app.test_client()
    sign_in(client, "mia@example.com")
    items = [li.get_text(" ", strip=True) for li in soup(client.get(f"/staff/requests/{rma}")).select("ol.timeline li")]
    said = [i for i in items if "Reminded" in i or "Escalated" in i]
    assert len(said) == 3, said
    assert "Reminded Agnes about the due time (First response, Resolution)" in said[0]
    assert "Escalated to level 1 (Resolution breached): moved from Agnes to Leo" in said[1]
    assert "Escalated to level 2 (Resolution breached): told Mia" in said[2]


def test_notifications_are_kept_in_words_and_read_in_the_readers_language(app, session, desk):
    from portal.domain.text import Text

    desk["policy"](120, 130)
    open_ticket(app)
    sweep(factory(app), now=shanghai(23, 13, 10))  # the reminder (both clocks) and the move to the lead
    session.expire_all()
    moved = session.scalars(
        select(StaffNotification).where(StaffNotification.staff_id == desk["agent"], StaffNotification.kind == "moved")
    ).one()
    words = Text.from_dict(moved.words)
    assert words.to_dict() == moved.words and words.render() == moved.message  # stored words round-trip
    # The clocks inside the sentence are words of their own, translated with it.
    assert words.render(lambda msgid: {"resolution": "RES"}.get(msgid, msgid)).endswith(
        "RES breached; the ticket moved to Leo"
    )
    client = app.test_client()
    sign_in(client, "agnes@example.com")
    english = soup(client.get("/staff/notifications")).select_one("ul.plain").get_text(" ", strip=True)
    assert "resolution breached; the ticket moved to Leo" in english
    assert "first response due at 2026-11-23 04:00 UTC; resolution due at 2026-11-23 05:10 UTC" in english
    chinese = soup(client.get("/staff/notifications", headers={"Accept-Language": "zh-CN,zh;q=0.9"}))
    assert "解决时限已超时；工单已转给Leo" in chinese.select_one("ul.plain").get_text(" ", strip=True)


def test_the_ticket_page_shows_a_first_response_that_came_late_as_missed(app, session, desk):
    from portal.services.sla import pause_ticket_clocks, stop_ticket_clocks

    desk["policy"](120, 240)
    ticket_id = open_ticket(app)
    with session_scope(app) as s:  # answered at 13:30, after the 12:00 first-response deadline; then waiting
        ticket = s.get(Ticket, ticket_id)
        stop_ticket_clocks(s, ticket, shanghai(23, 13, 30), Actor.staff(desk["agent"]), ("first_response",), "replied")
        pause_ticket_clocks(s, ticket, shanghai(23, 16, 0), Actor.staff(desk["agent"]))  # resolution was due 15:00
        s.commit()
    rma = session.get(Ticket, ticket_id).request.rma
    client = app.test_client()
    sign_in(client, "mia@example.com")
    badges = [b.get_text(" ", strip=True) for b in soup(client.get(f"/staff/requests/{rma}")).select("p.clocks .badge")]
    assert badges == ["First response: missed", "Resolution: paused · breached"]


def test_breaching_soon_and_breached_counts_stop_at_their_cap_and_stay_right(app, session, desk):
    """The tab counts match tickets against no more clocks than the cap needs (a big desk may have
    thousands due soon); up to the cap they are exact, past it they say "more"."""
    desk["policy"](120, 130)  # both clocks due at 12:00 and 12:10: two matching clocks per ticket
    ids = [open_ticket(app, number=f"NOISE-{n}") for n in range(1, 6)]
    # The first ticket is closed with its clocks left running (as a broken row might be): its clocks
    # come first in the table and must not fill the count's share of clocks.
    with session_scope(app) as s:
        s.get(Ticket, ids[0]).status = "closed"
        s.commit()
    now = shanghai(23, 11, 0)
    listed = [t.id for t in session.scalars(ticket_queue("breaching", desk["lead"], now=now)).unique()]
    assert sorted(listed) == ids[1:]  # the list itself is not capped
    for limit, expected in ((1, 2), (2, 3), (3, 4), (4, 4), (10, 4)):
        counts = session.execute(queue_counts(("breaching", "breached"), desk["lead"], now, limit=limit)).one()
        assert tuple(counts) == (expected, 0), limit
        assert session.scalar(queue_total("breaching", desk["lead"], now=now, limit=limit)) == expected
        # Narrowed or searched, the count is exact up to its cap the other way (nothing stops early).
        assert session.scalar(queue_total("breaching", desk["lead"], now=now, priority="high", limit=limit)) == expected
    later = shanghai(23, 14, 0)  # both deadlines passed: the same tickets, now breached
    assert tuple(session.execute(queue_counts(("breaching", "breached"), desk["lead"], later, limit=1)).one()) == (0, 2)
    assert tuple(session.execute(queue_counts(("breaching", "breached"), desk["lead"], later)).one()) == (0, 4)
