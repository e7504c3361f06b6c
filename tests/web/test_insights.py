"""The insights dashboard with real data: the figures shown equal the ones counted independently
from the rows, every chart is an SVG image carrying the same numbers as the table beside it, days
are the shop's, roles see what they may, and a figure past its line is told to the leads once."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from portal.adapters.payments import SandboxGateway
from portal.db.models import (
    InsightAlert,
    OrderLine,
    Refund,
    ReturnLine,
    ReturnRequest,
    StaffNotification,
    StaffUser,
    SurveyAnswer,
    Ticket,
)
from portal.services.insights import insight_settings, notify_alerts
from portal.services.refunds import approve_refund, execute_refund, preview_refund
from portal.services.staff import create_staff
from tests.helpers import PASSWORD, finance_user, inspected, order_payload, post_json, sign_in, soup, submit_coat


def _client(app, session, email, role):
    create_staff(session, email, email.split("@")[0].title(), role, PASSWORD)
    client = app.test_client()
    sign_in(client, email)
    return client


@pytest.fixture
def lead(app, session):
    return _client(app, session, "lead@example.com", "lead")


def _cells(page, section: str, key: str) -> list[str]:
    row = soup(page).select_one(f'#{section} tr[data-key="{key}"]')
    assert row is not None, (section, key)
    return [cell.get_text(" ", strip=True) for cell in row.select("th, td")]


def _pct(part: int, whole: int) -> str:
    return f"{Decimal(part * 100) / Decimal(whole):.1f} %"


def _refund(app, session, req) -> Refund:
    factory = app.extensions["portal.sessionmaker"]
    preview = preview_refund(session, req)
    refund = approve_refund(session, req, finance_user(session, "fay"), preview.basis_hash, "sandbox", Decimal(10000))
    return execute_refund(factory, refund.id, SandboxGateway(factory))


def test_return_rates_equal_the_rows_counted_by_hand(app, client, order, session, lead):
    inspected(app, client, session)  # a second order of the same lines, both T-shirts sent back
    post_json(client, "/api/v1/orders", order_payload("SO-2002", email="other@example.com"))
    page = lead.get("/insights/?period=30").get_data(as_text=True)

    lines = session.scalars(select(OrderLine)).all()
    returned = [
        rl
        for rl in session.scalars(select(ReturnLine)).all()
        if rl.request.status not in ("cancelled", "rejected") and rl.accepted
    ]
    for sku in {line.sku for line in lines}:
        sold = sum(line.quantity for line in lines if line.sku == sku)
        orders = len({line.order_id for line in lines if line.sku == sku})
        back = sum(rl.quantity for rl in returned if rl.order_line.sku == sku)
        requests = len({rl.request_id for rl in returned if rl.order_line.sku == sku})
        cells = _cells(page, 'return-rates table[data-dimension="sku"]', sku)
        assert cells[:3] == [sku, str(sold), str(back)]
        assert cells[3].startswith(_pct(back, sold))
        assert cells[4:] == [str(orders), str(requests), _pct(requests, orders)]
    sold_all = sum(line.quantity for line in lines)
    back_all = sum(rl.quantity for rl in returned)
    assert _cells(page, "return-rates", "all") == [
        str(sold_all),
        str(back_all),
        _pct(back_all, sold_all),
        "3",
        "1",
        _pct(1, 3),
    ]
    # The T-shirt figure links to its tickets in the queue.
    link = soup(page).select_one('#return-rates tr[data-key="TEE-S"] th a')
    assert link["href"] == "/staff/queue?view=all&q=TEE-S"
    # The channel filter (a plain GET) keeps only matching orders.
    other = lead.get("/insights/?period=30&channel=app").get_data(as_text=True)
    assert _cells(other, "return-rates", "all")[:2] == ["0", "0"]


def test_first_response_mean_and_p90_in_wall_clock_minutes(app, session, desk, lead):
    for n in range(4):
        submit_coat(app, number=f"HV-{n}", email=f"s{n}@example.com")
    tickets = session.scalars(select(Ticket).order_by(Ticket.id)).all()
    assert len(tickets) == 4
    start = datetime.now(UTC) - timedelta(hours=5)
    for ticket, minutes in zip(tickets, (10, 20, 50, 12.5), strict=True):
        ticket.created_at = start
        ticket.first_response_at = start + timedelta(minutes=minutes)
    session.commit()
    waits = sorted((t.first_response_at - t.created_at).total_seconds() / 60 for t in tickets)
    mean = sum(waits) / len(waits)
    p90 = waits[math.ceil(0.9 * len(waits)) - 1]
    page = lead.get("/insights/").get_data(as_text=True)
    assert _cells(page, "first-response", "wall") == ["Wall clock minutes", f"{mean:.1f}", f"{p90:.1f}"]
    assert "The mean is above the line." not in page
    app.config["FIRST_RESPONSE_ALERT_MINUTES"] = 20
    assert "The mean is above the line." in lead.get("/insights/").get_data(as_text=True)


def test_a_refund_at_23_30_in_shanghai_counts_that_day(app, client, order, session, lead):
    req = inspected(app, client, session)
    refund = _refund(app, session, req)
    refund = session.get(Refund, refund.id)
    refund.executed_at = datetime(2026, 10, 31, 15, 30, tzinfo=UTC)  # 23:30 on the 31st in Shanghai
    session.commit()
    page = lead.get("/insights/?period=month&month=2026-10").get_data(as_text=True)
    cells = _cells(page, "money", f"2026-10-31-{refund.currency}")
    assert cells[0] == "2026-10-31"
    assert soup(page).select_one("#money td[data-refunded]")["data-refunded"] == f"{refund.amount:.2f}"
    # The UTC day would have been the 31st too, but the first of November in Shanghai starts at 16:00 UTC.
    refund.executed_at = datetime(2026, 10, 31, 16, 30, tzinfo=UTC)
    session.commit()
    assert "2026-10-31-" not in lead.get("/insights/?period=month&month=2026-10").get_data(as_text=True)
    november = lead.get("/insights/?period=month&month=2026-11").get_data(as_text=True)
    assert _cells(november, "money", f"2026-11-01-{refund.currency}")[0] == "2026-11-01"


def test_days_in_london_across_the_end_of_march(app, client, order, session, lead):
    app.config["BABEL_DEFAULT_TIMEZONE"] = "Europe/London"
    req = inspected(app, client, session)
    refund = session.get(Refund, _refund(app, session, req).id)
    # 23:30 UTC on the 30th is 00:30 on the 31st in summer time; on the 28th (winter time) it is 23:30 that day.
    for at, day in (
        (datetime(2026, 3, 30, 23, 30, tzinfo=UTC), "2026-03-31"),
        (datetime(2026, 3, 28, 23, 30, tzinfo=UTC), "2026-03-28"),
        (datetime(2026, 3, 29, 0, 30, tzinfo=UTC), "2026-03-29"),
    ):
        refund.executed_at = at
        session.commit()
        page = lead.get("/insights/?period=month&month=2026-03").get_data(as_text=True)
        assert [row["data-key"] for row in soup(page).select("#money tr[data-key]")] == [f"{day}-{refund.currency}"]
    # 23:30 UTC on the 31st is already April in London.
    refund.executed_at = datetime(2026, 3, 31, 23, 30, tzinfo=UTC)
    session.commit()
    assert (
        soup(lead.get("/insights/?period=month&month=2026-03").get_data(as_text=True)).select("#money tr[data-key]")
        == []
    )


def test_value_recovered_by_disposition(app, client, order, session, lead):
    req = inspected(app, client, session)
    page = lead.get("/insights/").get_data(as_text=True)
    expected = sum(rl.value for rl in req.lines)  # every unit came back and was restocked
    cell = soup(page).select_one(f'#recovered tr[data-key="restock-{req.order.currency}"] td[data-value]')
    assert Decimal(cell["data-value"]) == expected.quantize(Decimal("0.01"))


def test_charts_are_svg_images_with_the_table_numbers(app, client, order, session, lead):
    inspected(app, client, session)
    page = lead.get("/insights/?period=30").get_data(as_text=True)
    images = soup(page).select("img.insight-chart")
    assert len(images) >= 10 and all(img["src"].startswith("/insights/charts/") for img in images)
    response = lead.get("/insights/charts/rates.svg?period=30")
    assert response.status_code == 200 and response.mimetype == "image/svg+xml"
    svg = response.get_data(as_text=True)
    assert svg.startswith("<svg") and "<script" not in svg and "<?xml" not in svg
    assert "script-src" not in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    # The T-shirt's rates in the table are the values the bars carry.
    cells = _cells(page, 'return-rates table[data-dimension="sku"]', "TEE-S")
    for text in (cells[3], cells[6]):
        value = text.split(" %")[0]
        assert f">{float(value):g}%<" in svg
    assert ">TEE-S<" in svg
    # The page itself keeps its strict policy: no inline script or style anywhere.
    headers = lead.get("/insights/").headers["Content-Security-Policy"]
    assert "unsafe-inline" not in headers
    assert not soup(page).select("script:not([src])") and not soup(page).select("[style]")
    for img in images:
        chart = lead.get(img["src"])
        assert chart.status_code == 200 and chart.get_data(as_text=True).startswith("<svg"), img["src"]


def test_htmx_gets_the_board_alone_and_bad_periods_are_refused(lead):
    partial = lead.get("/insights/?period=7", headers={"HX-Request": "true"})
    body = partial.get_data(as_text=True)
    assert partial.status_code == 200 and body.lstrip().startswith('<div id="board"') and "<html" not in body
    assert "HX-Request" in partial.headers["Vary"]
    full = lead.get("/insights/?period=7").get_data(as_text=True)
    assert "<html" in full and 'hx-get="/insights/"' in full
    assert soup(full).select_one("#period option[selected]")["value"] == "7"
    for query in ("period=14", "period=month&month=2026-13", "team=abc"):
        assert lead.get(f"/insights/?{query}").status_code == 400, query


def test_finance_sees_only_the_money_part(app, client, order, session):
    clerk = _client(app, session, "fin@example.com", "finance")
    page = clerk.get("/insights/")
    assert page.status_code == 200
    board = soup(page.get_data(as_text=True))
    assert board.select_one("#money") and board.select_one("#recovered")
    assert not board.select_one("#return-rates") and not board.select_one("#first-response")
    assert not board.select_one("#survey") and not board.select_one("#backlog")
    assert clerk.get("/insights/charts/money.svg").status_code == 200
    assert clerk.get("/insights/charts/rates.svg").status_code == 403
    agent = _client(app, session, "agent@example.com", "agent")
    assert agent.get("/insights/").status_code == 403
    assert "/insights/" not in agent.get("/staff/").get_data(as_text=True)
    assert 'href="/insights/"' in clerk.get("/staff/").get_data(as_text=True)


def test_survey_section_waits_for_answers(app, client, order, session, lead):
    page = lead.get("/insights/").get_data(as_text=True)
    assert soup(page).select_one("#survey .empty").get_text(strip=True) == "No answers yet."
    req = inspected(app, client, session)
    other = inspected(app, client, session, number="RF-2")
    third = inspected(app, client, session, number="RF-3")
    for r, nps, sat in ((req, 10, 5), (other, 3, 2), (third, 9, 4)):
        session.add(SurveyAnswer(request_id=r.id, nps=nps, satisfaction=sat, comment=""))
    session.commit()
    page = lead.get("/insights/").get_data(as_text=True)
    assert not soup(page).select("#survey .empty")
    # Two promoters, one detractor of three: (2 - 1) / 3 = 33; satisfaction (5 + 2 + 4) / 3 = 3.7.
    assert _cells(page, "survey", "all") == ["Whole period", "3", "33", "3.7"]


def test_leads_are_told_once_per_period(app, client, order, session):
    create_staff(session, "lead@example.com", "Lee", "lead", PASSWORD)
    create_staff(session, "lead2@example.com", "Lou", "lead", PASSWORD)
    create_staff(session, "agent@example.com", "Ann", "agent", PASSWORD)
    inspected(app, client, session)
    app.config["RETURN_RATE_ALERT_MIN_ORDERS"] = 2  # two orders of the T-shirt, half of it sent back
    settings = insight_settings(app.config)
    now = datetime.now(UTC)
    told = notify_alerts(session, settings, now)
    assert [(a.kind, a.subject) for a in told] == [("return_rate", "TEE-S")]
    notes = session.scalars(select(StaffNotification).where(StaffNotification.kind == "insight_alert")).all()
    leads = session.scalars(select(StaffUser.id).where(StaffUser.role == "lead")).all()
    assert sorted(n.staff_id for n in notes) == sorted(leads)  # each lead once, the agent not at all
    assert all(n.ticket_id is not None for n in notes)
    assert all("TEE-S" in n.message for n in notes)
    # Again, and again later in the same month: nobody is told twice.
    assert notify_alerts(session, settings, now) == []
    assert notify_alerts(session, settings, now + timedelta(minutes=5)) == []
    assert session.query(StaffNotification).filter_by(kind="insight_alert").count() == 2
    assert session.query(InsightAlert).count() == 1
    # Under the minimum number of orders, nothing is past the line.
    app.config["RETURN_RATE_ALERT_MIN_ORDERS"] = 3
    session.query(InsightAlert).delete()
    session.commit()
    assert notify_alerts(session, insight_settings(app.config), now) == []


def test_the_page_in_chinese(app, client, order, session, lead):
    inspected(app, client, session)
    with lead.session_transaction() as s:
        s["lang"] = "zh_Hans"
    page = lead.get("/insights/").get_data(as_text=True)
    board = soup(page)
    assert board.select_one("h1").get_text(strip=True) == "数据洞察"
    assert board.select_one("#h-rates").get_text(strip=True) == "退货率"
    assert "Return rate" not in page
    svg = lead.get("/insights/charts/rates.svg").get_data(as_text=True)
    assert "按 SKU 的退货率" in svg


def test_sla_backlog_and_reasons_from_the_desk(app, session, desk, lead):
    from portal.db.models import Team, TicketClock
    from portal.domain.actors import Actor
    from portal.services.review import approve_return
    from tests.helpers import finance_desk_sla

    finance_desk_sla(session)
    rmas = [submit_coat(app, number=f"HV-{n}", email=f"s{n}@example.com") for n in range(3)]
    first = session.scalars(select(ReturnRequest).where(ReturnRequest.rma == rmas[0])).one()
    approve_return(session, first, Actor.staff(desk["agent"]))
    session.expire_all()
    page = lead.get("/insights/").get_data(as_text=True)

    # SLA: the clocks stopped in the period, met or not, per team and clock, counted from the rows.
    team = session.scalars(select(Team).where(Team.code == "finance")).one()
    stopped = session.scalars(select(TicketClock).where(TicketClock.stopped_at.is_not(None))).all()
    assert stopped, "approving stops the first-response clock"
    for metric in {c.metric for c in stopped}:
        clocks = [c for c in stopped if c.metric == metric]
        met = sum(1 for c in clocks if c.met)
        cells = _cells(page, "sla", f"{team.id}-{metric}")
        assert cells[0] == team.name and cells[2:] == [str(met), str(len(clocks)), _pct(met, len(clocks))]
    assert soup(page).select_one(f'#sla tr[data-key="{team.id}-first_response"] a')["href"] == (
        f"/staff/queue?view=all&team={team.id}"
    )

    # First response in business minutes: what the stopped clocks counted.
    used = sorted(c.used_minutes for c in stopped if c.metric == "first_response")
    mean = sum(used) / len(used)
    assert _cells(page, "first-response", "business")[1:] == [f"{mean:.1f}", f"{used[-1]:.1f}"]

    # Backlog: open tickets now by their request's status; all were opened under a day ago.
    open_tickets = session.scalars(select(Ticket).where(Ticket.status != "closed")).all()
    by_status: dict[str, int] = {}
    for ticket in open_tickets:
        by_status[ticket.request.status] = by_status.get(ticket.request.status, 0) + 1
    assert sum(by_status.values()) == 2
    for status, count in by_status.items():
        row = soup(page).select_one(f'#backlog tr[data-key="{status}"]')
        assert row.select_one('td[data-bucket="lt1d"]').get_text(strip=True) == str(count)
        assert row.select_one('td[data-bucket="gt7d"]').get_text(strip=True) == "0"

    # Reasons: every coat came back for size and fit, the customer's choice, this shop month.
    month = datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")
    lines = session.scalars(select(ReturnLine)).all()
    cells = _cells(page, "reasons", f"{month}-size_fit-customer")
    assert cells[0] == month and cells[3:] == [str(len(lines)), str(sum(rl.quantity for rl in lines))]
