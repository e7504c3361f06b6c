"""SLA clocks on tickets and the escalation sweep, against the real database."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from portal.db import session_scope
from portal.db.models import (
    BusinessCalendarRow,
    EscalationDue,
    OutboxMessage,
    SlaPolicy,
    StaffNotification,
    StaffUser,
    Ticket,
    TicketClock,
    TicketEvent,
)
from portal.domain.actors import SHOPPER, Actor
from portal.services.review import approve_return
from portal.services.sla import (
    CLAIM_TTL,
    _claim,
    pause_ticket_clocks,
    resume_ticket_clocks,
    retarget_policy_clocks,
    sweep,
)
from tests.helpers import (
    PASSWORD,
    csrf_token,
    open_coat_ticket,
    rollup_rows,
    shanghai_desk_with_policy,
    sign_in,
)

UTC = UTC
# Monday 2026-11-23 10:00 Shanghai = 02:00 UTC.
MONDAY_10 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


@pytest.fixture
def desk(session):
    """Finance desk working 09:00–12:00 and 13:00–18:00 Shanghai time, Monday to Friday; 4h resolution target."""
    desk = shanghai_desk_with_policy(session)
    return {"agent": desk["agent"].id, "lead": desk["lead"].id, "manager": desk["manager"].id}


def open_ticket_at(app, at=MONDAY_10, number="SLA-1") -> int:
    return open_coat_ticket(app, number, at)


def clocks(session, ticket_id):
    session.expire_all()
    return {c.metric: c for c in session.scalars(select(TicketClock).where(TicketClock.ticket_id == ticket_id))}


def factory(app):
    return app.extensions["portal.sessionmaker"]


def test_clocks_start_with_business_hour_deadlines_and_audit(app, session, desk):
    ticket_id = open_ticket_at(app)
    c = clocks(session, ticket_id)
    # 120 business minutes from Mon 10:00: 10-12 → Mon 12:00 Shanghai = 04:00 UTC.
    assert c["first_response"].deadline == datetime(2026, 11, 23, 4, 0, tzinfo=UTC)
    # 240 minutes: 10-12 (120) + 13-15 (120) → Mon 15:00 Shanghai = 07:00 UTC.
    assert c["resolution"].deadline == datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
    events = session.scalars(
        select(TicketEvent).where(TicketEvent.ticket_id == ticket_id, TicketEvent.kind == "deadline")
    ).all()
    assert len(events) == 2 and all(e.data["new_deadline"] for e in events)


def test_sweep_fires_each_step_once_in_order(app, session, desk):
    ticket_id = open_ticket_at(app)
    assert sweep(factory(app), now=MONDAY_10 + timedelta(minutes=30)).fired == []
    # 75% of 120 min = 90 business minutes → 11:30; of 240 → 180 min → 14:00 Shanghai.
    first = sweep(factory(app), now=datetime(2026, 11, 23, 3, 31, tzinfo=UTC))
    assert [f.split(" ")[1] for f in first.fired] == ["first_response/remind:"]
    assert sweep(factory(app), now=datetime(2026, 11, 23, 3, 40, tzinfo=UTC)).fired == []  # not again
    # Resolution breach at 15:00 Shanghai: remind (14:00) and move to lead (15:00).
    at_breach = sweep(factory(app), now=datetime(2026, 11, 23, 7, 0, tzinfo=UTC))
    assert sorted(f.split(" ")[1] for f in at_breach.fired) == ["resolution/lead:", "resolution/remind:"]
    session.expire_all()
    ticket = session.get(Ticket, ticket_id)
    assert ticket.assignee_id == desk["lead"] and ticket.escalation_level == 1
    # Breach + 60 business minutes = 16:00 Shanghai.
    later = sweep(factory(app), now=datetime(2026, 11, 23, 8, 0, tzinfo=UTC))
    assert [f.split(" ")[1] for f in later.fired] == ["resolution/manager:"]
    session.expire_all()
    assert session.get(Ticket, ticket_id).escalation_level == 2
    assert (
        session.scalar(select(func.count(StaffNotification.id)).where(StaffNotification.staff_id == desk["manager"]))
        == 1
    )
    # Two reminders (the clocks fall due hours apart), the lead's "now yours", the agent's "moved to", the manager.
    assert session.scalar(select(func.count(OutboxMessage.id)).where(OutboxMessage.topic == "staff_escalation")) == 5
    assert sweep(factory(app), now=datetime(2026, 11, 30, tzinfo=UTC)).fired == []


def test_pause_over_holiday_and_weekend_then_resume(app, session, desk):
    ticket_id = open_ticket_at(app)
    with session_scope(app) as s:
        ticket = s.get(Ticket, ticket_id)
        # Paused Mon 11:00 (60 of 240 used) until Wed 09:00 (Tuesday is a holiday).
        pause_ticket_clocks(s, ticket, datetime(2026, 11, 23, 3, 0, tzinfo=UTC), Actor.staff(1))
        s.commit()
    assert sweep(factory(app), now=datetime(2026, 11, 24, 12, 0, tzinfo=UTC)).fired == []  # nothing fires while paused
    c = clocks(session, ticket_id)
    assert (
        c["resolution"].state == "paused"
        and c["resolution"].deadline is None
        and round(c["resolution"].used_minutes) == 60
    )
    with session_scope(app) as s:
        resume_ticket_clocks(s, s.get(Ticket, ticket_id), datetime(2026, 11, 25, 1, 0, tzinfo=UTC), SHOPPER)
        s.commit()
    c = clocks(session, ticket_id)
    # 180 minutes left from Wed 09:00 → 12:00 Shanghai = 04:00 UTC.
    assert c["resolution"].deadline == datetime(2026, 11, 25, 4, 0, tzinfo=UTC)
    reasons = [
        e.data["reason"]
        for e in session.scalars(select(TicketEvent).where(TicketEvent.kind == "deadline").order_by(TicketEvent.id))
    ]
    assert reasons.count("pause") == 2 and reasons.count("resume") == 2


def test_policy_change_retargets_running_clocks(app, session, desk):
    ticket_id = open_ticket_at(app)
    with session_scope(app) as s:
        policy = s.scalars(select(SlaPolicy)).one()
        policy.resolution_minutes = 480
        s.flush()
        assert retarget_policy_clocks(s, policy, datetime(2026, 11, 23, 3, 0, tzinfo=UTC), Actor.staff(1)) == 2
    c = clocks(session, ticket_id)
    assert c["resolution"].target_minutes == 480
    # 480 from Mon 10:00: Mon 10-12,13-18 (420) + Wed 09:00-10:00 (Tuesday holiday) → Wed 10:00 = 02:00 UTC.
    assert c["resolution"].deadline == datetime(2026, 11, 25, 2, 0, tzinfo=UTC)


def test_approving_stops_the_clocks_and_cancels_steps(app, session, desk):
    ticket_id = open_ticket_at(app)
    with session_scope(app) as s:
        req = s.get(Ticket, ticket_id).request
        approve_return(s, req, Actor.staff(1), expected_status="pending_review")
    c = clocks(session, ticket_id)
    assert c["first_response"].state == "stopped" and c["resolution"].state == "stopped"
    assert session.scalar(select(func.count(EscalationDue.id)).where(EscalationDue.status == "pending")) == 0
    assert sweep(factory(app), now=datetime(2026, 12, 1, tzinfo=UTC)).fired == []


def test_two_sweepers_at_once_fire_each_step_once(app, session, desk):
    for n in range(6):
        open_ticket_at(app, number=f"SLA-{n}")
    now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    results, barrier = [], threading.Barrier(2)

    def run(name):
        barrier.wait()
        results.append(sweep(factory(app), now=now, batch=4, worker=name))

    threads = [threading.Thread(target=run, args=(f"w{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    fired = [f for r in results for f in r.fired]
    assert len(fired) == len(set(fired)) == 6 * 4  # first-response remind + 3 resolution steps per ticket
    assert session.scalar(select(func.count(EscalationDue.id)).where(EscalationDue.status == "done")) == 24


def test_sweeper_killed_mid_batch_is_retried_once_claims_expire(app, session, desk):
    open_ticket_at(app)
    now = datetime(2026, 11, 23, 3, 31, tzinfo=UTC)
    with factory(app)() as s:
        claimed = _claim(s, now, "dead-worker", 10)  # claimed, then the worker "dies" before acting
    assert len(claimed) == 1
    assert sweep(factory(app), now=now).fired == []  # claim still valid: not taken twice
    later = sweep(factory(app), now=now + CLAIM_TTL + timedelta(seconds=1))
    assert len(later.fired) == 1
    assert sweep(factory(app), now=now + CLAIM_TTL * 3).fired == []


def test_a_claim_takes_at_most_its_batch_and_no_row_twice(app, session, desk):
    """Claims in turn split the due steps between them, each at most its batch; once the claims
    expire, the steps are claimed again (pending steps first, then expired claims)."""
    for n in range(3):
        open_ticket_at(app, number=f"SLA-B{n}")
    now = datetime(2026, 12, 1, tzinfo=UTC)  # every step of the three tickets is due
    due = session.scalar(select(func.count(EscalationDue.id)).where(EscalationDue.status == "pending"))
    taken: dict[str, list[int]] = {}
    for token in ("a", "b", "c", "d"):
        with factory(app)() as s:
            taken[token] = _claim(s, now, token, 5)
    assert [len(ids) for ids in taken.values()] == [5, 5, due - 10, 0]
    everyone = [i for ids in taken.values() for i in ids]
    assert len(set(everyone)) == len(everyone) == due
    session.expire_all()
    for token, ids in taken.items():
        assert set(session.scalars(select(EscalationDue.id).where(EscalationDue.claimed_by == token))) == set(ids)
    with factory(app)() as s:
        again = _claim(s, now + CLAIM_TTL + timedelta(seconds=1), "e", 20)
    assert sorted(again) == sorted(everyone)
    session.expire_all()
    assert set(session.scalars(select(EscalationDue.attempts))) == {2}


def test_a_claim_passes_over_steps_another_sweeper_holds(app, session, desk, database_url):
    """PostgreSQL: rows locked by a sweeper that is claiming them are skipped, not waited for, and
    the claim still takes no more than its batch."""
    if not database_url.startswith("postgresql"):
        pytest.skip("row locks and SKIP LOCKED are PostgreSQL's; SQLite claims under its database lock")
    for n in range(3):
        open_ticket_at(app, number=f"SLA-L{n}")
    now = datetime(2026, 12, 1, tzinfo=UTC)
    with factory(app)() as holder:
        held = list(
            holder.scalars(
                select(EscalationDue.id).order_by(EscalationDue.fire_at, EscalationDue.id).limit(4).with_for_update()
            )
        )
        with factory(app)() as s:
            ids = _claim(s, now, "other", 5)
        assert len(ids) == 5 and not set(ids) & set(held)
        holder.rollback()
    with factory(app)() as s:
        assert set(held) <= set(_claim(s, now, "later", 20))


def test_sweep_cost_follows_due_work(app, session, desk):
    """A sweep with nothing due claims nothing, however many tickets are open."""
    for n in range(5):
        open_ticket_at(app, number=f"SLA-C{n}")
    result = sweep(factory(app), now=MONDAY_10)
    assert (result.claimed, result.fired) == (0, [])


def test_queue_shows_countdown_and_breached_view(app, session, desk):
    import time_machine

    from portal.services.staff import create_staff

    open_ticket_at(app)
    create_staff(session, "boss@example.com", "Boss", "manager", PASSWORD)
    with time_machine.travel(datetime(2026, 11, 23, 5, 0, tzinfo=UTC), tick=False):  # Mon 13:00 Shanghai
        client = app.test_client()
        sign_in(client, "boss@example.com")
        page = client.get("/staff/queue?view=open").get_data(as_text=True)
        assert "2h 00m" in page  # 15:00 deadline, two business hours left
        # Resolution is due at 15:00 (soon); the first response was due at 12:00 (breached).
        assert "Breaching soon (1)" in page and "Breached (1)" in page
    with time_machine.travel(
        datetime(2026, 11, 25, 2, 0, tzinfo=UTC), tick=False
    ):  # Wed 10:00, after Tuesday's holiday
        client = app.test_client()
        sign_in(client, "boss@example.com")
        page = client.get("/staff/queue?view=breached").get_data(as_text=True)
        assert "SLA-1" in page and "Breached (1)" in page
        assert "-4h 00m" in page  # Mon 15:00-18:00 plus Wed 09:00-10:00 overdue, the holiday not counted


def _admin_client(app, session):
    from portal.services.staff import create_staff

    create_staff(session, "root@example.com", "Root", "admin", PASSWORD)
    client = app.test_client()
    sign_in(client, "root@example.com")
    return client


def test_admin_policy_change_retargets_with_audit(app, session, desk):

    import time_machine

    ticket_id = open_ticket_at(app)
    policy = session.scalars(select(SlaPolicy)).one()
    with time_machine.travel(datetime(2026, 11, 23, 3, 0, tzinfo=UTC), tick=False):  # Mon 11:00 Shanghai
        client = _admin_client(app, session)
        page = client.get(f"/admin/sla/{policy.id}").get_data(as_text=True)
        rows = {
            "ladder-0-key": "remind",
            "ladder-0-amount": "75",
            "ladder-0-when": "used",
            "ladder-0-action": "remind",
            "ladder-1-key": "lead",
            "ladder-1-amount": "0",
            "ladder-1-when": "after_deadline",
            "ladder-1-action": "move_to_lead",
            "ladder-2-key": "manager",
            "ladder-2-amount": "60",
            "ladder-2-when": "after_deadline",
            "ladder-2-action": "notify_manager",
        }
        base = {"csrf_token": csrf_token(page), "first_response_minutes": "120", "resolution_minutes": "480"}
        bad = client.post(f"/admin/sla/{policy.id}", data={**base, **rows, "ladder-0-action": "explode"})
        assert bad.status_code == 422 and "Step 1" in bad.get_data(as_text=True)
        ok = client.post(f"/admin/sla/{policy.id}", data={**base, **rows}, follow_redirects=True)
        assert "2 running clocks re-targeted" in ok.get_data(as_text=True)
    c = clocks(session, ticket_id)
    assert c["resolution"].deadline == datetime(2026, 11, 25, 2, 0, tzinfo=UTC)  # as in the service test
    assert any(e.data and e.data.get("reason") == "retarget" for e in session.scalars(select(TicketEvent)))


def test_admin_calendar_holiday_moves_deadlines(app, session, desk):
    import time_machine

    calendar = session.scalars(select(BusinessCalendarRow)).one()
    # A ticket opened Monday 10:00 with a 240-minute target due Monday 15:00; make Monday afternoon a holiday.
    ticket_id = open_ticket_at(app)
    with time_machine.travel(datetime(2026, 11, 23, 3, 0, tzinfo=UTC), tick=False):  # Mon 11:00 Shanghai, 60 min used
        client = _admin_client(app, session)
        page = client.get(f"/admin/calendars/{calendar.id}").get_data(as_text=True)
        assert "2026-11-24 closed company holiday" in page
        form = {
            "csrf_token": csrf_token(page),
            **{d: "09:00-12:00, 13:00-18:00" for d in ("mon", "tue", "wed", "thu", "fri")},
            "sat": "",
            "sun": "",
            "exceptions": "2026-11-24 closed company holiday\n2026-11-23 09:00-12:00 half day",
        }
        bad = client.post(f"/admin/calendars/{calendar.id}", data={**form, "mon": "18:00-09:00"})
        assert bad.status_code == 422
        assert (
            client.post(f"/admin/calendars/{calendar.id}", data={**form, "exceptions": "not-a-date closed"}).status_code
            == 422
        )
        ok = client.post(f"/admin/calendars/{calendar.id}", data=form, follow_redirects=True)
        assert "2 running clocks re-targeted" in ok.get_data(as_text=True)
    c = clocks(session, ticket_id)
    # 180 minutes left from Mon 11:00: Mon 11-12 (60), Tue closed, Wed 09-11 (120) → Wed 11:00 = 03:00 UTC.
    assert c["resolution"].deadline == datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
    session.expire_all()
    days = {e.day.isoformat(): e.note for e in session.get(BusinessCalendarRow, calendar.id).exceptions}
    assert days == {"2026-11-23": "half day", "2026-11-24": "company holiday"}


def test_escalation_shows_as_a_badge_and_a_list(app, session, desk):
    from portal.services.staff import create_staff  # noqa: F401

    open_ticket_at(app)
    sweep(factory(app), now=datetime(2026, 11, 23, 7, 0, tzinfo=UTC))
    lead = session.get(StaffUser, desk["lead"])
    from portal.services.staff import hasher

    lead.password_hash = hasher.hash(PASSWORD)
    session.commit()
    client = app.test_client()
    sign_in(client, "leo@example.com")
    page = client.get("/staff/notifications").get_data(as_text=True)
    assert 'class="count"' in page and "breached; the ticket is now yours" in page
    client.post("/staff/notifications/read", data={"csrf_token": csrf_token(page)})
    assert 'class="count"' not in client.get("/staff/notifications").get_data(as_text=True)


def test_a_batch_costs_a_few_statements_not_a_few_per_step(app, session, desk, monkeypatch):
    """The batch is read up front and written at its commit: more due steps, barely more SQL."""
    from sqlalchemy import event

    import portal.services.outbox as outbox_service
    import portal.services.sla as sla_service
    from portal.db import bulk

    copied: list[str] = []  # the new rows' tables, as insert_rows is asked (COPY on PostgreSQL: no INSERT)

    def insert_rows(session_, entity, rows):
        if rows:
            copied.append(entity.__tablename__)
        bulk.insert_rows(session_, entity, rows)

    monkeypatch.setattr(sla_service, "insert_rows", insert_rows)
    monkeypatch.setattr(outbox_service, "insert_rows", insert_rows)

    def statements_to_fire(n_tickets: int, first: int) -> tuple[int, int]:
        for n in range(first, first + n_tickets):
            open_ticket_at(app, number=f"SLA-S{n}")
        engine = factory(app).kw["bind"]
        seen: list[str] = []
        copied.clear()

        def count(conn, cursor, statement, *args):
            # The outbox is delivered after the commit in this embedded mode, apart from the sweep.
            words = statement.split()
            if not (words[0] in ("SELECT", "UPDATE") and words[1].startswith("outbox")):
                seen.append(statement)

        event.listen(engine, "before_cursor_execute", count)
        try:
            result = sweep(factory(app), now=datetime(2026, 11, 23, 3, 31, tzinfo=UTC), batch=200)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        assert set(result.seconds) == {"claim", "read", "decide", "write", "commit"}
        assert all(seconds >= 0 for seconds in result.seconds.values())
        inserts = [s.split()[2] for s in seen if s.startswith("INSERT")]
        # One statement per table, whatever the number of steps (each notification has its email; the
        # insights' daily rollups count the escalations): the new rows' tables with COPY on PostgreSQL.
        new_rows = ["outbox", "staff_notification", "ticket_event"]
        assert sorted(copied) == new_rows, copied
        postgres = engine.dialect.name == "postgresql"
        assert sorted(inserts) == ["insight_rollup", *([] if postgres else new_rows)], inserts
        return len(result.fired), len(seen) + (len(copied) if postgres else 0)

    fired_few, few = statements_to_fire(2, 0)
    fired_many, many = statements_to_fire(20, 100)
    assert (fired_few, fired_many) == (2, 20)  # each ticket's first-response reminder
    # Fired one by one, each step cost over ten reads and writes; together, ten times the steps cost the same.
    assert many - few <= 2, (few, many)


def test_a_broken_step_does_not_hold_up_its_batch_and_fires_once_when_mended(app, session, desk, monkeypatch):
    import portal.services.sla as sla_service

    ids = [open_ticket_at(app, number=f"SLA-B{n}") for n in range(4)]
    broken = ids[2]
    real_act = sla_service._act

    def act(writes, cache, action, key, ticket, clocks_):
        if ticket.id == broken:
            raise RuntimeError("mail template missing")
        return real_act(writes, cache, action, key, ticket, clocks_)

    monkeypatch.setattr(sla_service, "_act", act)
    now = datetime(2026, 11, 23, 3, 31, tzinfo=UTC)
    first = sweep(factory(app), now=now)
    assert len(first.fired) == 3 and first.dropped == 1
    session.expire_all()
    due = session.scalars(select(EscalationDue).where(EscalationDue.fire_at <= now)).all()
    assert sorted((s.ticket_id, s.status) for s in due) == sorted(
        (t, "claimed" if t == broken else "done") for t in ids
    )
    monkeypatch.setattr(sla_service, "_act", real_act)
    assert sweep(factory(app), now=now).fired == []  # its claim has not expired yet
    mended = sweep(factory(app), now=now + CLAIM_TTL + timedelta(seconds=1))
    assert [f.split(" ")[0] for f in mended.fired] == [session.get(Ticket, broken).request.rma]
    assert sweep(factory(app), now=now + CLAIM_TTL * 3).fired == []
    told = session.scalar(select(func.count(OutboxMessage.id)).where(OutboxMessage.topic == "staff_escalation"))
    assert told == 4  # one reminder per ticket, the mended one included


def test_the_sweep_command_fires_once_and_says_where_the_time_went(app, session, desk, monkeypatch, database_url):
    from click.testing import CliRunner

    from portal.cli import main

    ticket = session.get_one(Ticket, open_ticket_at(app, number="SLA-CLI"))  # opened on a past Monday: all due
    for name in ("INSTANCE_PATH", "SECRET_KEY", "API_SECRET"):
        monkeypatch.setenv(f"PORTAL_{name}", app.config[name])
    monkeypatch.setenv("PORTAL_DATABASE_URL", database_url)
    first = CliRunner().invoke(main, ["sweep", "--once"], catch_exceptions=False)
    assert first.exit_code == 0 and f"{ticket.request.rma} resolution/remind: reminded" in first.output
    fired = session.scalars(select(EscalationDue).where(EscalationDue.status == "done")).all()
    assert fired and f"fired {len(first.output.splitlines()) - 2}," in first.output
    assert re.search(
        r"^time: claim [\d.]+ s, read [\d.]+ s, decide [\d.]+ s, write [\d.]+ s, commit", first.output, re.M
    )
    again = CliRunner().invoke(main, ["sweep", "--once"], catch_exceptions=False)
    assert again.output == "claimed 0, fired 0, dropped 0\n"


def test_the_insights_rollups_count_the_fired_steps_as_a_rebuild_would(app, session, desk):
    """The sweep writes step states without the ORM's flush: it tells the rollups itself."""
    from portal.services.insights import rebuild_rollups

    rebuild_rollups(session, "Asia/Shanghai")  # the rollups are kept from here on
    for n in range(3):
        open_ticket_at(app, number=f"SLA-R{n}")
    result = sweep(factory(app), now=datetime(2026, 11, 23, 7, 0, tzinfo=UTC))
    assert len(result.fired) >= 6  # each ticket's two reminders and its move to the lead
    kept = rollup_rows(session)
    counted = {key[5]: value[0] for key, value in kept.items() if key[0] == "escalation"}
    done = session.scalars(select(EscalationDue).where(EscalationDue.status == "done")).all()
    assert sum(counted.values()) == len(done) >= 6
    rebuild_rollups(session, "Asia/Shanghai")
    assert rollup_rows(session) == kept


def test_the_garbage_collector_waits_for_a_batch_and_is_back_after_it(app, session, desk, monkeypatch):
    """A batch is fired with Python's cyclic collector paused (it kept collecting the batch's objects
    as they piled up); it is running again after the batch, whether the batch fired or failed."""
    import gc

    import portal.services.sla as sla_service

    open_ticket_at(app, number="SLA-G1")
    real = sla_service._fire_batch
    seen: list[bool] = []

    def fire(*args, **kwargs):
        seen.append(gc.isenabled())
        return real(*args, **kwargs)

    monkeypatch.setattr(sla_service, "_fire_batch", fire)
    assert gc.isenabled()
    result = sweep(factory(app), now=datetime(2026, 11, 23, 3, 31, tzinfo=UTC))
    assert len(result.fired) == 1 and seen == [False] and gc.isenabled()

    open_ticket_at(app, number="SLA-G2")

    def broken(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(sla_service, "_fire_batch", broken)
    with pytest.raises(RuntimeError):
        sweep(factory(app), now=datetime(2026, 11, 23, 3, 31, tzinfo=UTC))
    assert gc.isenabled()
