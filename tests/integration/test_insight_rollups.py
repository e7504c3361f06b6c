"""The insights dashboard read from its daily rollups equals the same figures computed from the raw
tables, the rollups kept change by change equal a rebuild, and the numbers of fired escalations and
of photo scores against warehouse grades are the ones in the rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from portal.adapters.payments import SandboxGateway
from portal.db.insight_rollups import InsightRollup, InsightRollupState
from portal.db.models import (
    EscalationDue,
    Order,
    Photo,
    Refund,
    ReturnLine,
    ReturnRequest,
    SurveyAnswer,
    Ticket,
    TicketClock,
)
from portal.domain import insights as calc
from portal.services.insights import Filters, Settings, dashboard, rebuild_rollups
from portal.services.refunds import approve_refund, execute_refund, preview_refund
from tests.helpers import finance_user, inspected, rollup_rows, submit_coat

NOW = datetime.now(UTC)


def _refund(app, session, req) -> Refund:
    factory = app.extensions["portal.sessionmaker"]
    preview = preview_refund(session, req)
    refund = approve_refund(
        session, req, finance_user(session, f"fay{req.id}"), preview.basis_hash, "sandbox", Decimal(10000)
    )
    return execute_refund(factory, refund.id, SandboxGateway(factory))


def _photo(session, req, line, n, probability, label, version, at):
    session.add(
        Photo(
            request_id=req.id,
            line_id=line.id,
            storage_key=f"k-{req.id}-{n}",
            content_type="image/jpeg",
            width=10,
            height=10,
            size=100,
            sha256=f"{req.id:032d}{n:032d}",
            created_at=at,
            score_state="scored",
            wear_probability=probability,
            wear_label=label,
            model_version=version,
        )
    )


def _escalation(session, ticket, clock, key, action, status, done_at):
    session.add(
        EscalationDue(
            clock_id=clock.id,
            ticket_id=ticket.id,
            step_key=key,
            action=action,
            generation=1,
            fire_at=done_at or NOW,
            status=status,
            done_at=done_at,
        )
    )


@pytest.fixture
def varied(app, client, session, desk):
    """Requests over several shop days, channels, categories and teams, with refunds, surveys,
    escalations and warehouse grades; every change made through the ORM as the services do."""
    from portal.domain.actors import Actor
    from portal.services.review import approve_return
    from tests.helpers import finance_desk_sla

    finance_desk_sla(session)
    requests = [inspected(app, client, session, number=f"RF-{n}", grade="AC"[n % 2]) for n in range(4)]
    for n, req in enumerate(requests):
        if n != 1:
            _refund(app, session, req)
    rmas = [submit_coat(app, number=f"HV-{n}", email=f"s{n}@example.com") for n in range(3)]
    coats = [session.scalars(select(ReturnRequest).where(ReturnRequest.rma == rma)).one() for rma in rmas]
    approve_return(session, coats[0], Actor.staff(desk["agent"]))
    everything = requests + coats
    # Spread over days (one just before and one just after a Shanghai midnight) and channels.
    moments = [
        NOW - timedelta(days=1),
        NOW - timedelta(days=3, hours=5),
        datetime(2026, 10, 31, 15, 59, tzinfo=UTC),
        datetime(2026, 10, 31, 16, 1, tzinfo=UTC),
        NOW - timedelta(days=20),
        NOW - timedelta(days=40),
        NOW - timedelta(hours=2),
    ]
    for n, (req, at) in enumerate(zip(everything, moments, strict=True)):
        req.created_at = at
        req.order.placed_at = at - timedelta(days=2)
        req.order.channel = ("web", "app", "marketplace")[n % 3]
    session.commit()
    tickets = session.scalars(select(Ticket).order_by(Ticket.id)).all()
    for n, ticket in enumerate(tickets):
        ticket.created_at = ticket.request.created_at
        ticket.first_response_at = ticket.created_at + timedelta(minutes=7.25 * (n + 1))
    for n, refund in enumerate(session.scalars(select(Refund).order_by(Refund.id))):
        refund.executed_at = moments[n] + timedelta(hours=1)
    for n, req in enumerate(everything[:5]):
        session.add(
            SurveyAnswer(request_id=req.id, nps=(10, 9, 6, 3, 8)[n], satisfaction=5 - n % 3, answered_at=moments[n])
        )
    session.commit()
    clocks = session.scalars(select(TicketClock).order_by(TicketClock.id)).all()
    for n, clock in enumerate(clocks[:4]):
        ticket = session.get(Ticket, clock.ticket_id)
        _escalation(session, ticket, clock, f"remind{n}", "remind", "done", moments[n])
        _escalation(
            session, ticket, clock, f"lead{n}", "to_lead", "done" if n % 2 else "pending", moments[n] if n % 2 else None
        )
    for req in requests:
        for line in req.lines:
            for n, (p, label, version) in enumerate(((0.9, "wear", "v1"), (0.2, "no_wear", "v1"), (0.7, "wear", "v2"))):
                _photo(session, req, line, n, p, label, version, req.created_at + timedelta(minutes=5))
    requests[3].status = "cancelled"  # a request withdrawn later leaves the returned figures
    session.commit()
    return everything


PERIODS = [
    calc.period_for("7", calc.local_day(NOW, "Asia/Shanghai"), "Asia/Shanghai"),
    calc.period_for("30", calc.local_day(NOW, "Asia/Shanghai"), "Asia/Shanghai"),
    calc.period_for("90", calc.local_day(NOW, "Asia/Shanghai"), "Asia/Shanghai"),
    calc.period_for("month", NOW.date(), "Asia/Shanghai", "2026-10"),
    calc.period_for("month", NOW.date(), "Asia/Shanghai", "2026-11"),
]


def _filters(session) -> list[Filters]:
    from portal.db.models import OrderLine, Team

    categories = sorted(set(session.scalars(select(OrderLine.category))))
    teams = sorted(set(session.scalars(select(Team.id))))
    return (
        [Filters()]
        + [Filters(channel=c) for c in ("web", "app", "marketplace")]
        + [Filters(category=c) for c in categories]
        + [Filters(team_id=t) for t in teams]
        + [Filters(channel="web", category=categories[0], team_id=teams[0])]
    )


def _same(session, settings):
    for period in PERIODS:
        for filters in _filters(session):
            raw = dashboard(session, period, filters, settings, NOW, source="raw")
            rolled = dashboard(session, period, filters, settings, NOW, source="rollups")
            assert rolled == raw, (period, filters)


def test_every_figure_from_the_rollups_equals_the_raw_tables(session, varied):
    assert session.get(InsightRollupState, 1).timezone == "Asia/Shanghai"
    settings = Settings()
    board = dashboard(session, PERIODS[2], Filters(), settings, NOW, source="rollups")
    # The data reaches every figure, so the comparison below compares something.
    assert board.rates.overall.sold_units and board.rates.overall.returned_units
    assert board.first_response.answered and board.money and board.recovered and board.survey.answers
    assert board.escalations and board.photos and board.reasons and board.sla
    _same(session, settings)
    # The filters offer the channels and categories of the orders, read from the rollups.
    from portal.db.models import OrderLine
    from portal.services.insights import filter_choices

    choices = filter_choices(session)
    assert choices["channels"] == sorted(set(session.scalars(select(Order.channel))))
    assert choices["categories"] == sorted(set(session.scalars(select(OrderLine.category))))


def test_changes_kept_one_by_one_equal_a_rebuild(session, varied):
    kept = rollup_rows(session)
    assert kept
    rebuild_rollups(session, "Asia/Shanghai")
    assert rollup_rows(session) == kept
    # A rebuild of some days only is the same again, and so is running it twice.
    rebuild_rollups(session, "Asia/Shanghai", NOW.date() - timedelta(days=10), NOW.date())
    rebuild_rollups(session, "Asia/Shanghai", NOW.date() - timedelta(days=10), NOW.date())
    assert rollup_rows(session) == kept


def test_a_line_refused_and_a_ticket_moved_change_the_rollups_as_a_rebuild_would(session, varied):
    from portal.db.models import Team

    line = session.scalars(select(ReturnLine).order_by(ReturnLine.id)).first()
    line.staff_decision = "rejected"
    ticket = session.scalars(select(Ticket).order_by(Ticket.id)).first()
    other = session.scalars(select(Team).where(Team.id != ticket.team_id)).first()
    ticket.team_id = other.id
    refund = session.scalars(select(Refund)).first()
    session.delete(session.scalars(select(SurveyAnswer)).first())
    refund.amount += Decimal("1.50")
    session.commit()
    kept = rollup_rows(session)
    rebuild_rollups(session, "Asia/Shanghai")
    assert rollup_rows(session) == kept
    _same(session, Settings())


def test_escalations_fired_are_counted_by_action(session, varied):
    period = PERIODS[2]
    board = dashboard(session, period, Filters(), Settings(), NOW)
    fired = [
        step
        for step in session.scalars(select(EscalationDue))
        if step.status == "done" and period.start <= step.done_at < period.end
    ]
    expected = {}
    for step in fired:
        expected[step.action] = expected.get(step.action, 0) + 1
    assert {row.key: row.count for row in board.escalations} == expected
    assert expected["remind"] >= 3 and expected["to_lead"] >= 1  # pending steps never count


def test_photo_scores_against_warehouse_grades_per_model_version(session, varied):
    period = PERIODS[2]
    board = dashboard(session, period, Filters(), Settings(), NOW)
    expected: dict[tuple[str, str], list] = {}
    for photo in session.scalars(select(Photo)):
        line = session.get(ReturnLine, photo.line_id)
        if line.grade is None or not (period.start <= photo.created_at < period.end):
            continue
        worn = line.wear_confirmed if line.wear_confirmed is not None else line.grade in ("C", "D")
        row = expected.setdefault((photo.model_version, line.grade), [0, 0.0, 0])
        row[0] += 1
        row[1] += photo.wear_probability
        row[2] += (photo.wear_label == "wear") == worn
    assert {(r.model_version, r.grade): (r.photos, r.mean_wear, r.agree) for r in board.photos} == {
        key: (n, round(total / n, 3), agree) for key, (n, total, agree) in expected.items()
    }
    assert {r.grade for r in board.photos} == {"A", "C"}


def test_orders_and_the_rollups_of_a_database_with_history_wait_for_a_rebuild(session, varied):
    session.delete(session.get(InsightRollupState, 1))
    session.commit()
    rows = rollup_rows(session)
    order = session.scalars(select(Order)).first()
    order.placed_at -= timedelta(days=1)
    session.commit()
    assert rollup_rows(session) == rows  # not kept without a zone: the dashboard reads raw tables
    rebuild_rollups(session, "Asia/Shanghai")
    assert session.get(InsightRollupState, 1).timezone == "Asia/Shanghai"
    _same(session, Settings())


@pytest.fixture
def cli(app, monkeypatch, database_url):
    """The real console entry point against the test database."""
    from click.testing import CliRunner

    from portal.cli import main

    monkeypatch.setenv("PORTAL_INSTANCE_PATH", app.config["INSTANCE_PATH"])
    monkeypatch.setenv("PORTAL_DATABASE_URL", database_url)
    monkeypatch.setenv("PORTAL_SECRET_KEY", app.config["SECRET_KEY"])
    monkeypatch.setenv("PORTAL_API_SECRET", app.config["API_SECRET"])
    runner = CliRunner()
    return lambda *args: runner.invoke(main, list(args), catch_exceptions=False)


def test_the_rebuild_command_fills_the_rollups_of_a_database_with_history(cli, session, varied, monkeypatch):
    from sqlalchemy import delete

    kept = rollup_rows(session)
    session.execute(delete(InsightRollup))
    session.execute(delete(InsightRollupState))
    session.commit()  # as after the upgrade that adds the tables to a database with orders
    result = cli("insights", "rebuild")
    assert result.exit_code == 0 and f"{len(kept)} rows" in result.output
    assert rollup_rows(session) == kept
    assert cli("insights", "rebuild", "--from", "2026-11-01", "--to", "2026-11-30").exit_code == 0
    assert rollup_rows(session) == kept
    refused = cli("insights", "rebuild", "--from", "2026-11-05", "--to", "2026-11-01")
    assert refused.exit_code != 0 and "--from is after --to" in refused.output

    # A new shop zone (with daylight saving) needs every day again; then the figures hold in it.
    monkeypatch.setenv("PORTAL_TIMEZONE", "Europe/London")
    partial = cli("insights", "rebuild", "--from", "2026-11-01")
    assert partial.exit_code != 0 and "another time zone" in partial.output
    assert cli("insights", "rebuild").exit_code == 0
    session.expire_all()
    assert session.get(InsightRollupState, 1).timezone == "Europe/London"
    london = Settings(timezone="Europe/London")
    for period in (
        calc.period_for("30", calc.local_day(NOW, "Europe/London"), "Europe/London"),
        calc.period_for("month", NOW.date(), "Europe/London", "2026-10"),
        calc.period_for("month", NOW.date(), "Europe/London", "2026-03"),
    ):
        for filters in _filters(session):
            raw = dashboard(session, period, filters, london, NOW, source="raw")
            assert dashboard(session, period, filters, london, NOW, source="rollups") == raw
    # The Shanghai settings no longer match the rollups: the dashboard reads the raw tables.
    from portal.services.insights import rollups_ready

    assert not rollups_ready(session, Settings()) and rollups_ready(session, london)
