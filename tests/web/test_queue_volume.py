"""The queue at volume: what is due first by default, sortable columns and filters in the address,
search by RMA without dashes, pickup code or phone, both clocks per row (a first-response breach
shows), the shopper's reply on the row, and bulk actions that report each ticket."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from portal.db.models import ReturnRequest, StaffNotification, Ticket, TicketClock
from portal.services.staff import create_staff
from tests.helpers import PASSWORD, csrf_token, finance_desk_sla, login_shopper, sign_in, soup, submit_coat


def rows(page) -> list[str]:
    return [a.get_text(strip=True) for a in page.select("#queue-rows td.rma a")]


def clock(session, rma: str, metric: str, deadline: datetime) -> None:
    """Move a ticket's running clock to be due at ``deadline`` (how deadlines are computed is tested elsewhere)."""
    row = session.scalars(
        select(TicketClock)
        .join(Ticket)
        .join(ReturnRequest)
        .where(ReturnRequest.rma == rma, TicketClock.metric == metric)
    ).one()
    row.deadline = deadline
    row.target_minutes = 120
    row.used_minutes = 0
    row.running_since = row.changed_at = deadline - timedelta(hours=2)
    session.commit()


def test_what_is_due_first_comes_first_and_columns_sort_from_the_address(client, app, desk, session):
    finance_desk_sla(session, timezone="UTC")
    now = datetime.now(UTC)
    later = submit_coat(app, "HV-1")
    sooner = submit_coat(app, "HV-2", email="wang@example.com")
    clock(session, later, "resolution", now + timedelta(hours=6))
    clock(session, sooner, "resolution", now + timedelta(hours=1))
    sign_in(client, "agent@example.com")
    assert rows(soup(client.get("/staff/queue?view=all"))) == [sooner, later]
    by_age = soup(client.get("/staff/queue?view=all&sort=age&dir=desc"))
    assert rows(by_age) == [sooner, later]  # newest first
    link = by_age.select_one('#queue-rows th a[aria-current="true"]')
    assert "sort=age" in link["href"] and "dir=asc" in link["href"]  # a second click turns the order round
    # The search keeps the order; the order keeps the search.
    filtered = soup(client.get("/staff/queue?view=all&q=HV&sort=value&dir=desc"))
    assert filtered.select_one('input[name="sort"]')["value"] == "value"
    assert all("q=HV" in a["href"] for a in filtered.select("#queue-rows th a"))
    assert client.get("/staff/queue?view=all&sort=nonsense&dir=sideways").status_code == 200
    for view in ("breaching", "breached"):  # these views join the clocks themselves
        for key in ("due", "value", "wear"):
            assert client.get(f"/staff/queue?view={view}&sort={key}&q=HV").status_code == 200


def test_search_finds_rma_without_dashes_pickup_code_and_phone(client, app, desk, session):
    rma = submit_coat(app, "HV-1")
    other = submit_coat(app, "HV-2", email="wang@example.com")
    req = session.scalars(select(ReturnRequest).where(ReturnRequest.rma == rma)).one()
    req.pickup_code = "P-ABCD-EFGH-JK1"
    req.order.customer_phone = "+86 139 1234 5678"
    session.commit()
    sign_in(client, "agent@example.com")
    assert rows(soup(client.get(f"/staff/queue?view=all&q={rma.replace('-', '').lower()}"))) == [rma]
    assert rows(soup(client.get("/staff/queue?view=all&q=PABCDEFGHJK1"))) == [rma]
    # The phone is encrypted: found by the whole number with its country code, spaced any way.
    assert rows(soup(client.get("/staff/queue?view=all&q=0086-139-1234-5678"))) == [rma]
    assert rows(soup(client.get("/staff/queue?view=all&q=%2B8613912345678"))) == [rma]
    assert other not in rows(soup(client.get("/staff/queue?view=all&q=139-1234")))


def test_a_passed_first_response_deadline_shows_on_the_row(client, app, desk, session):
    finance_desk_sla(session, timezone="UTC")
    now = datetime.now(UTC)
    rma = submit_coat(app, "HV-1")
    clock(session, rma, "first_response", now - timedelta(minutes=30))
    clock(session, rma, "resolution", now + timedelta(hours=8))
    sign_in(client, "agent@example.com")
    row = soup(client.get("/staff/queue?view=all")).select_one("#queue-rows tbody tr")
    cells = row.select("td")
    assert cells[9].select_one(".clock.breached") is not None  # first response
    assert cells[10].select_one(".clock.ok") is not None  # resolution still fine


def test_the_shoppers_reply_shows_on_the_row_and_reaches_the_assignee(client, app, desk, session):
    rma = submit_coat(app, "HV-1")
    sign_in(client, "agent@example.com")
    page = client.get(f"/staff/requests/{rma}").get_data(as_text=True)
    data = {"csrf_token": csrf_token(page), "status": "pending_review", "action": "ask", "note": "Which size?"}
    assert client.post(f"/staff/requests/{rma}/decide", data=data).status_code == 303
    shopper = app.test_client()
    login_shopper(shopper, number="HV-1")
    status = shopper.get(f"/requests/{rma}").get_data(as_text=True)
    answered = shopper.post(f"/requests/{rma}/answer", data={"csrf_token": csrf_token(status), "answer": "Size M"})
    assert answered.status_code == 303
    row = soup(client.get("/staff/queue?view=mine")).select_one("#queue-rows td.rma")
    assert "shopper replied" in row.get_text(" ")
    told = session.scalars(select(StaffNotification).where(StaffNotification.staff_id == desk["agent"])).all()
    assert any(n.kind == "replied" and rma in n.message for n in told)


def bulk(client, action, tickets, **extra):
    page = client.get("/staff/queue?view=all").get_data(as_text=True)
    data = {"csrf_token": csrf_token(page), "action": action, "tickets": [str(t) for t in tickets], **extra}
    return client.post("/staff/queue/bulk", data={**data, "next": "/staff/queue?view=all"}, follow_redirects=True)


def test_bulk_take_note_and_approve_report_each_ticket(client, app, desk, session):
    first = submit_coat(app, "HV-1")
    second = submit_coat(app, "HV-2", email="wang@example.com")
    ids = [t.id for t in session.scalars(select(Ticket).order_by(Ticket.id))]
    sign_in(client, "other@example.com")
    taken = bulk(client, "take", ids)
    assert "2 tickets done." in taken.get_data(as_text=True)
    session.expire_all()
    assert {t.assignee_id for t in session.scalars(select(Ticket))} == {desk["other"]}

    empty_note = bulk(client, "note", ids, note="  ")
    assert "Write the note to add." in empty_note.get_data(as_text=True)
    assert "Tick at least one ticket." in bulk(client, "take", []).get_data(as_text=True)
    assert bulk(client, "take", ["abc"]).status_code == 200  # refused with a message, not a 500

    # The coats need a review: an agent's bulk approval leaves them to a lead, and says so.
    refused = bulk(client, "approve", ids).get_data(as_text=True)
    assert "0 tickets done." in refused and f"{first}: The policy would not approve it on its own" in refused
    create_staff(session, "lead@example.com", "Lee Lead", "lead", PASSWORD)
    lead = app.test_client()
    sign_in(lead, "lead@example.com")
    approved = bulk(lead, "approve", ids).get_data(as_text=True)
    assert "2 tickets done." in approved
    session.expire_all()
    assert {r.status for r in session.scalars(select(ReturnRequest))} == {"label_issued"}
    again = bulk(lead, "approve", ids).get_data(as_text=True)
    assert f"{second}: It is not waiting for a decision." in again


def test_saved_views_belong_to_their_owner_and_keep_only_the_queue_address(client, app, desk, session):
    submit_coat(app, "HV-1")
    sign_in(client, "agent@example.com")
    page = soup(client.get("/staff/queue?view=all&q=HV&sort=value&dir=desc&page=3"))
    form = page.select_one("form.save-view")
    query = form.select_one('input[name="query"]')["value"]
    assert "page=" not in query and "sort=value" in query
    data = {"csrf_token": csrf_token(str(page)), "query": query, "name": "  Big coats  "}
    saved = client.post("/staff/queue/views", data=data, follow_redirects=True)
    link = soup(saved).select_one(".saved-views a")
    assert link.get_text() == "Big coats" and link["aria-current"] == "page"
    assert "q=HV" in link["href"] and "dir=desc" in link["href"]
    refused = client.post("/staff/queue/views", data={**data, "name": " "}, follow_redirects=True)
    assert "Give the view a name." in refused.get_data(as_text=True)

    other = app.test_client()
    sign_in(other, "other@example.com")
    assert not soup(other.get("/staff/queue")).select(".saved-views a")
    from portal.db.models import SavedView

    view_id = session.scalars(select(SavedView.id)).one()
    token = csrf_token(other.get("/staff/queue").get_data(as_text=True))
    assert other.post(f"/staff/queue/views/{view_id}/delete", data={"csrf_token": token}).status_code == 404
    mine = csrf_token(client.get("/staff/queue").get_data(as_text=True))
    assert client.post(f"/staff/queue/views/{view_id}/delete", data={"csrf_token": mine}).status_code == 303
    assert session.scalars(select(SavedView)).all() == []


def test_someone_else_on_the_same_ticket_is_named_before_anyone_acts(client, app, desk, session):
    rma = submit_coat(app, "HV-1")
    sign_in(client, "agent@example.com")
    alone = soup(client.get(f"/staff/requests/{rma}"))
    assert not alone.select(".collision")
    other = app.test_client()
    sign_in(other, "other@example.com")
    page = soup(other.get(f"/staff/requests/{rma}"))
    assert "Ann Agent also has this ticket open" in page.select_one(".collision").get_text()
    # The page keeps saying it is there; the first page hears about the second.
    ticket = session.scalars(select(Ticket)).one()
    fragment = client.post(
        f"/staff/tickets/{ticket.id}/here", headers={"X-CSRFToken": csrf_token(str(alone)), "HX-Request": "true"}
    )
    assert fragment.status_code == 200 and "Olly Other also has this ticket open" in fragment.get_data(as_text=True)
    # Someone who left a minute ago is no longer named.
    from portal.db.models import TicketViewer

    for row in session.scalars(select(TicketViewer)):
        row.seen_at = datetime.now(UTC) - timedelta(minutes=5)
    session.commit()
    assert "also has" not in client.post(
        f"/staff/tickets/{ticket.id}/here", headers={"X-CSRFToken": csrf_token(str(alone))}
    ).get_data(as_text=True)


def test_the_queue_narrows_to_the_returns_behind_a_figure(client, app, desk, session):
    from tests.helpers import COAT, form_for, order_payload, post_json

    coat = submit_coat(app, "HV-1")
    shopper = app.test_client()
    lines = [dict(COAT[0], category="knitwear", sku="KNIT-M", product_name="Jumper")]
    post_json(
        shopper, "/api/v1/orders", {**order_payload("HV-2", lines=lines, email="wang@example.com"), "channel": "wechat"}
    )
    login_shopper(shopper, number="HV-2", contact="wang@example.com")
    data = form_for(shopper, **{"0": {"quantity": "1", "reason": "changed_mind", "outcome": "refund"}})
    jumper = shopper.post("/order/request", data=data).headers["Location"].rsplit("/", 1)[1]
    sign_in(client, "agent@example.com")
    assert rows(soup(client.get("/staff/queue?view=all&category=knitwear"))) == [jumper]
    assert rows(soup(client.get("/staff/queue?view=all&channel=wechat"))) == [jumper]
    assert rows(soup(client.get("/staff/queue?view=all&reason=size_fit"))) == [coat]
    assert rows(soup(client.get("/staff/queue?view=all&status=pending_review&q=HV-2"))) == [jumper]
    assert rows(soup(client.get("/staff/queue?view=all&status=refunded"))) == []
    # Unknown values are ignored, not errors; the filter travels with the sort links.
    assert len(rows(soup(client.get("/staff/queue?view=all&status=nonsense&reason=%27;drop")))) == 2
    page = soup(client.get("/staff/queue?view=all&category=knitwear"))
    assert all("category=knitwear" in a["href"] for a in page.select("#queue-rows th a"))
    assert "Show all again" in page.select_one(".facets").get_text()
    # The insights figure for that category links to exactly those tickets.
    from portal.services.staff import create_staff

    create_staff(session, "lead@example.com", "Lee Lead", "lead", PASSWORD)
    lead = app.test_client()
    sign_in(lead, "lead@example.com")
    board = soup(lead.get("/insights/?period=30"))
    links = {a["href"] for a in board.select('a[href*="category=knitwear"]')}
    assert links and all(rows(soup(lead.get(href))) == [jumper] for href in links)
