"""The queue's order and its cost: rows without a value to sort by come last whichever way a column
sorts, the tab badges count each view (up to a limit), and a page reads its rows in a fixed number
of statements."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import event, select

from portal.db import get_engine
from portal.db.models import ReturnRequest, Ticket, TicketClock
from portal.domain.actors import SYSTEM
from portal.services.sla import pause_ticket_clocks
from portal.web.staff import routes as staff_routes
from tests.helpers import finance_desk_sla, sign_in, soup, submit_coat


def rows(response) -> list[str]:
    return [a.get_text(strip=True) for a in soup(response).select("#queue-rows td.rma a")]


def ticket_of(session, rma: str) -> Ticket:
    return session.scalars(select(Ticket).join(ReturnRequest).where(ReturnRequest.rma == rma)).one()


def test_rows_without_a_value_come_last_whichever_way_a_column_sorts(client, app, desk, session):
    finance_desk_sla(session, timezone="UTC")
    sooner, later, waiting = (submit_coat(app, f"HV-{n}", email=f"shopper{n}@example.com") for n in (1, 2, 3))
    now = datetime.now(UTC)
    for rma, hours in ((sooner, 1), (later, 6)):
        for clock in session.scalars(select(TicketClock).where(TicketClock.ticket_id == ticket_of(session, rma).id)):
            clock.deadline = now + timedelta(hours=hours)
    pause_ticket_clocks(session, ticket_of(session, waiting), now, SYSTEM)  # no running clock: no due time
    for rma, wear in ((sooner, 0.2), (later, 0.7)):
        ticket_of(session, rma).request.max_wear = wear  # the third has no wear score
    session.commit()
    sign_in(client, "agent@example.com")
    assert rows(client.get("/staff/queue?view=all")) == [sooner, later, waiting]
    assert rows(client.get("/staff/queue?view=all&sort=due&dir=desc")) == [later, sooner, waiting]
    assert rows(client.get("/staff/queue?view=all&sort=wear")) == [sooner, later, waiting]
    assert rows(client.get("/staff/queue?view=all&sort=wear&dir=desc")) == [later, sooner, waiting]
    assert rows(client.get("/staff/queue?view=all&q=HV&sort=due&dir=desc")) == [later, sooner, waiting]


def test_the_tab_badges_count_each_view(client, app, desk, session):
    finance_desk_sla(session, timezone="UTC")
    now = datetime.now(UTC)
    mine, unassigned, breached = (submit_coat(app, f"HV-{n}", email=f"shopper{n}@example.com") for n in (1, 2, 3))
    ticket_of(session, mine).assignee_id = desk["agent"]
    ticket_of(session, unassigned).assignee_id = None
    ticket_of(session, breached).assignee_id = desk["other"]
    for clock in session.scalars(select(TicketClock).where(TicketClock.ticket_id == ticket_of(session, breached).id)):
        clock.deadline = now - timedelta(minutes=5)
    session.commit()
    sign_in(client, "agent@example.com")
    tabs = [a.get_text(" ", strip=True) for a in soup(client.get("/staff/queue?view=all")).select("nav.tabs a")]
    for badge in ("My tickets (1)", "My teams (3)", "Unassigned (1)", "Breached (1)"):
        assert badge in tabs, tabs


def test_a_queue_page_reads_its_rows_in_a_fixed_number_of_statements(client, app, desk, session):
    """Each row's request, order, lines and products come with the page's queries, not one query per row."""
    engine = get_engine(app)
    statements: list[str] = []

    def record(_conn, _cursor, statement, _params, _context, _many):
        statements.append(statement)

    def statements_for(path: str) -> int:
        statements.clear()
        event.listen(engine, "before_cursor_execute", record)
        try:
            assert client.get(path).status_code == 200
        finally:
            event.remove(engine, "before_cursor_execute", record)
        return len(statements)

    submit_coat(app, "HV-1", email="shopper1@example.com")
    sign_in(client, "agent@example.com")
    one = statements_for("/staff/queue?view=all"), statements_for("/staff/queue?view=all&q=HV")
    for n in range(2, 5):
        submit_coat(app, f"HV-{n}", email=f"shopper{n}@example.com")
    assert len(rows(client.get("/staff/queue?view=all&q=HV"))) == 4
    four = statements_for("/staff/queue?view=all"), statements_for("/staff/queue?view=all&q=HV")
    assert four == one


def test_counts_past_the_limit_say_more_than_it_and_the_pages_go_on(client, app, desk, session, monkeypatch):
    """The badges and the total count no further than a limit (a count reads every ticket it counts):
    past it they say so, and the pager still finds every page (it looks one row ahead, not at the total)."""
    monkeypatch.setattr(staff_routes, "PAGE_SIZE", 2)
    rmas = [submit_coat(app, f"HV-{n}", email=f"shopper{n}@example.com") for n in range(1, 6)]
    for rma in rmas:
        ticket_of(session, rma).assignee_id = desk["agent"]
    session.commit()
    sign_in(client, "agent@example.com")

    def page(path: str) -> tuple[list[str], str, list[str], bool]:
        html = soup(client.get(path))
        tabs = [a.get_text(" ", strip=True) for a in html.select("nav.tabs a")]
        total = html.select_one("#queue-rows p.muted").get_text(strip=True)
        following = any(a.get_text(strip=True) == "Next" for a in html.select("nav.pager a"))
        return tabs, total, [a.get_text(strip=True) for a in html.select("#queue-rows td.rma a")], following

    tabs, total, _, _ = page("/staff/queue?view=mine")
    assert "My tickets (5)" in tabs and total == "5 tickets"  # within the limit: exact

    monkeypatch.setattr(staff_routes, "QUEUE_COUNT_LIMIT", 3)
    tabs, total, first, following = page("/staff/queue?view=mine")
    assert "My tickets (3+)" in tabs and "Unassigned (0)" in tabs, tabs
    assert total == "More than 3 tickets" and len(first) == 2 and following
    seen = list(first)
    for number in (2, 3):
        tabs, total, rows_here, following = page(f"/staff/queue?view=mine&page={number}")
        assert total == "More than 3 tickets"
        seen += rows_here
        assert following == (number < 3)
    assert sorted(seen) == sorted(rmas)  # every ticket on some page, none twice

    monkeypatch.setattr(staff_routes, "QUEUE_COUNT_LIMIT", 5)
    tabs, total, _, _ = page("/staff/queue?view=mine")
    assert "My tickets (5)" in tabs and total == "5 tickets"  # exactly at the limit: still exact
