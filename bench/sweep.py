"""Benchmark: the SLA escalation sweep and the staff queue on PostgreSQL.

Run from the project root::

    python -m bench.sweep [--url postgresql://...] [--open 1000000] [--due 10000] [--queue-tickets 100000]

``--url`` names a PostgreSQL server and a database to connect to for
administration. The benchmark creates a throwaway database next to it, brings
it up to date with the Alembic migrations, and drops it at the end (also after
a failure or Ctrl-C).

Every ticket gets a running resolution clock (240 business minutes, Monday to
Friday 09:00-12:00 and 13:00-18:00 Asia/Shanghai, no holidays) and one
pending ``remind`` step (0.75 of the target). A due ticket's clock started a
week ago, so its reminder and its deadline have passed; every other clock
started within the last 100 minutes, so both are hours away. Clock times are
computed with ``portal.domain.sla`` and bulk-loaded with server-side SQL.

1. **Sweep**: scenario A has ``--open`` open tickets of which ``--due`` have a
   step due; scenario B has ``--due`` open tickets, all due. One ``sweep()``
   each, ``--batch`` steps per transaction (default the sweep's 500); the figure is the time ratio A/B, which should
   stay near 1 because the sweep costs in proportion to due work, not to open
   tickets. Each sweep starts after a ``CHECKPOINT`` (when the user may run
   one), so the load's writes are not charged to it; the header prints the
   server's ``shared_buffers``, which decides how much of a million tickets'
   rows the sweep finds in PostgreSQL's own cache. The claim statement's plan
   (EXPLAIN ANALYZE in a rolled-back transaction) shows whether it uses the
   partial index on pending steps.
2. **Queue**: median and p95 of the staff queue page with 1,000 and with
   ``--queue-tickets`` tickets in the database (the first part of scenario
   A's data, loaded before the rest), through the Flask test client as a
   signed-in agent who is assigned every ticket; the ratio of the two medians
   is the figure, and two searches (``q=``) are among the pages: a part of an RMA
   (``B-99``, which the bench's numbered RMAs give 1,111 matches at 100,000
   tickets) and a whole RMA (one match once it is loaded). Pages slower than
   200 ms get their slowest SQL statement explained.
3. **Lateness**: scenario C has ``--due`` open tickets whose steps fall due
   evenly over two minutes, and a sweep every 30 seconds as the scheduler
   runs it; the figure is the time from each step's due time to the moment
   it fired (its timeline event was written): p50, p95 and max.
4. **Queue over the same rows**: the pages of section 2 (the whole-RMA search
   for ``B-777``, one of the first 1,000) with 1,000 tickets and again with
   ``--queue-tickets``, where the added tickets are ones no page lists (not
   due, RMAs ``C-<n>``, deadlines after the first page's). Each page lists the
   same RMAs at both sizes (the run checks and says so), so the ratio is what
   the extra tickets cost alone; section 2's ratios also grow with what the
   pages show (10 breached tickets among 1,000, a full page among 100,000).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import re
import secrets
import shlex
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, event, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from bench.run import core_count, cpu_model, staff_sign_in, version_of
from portal import crypto
from portal.db import make_engine, upgrade
from portal.db.models import BusinessCalendarRow, EscalationDue, Order, SlaPolicy, StaffUser, TeamMember
from portal.domain import sla
from portal.services.sla import SWEEP_BATCH, _claim, calendar_of, ladder_of, sweep
from portal.services.staff import create_staff
from portal.services.tickets import ensure_team

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_OPEN = 1_000_000
DEFAULT_DUE = 10_000
DEFAULT_QUEUE_TICKETS = 100_000

WORKER = "bench"
TARGET_MINUTES = 240
LADDER = [
    {"key": "remind", "at_fraction": 0.75, "action": "remind"},
    {"key": "lead", "after_breach_minutes": 0, "action": "move_to_lead"},
    {"key": "manager", "after_breach_minutes": 60, "action": "notify_manager"},
]
OFFICE_WEEK = {day: ["09:00-12:00", "13:00-18:00"] for day in ("mon", "tue", "wed", "thu", "fri")}
CALENDAR_TZ = "Asia/Shanghai"
SLOTS = 1000  # distinct start times per kind (due / not due)
CHUNK = 200_000  # rows per INSERT ... SELECT statement
AGENT_EMAIL = "agent@bench.example"
AGENT_PASSWORD = "bench-agent-password"

QUEUE_REQUESTS = 50
SMALL_QUEUE = 1_000  # the queue is timed with this many tickets too: the ratio is the figure
SEARCH_PATH = "/staff/queue?view=all&q=B-99"  # a part of an RMA: every RMA with "B99" in it
WHOLE_RMA_SEARCH_PATH = "/staff/queue?view=all&q=B-54321"  # a whole RMA, as pasted or scanned
SWEEP_EVERY = 30.0  # seconds between sweeps, as the scheduler runs them
LATENESS_SPREAD = 120  # seconds over which scenario C's steps fall due
QUEUE_PATHS = (
    "/staff/queue?view=all",
    "/staff/queue?view=mine",
    "/staff/queue?view=breached",
    SEARCH_PATH,
    WHOLE_RMA_SEARCH_PATH,
)
# Section 4 times these over the same rows at both sizes: the whole RMA is one of the first 1,000
# (B-54321 is not among them), and the tickets added for the larger size match no page's filter.
SAME_ROWS_PATHS = (*QUEUE_PATHS[:-1], "/staff/queue?view=all&q=B-777")
SLOW_MS = 200.0
RMA = re.compile(r"\b[BC]-\d+\b")

TICKET_TABLES = ("return_request", "ticket", "ticket_clock", "escalation_due")


def reproduce_command(args: argparse.Namespace) -> str:
    parts = ["python", "-m", "bench.sweep"]
    if args.url != DEFAULT_URL:
        parts += ["--url", make_url(args.url).render_as_string(hide_password=True)]
    parts += ["--open", str(args.open), "--due", str(args.due), "--queue-tickets", str(args.queue_tickets)]
    if args.batch != SWEEP_BATCH:
        parts += ["--batch", str(args.batch)]
    return shlex.join(parts)


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def indent(lines: list[str], prefix: str = "     ") -> str:
    return "\n".join(prefix + line for line in lines)


# --- the throwaway database ---------------------------------------------------------------


class ThrowawayDatabase:
    """``portal_bench_<random>`` on the server of ``admin_url``; dropped on exit whatever happened."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.name = f"portal_bench_{secrets.token_hex(4)}"
        self.url = make_url(admin_url).set(database=self.name).render_as_string(hide_password=False)
        self.admin: Engine | None = None

    def __enter__(self) -> ThrowawayDatabase:
        self.admin = make_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{self.name}"')
        return self

    def server_version(self) -> str:
        return self.setting("server_version")

    def setting(self, name: str) -> str:
        with self.admin.connect() as conn:
            return conn.exec_driver_sql(f"SHOW {name}").scalar_one()

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            with self.admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        finally:
            self.admin.dispose()


# --- data ---------------------------------------------------------------------------------


@dataclass
class Desk:
    calendar_id: int
    policy_id: int
    team_id: int
    agent_id: int
    order_id: int
    cal: sla.BusinessCalendar
    steps: list[sla.EscalationStep]


def set_up_desk(factory: sessionmaker, at: datetime) -> Desk:
    """One calendar, one policy with a three-step ladder, one team (lead, manager, one agent), one order."""
    with factory() as session:
        calendar = BusinessCalendarRow(
            code="cn-office", name="Shanghai office", timezone=CALENDAR_TZ, weekly=OFFICE_WEEK, country="CN"
        )
        session.add(calendar)
        lead = StaffUser(
            email="lead@bench.example", name="Lead", role="lead", password_hash="!", active=True, session_version=1
        )
        manager = StaffUser(
            email="manager@bench.example",
            name="Manager",
            role="manager",
            password_hash="!",
            active=True,
            session_version=1,
        )
        session.add_all([lead, manager])
        session.flush()
        team = ensure_team(session, "finance", "Finance desk")
        team.lead_id, team.manager_id = lead.id, manager.id
        policy = SlaPolicy(
            team_id=team.id,
            priority="normal",
            first_response_minutes=120,
            resolution_minutes=TARGET_MINUTES,
            calendar_id=calendar.id,
            ladder=LADDER,
        )
        session.add(policy)
        order = Order(
            order_number="BENCH-1",
            placed_at=at - timedelta(days=30),
            delivered_at=at - timedelta(days=25),
            currency="CNY",
            customer_name="Bench Shopper",
            customer_email="shopper@bench.example",
            payment_method="card",
        )
        session.add(order)
        session.commit()
        agent = create_staff(session, AGENT_EMAIL, "Agent", "agent", AGENT_PASSWORD)  # commits
        session.add(TeamMember(team_id=team.id, staff_id=agent.id, cap=25))
        session.commit()
        session.refresh(calendar)
        return Desk(calendar.id, policy.id, team.id, agent.id, order.id, calendar_of(calendar), ladder_of(policy))


def slot_rows(desk: Desk, now: datetime) -> list[dict]:
    """Start times with their deadline and remind time, from the domain code (the sweep's own arithmetic)."""
    rows = []
    for due in (True, False):
        for k in range(SLOTS):
            since = now - timedelta(days=7, minutes=k) if due else now - timedelta(seconds=6 * k)
            clock, _ = sla.start_clock(desk.cal, "resolution", TARGET_MINUTES, since)
            remind = dict(sla.step_fire_times(desk.cal, clock, desk.steps))["remind"]
            if (remind <= now) != due or (clock.deadline <= now) != due:
                raise SystemExit(f"bench: slot {k} (due={due}) does not give the intended fire time")
            rows.append({"due": due, "k": k, "since": since, "deadline": clock.deadline, "remind": remind})
    return rows


# g runs over 1..open; exactly `due` values of g are due, spread evenly over the whole range.
SOURCE = """
WITH src AS (
    SELECT g, ((g::bigint * :due) / :open <> ((g::bigint - 1) * :due) / :open) AS due
    FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) AS g
)
SELECT {columns}
FROM src JOIN bench_slot AS s ON s.due = src.due AND s.k = src.g % {slots}
"""

INSERTS = {
    "return_request": (
        "id, rma, order_id, status, locale, verdict, decision, policy_version, value, returnless, customer_email, created_at, updated_at",
        "g, :prefix || g, :order_id, 'pending_review', 'en', 'needs_review', CAST('{}' AS json), 'default-1', 50 + g % 950, false, "
        "'shopper@bench.example', s.since, s.since",
    ),
    # due_at: the nearest running deadline, which the ORM keeps on the ticket; here its one clock's.
    "ticket": (
        "id, request_id, team_id, assignee_id, priority, ticket_class, status, escalation_level, routing_inputs, created_at, updated_at, due_at",
        "g, g, :team_id, :agent_id, 'normal', 'B', 'open', 0, CAST('{}' AS json), s.since, s.since, s.deadline",
    ),
    "ticket_clock": (
        "id, ticket_id, policy_id, calendar_id, metric, state, target_minutes, used_minutes, started_at, changed_at, running_since, deadline, generation",
        "g, g, :policy_id, :calendar_id, 'resolution', 'running', :target, 0, s.since, s.since, s.since, s.deadline, 1",
    ),
    "escalation_due": (
        "id, clock_id, ticket_id, step_key, action, generation, fire_at, status, attempts",
        "g, g, g, 'remind', 'remind', 1, s.remind, 'pending', 0",
    ),
}


def load_tickets(
    engine: Engine, desk: Desk, slots: list[dict], lo: int, hi: int, n_open: int, n_due: int, prefix: str = "B-"
) -> float:
    """Tickets lo..hi of a scenario with n_open tickets and n_due due ones (RMAs ``prefix`` + number);
    returns seconds (load + VACUUM ANALYZE)."""
    start = time.perf_counter()
    params = {
        "prefix": prefix,
        "due": n_due,
        "open": n_open,
        "order_id": desk.order_id,
        "team_id": desk.team_id,
        "agent_id": desk.agent_id,
        "policy_id": desk.policy_id,
        "calendar_id": desk.calendar_id,
        "target": float(TARGET_MINUTES),
    }
    with engine.connect() as conn:
        conn.exec_driver_sql(
            "CREATE TEMP TABLE bench_slot (due boolean, k integer, since timestamptz, deadline timestamptz, remind timestamptz)"
        )
        conn.execute(text("INSERT INTO bench_slot VALUES (:due, :k, :since, :deadline, :remind)"), slots)
        conn.exec_driver_sql("ANALYZE bench_slot")
        for chunk_lo in range(lo, hi + 1, CHUNK):
            chunk = {**params, "lo": chunk_lo, "hi": min(chunk_lo + CHUNK - 1, hi)}
            for table, (columns, values) in INSERTS.items():
                conn.execute(
                    text(f"INSERT INTO {table} ({columns}) " + SOURCE.format(columns=values, slots=SLOTS)), chunk
                )
            conn.commit()
        for table in TICKET_TABLES:
            conn.exec_driver_sql(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
            )
        conn.exec_driver_sql("DROP TABLE bench_slot")
        conn.commit()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(f"VACUUM (ANALYZE) {', '.join(TICKET_TABLES)}")
    return time.perf_counter() - start


def reset_tickets(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "TRUNCATE escalation_due, staff_notification, ticket_event, ticket_clock, outbox, ticket, return_request RESTART IDENTITY CASCADE"
        )


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            "tickets": conn.execute(text("SELECT count(*) FROM ticket WHERE status = 'open'")).scalar_one(),
            "pending": conn.execute(text("SELECT count(*) FROM escalation_due WHERE status = 'pending'")).scalar_one(),
            "done": conn.execute(
                select(func.count()).select_from(EscalationDue).where(EscalationDue.status == "done")
            ).scalar_one(),
        }


# --- the sweep ----------------------------------------------------------------------------


@dataclass
class SweepRun:
    label: str
    open: int
    due: int
    load_seconds: float
    seconds: float
    fired: int
    cpu_seconds: float  # the sweeping process's own CPU time (the rest is waiting for the database)

    @property
    def rate(self) -> float:
        return self.fired / self.seconds


def checkpoint(engine: Engine) -> None:
    """Write out what the load left dirty, so that the sweep is not charged for it (a checkpoint the
    load's WAL set off would otherwise run during the sweep). Needs a superuser or pg_checkpoint."""
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("CHECKPOINT")
    except DBAPIError as exc:
        print(f"   (no CHECKPOINT before the sweep: {exc.orig})")


def run_sweep(engine: Engine, label: str, n_open: int, n_due: int, load_seconds: float, batch: int) -> SweepRun:
    factory = sessionmaker(engine, expire_on_commit=False)
    checkpoint(engine)
    now = datetime.now(UTC)
    start, cpu_start = time.perf_counter(), time.process_time()
    result = sweep(factory, now=now, batch=batch, worker=WORKER)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    fired = len(result.fired)
    done = counts(engine)["done"]
    assert fired == n_due and result.dropped == 0 and done == n_due, (
        f"{label}: fired {fired}, dropped {result.dropped}, done {done}; expected {n_due}"
    )
    run = SweepRun(label, n_open, n_due, load_seconds, seconds, fired, cpu_seconds)
    print(
        f"   scenario {label}: {n_open:,} open, {n_due:,} due; loaded in {load_seconds:.1f} s; "
        f"sweep fired {fired:,} (claimed {result.claimed:,}, dropped {result.dropped}) in {seconds:.2f} s = {run.rate:,.0f} fired/s; "
        f"the sweeper's own CPU time {cpu_seconds:.2f} s ({1000 * cpu_seconds / max(fired, 1):.2f} ms per step)",
        flush=True,
    )
    total = sum(result.seconds.values())
    print(
        "     wall time by phase: "
        + ", ".join(f"{phase} {value:.2f} s ({value / total:.0%})" for phase, value in result.seconds.items()),
        flush=True,
    )
    return run


def explain_claim(engine: Engine, batch: int) -> list[str]:
    """The claim statement exactly as ``_claim`` sends it, explained with ANALYZE in a transaction that is rolled back."""
    captured: list[tuple[str, object]] = []
    now = datetime.now(UTC)
    with engine.connect() as conn:

        def grab(_conn, _cursor, statement, parameters, _context, _executemany) -> None:
            if not captured and "FOR UPDATE" in statement:
                captured.append((statement, parameters))

        event.listen(conn, "before_cursor_execute", grab)
        outer = conn.begin()
        with Session(bind=conn, join_transaction_mode="create_savepoint") as session:
            _claim(session, now, "bench:explain", batch)
        outer.rollback()
        event.remove(conn, "before_cursor_execute", grab)
        if not captured:
            raise SystemExit("bench: the claim query was not seen")
        statement, parameters = captured[0]
        with conn.begin() as trans:
            plan = [
                row[0] for row in conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + statement, parameters)
            ]
            trans.rollback()
    return plan


# --- the queue ----------------------------------------------------------------------------


@dataclass
class PageTiming:
    path: str
    latencies: list[float]
    statements: list[tuple[float, str, object]]
    plan: list[str] | None = None  # EXPLAIN ANALYZE of the slowest statement, for a slow page
    listed: tuple[str, ...] = ()  # the RMAs the page lists, in order

    @property
    def median_ms(self) -> float:
        return statistics.median(self.latencies) * 1000

    @property
    def p95_ms(self) -> float:
        return p95(self.latencies) * 1000


def sign_in(client) -> None:
    staff_sign_in(client, AGENT_EMAIL, AGENT_PASSWORD)


def time_queue(engine: Engine, url: str, instance: str, paths: tuple[str, ...] = QUEUE_PATHS) -> list[PageTiming]:
    from portal import create_app
    from portal.db import get_engine

    app = create_app({"DATABASE_URL": url, "INSTANCE_PATH": instance, "SECRET_KEY": "bench", "TESTING": True})
    app_engine = get_engine(app)
    timings = []
    try:
        client = app.test_client()
        sign_in(client)
        for path in paths:

            def get() -> str:
                response = client.get(path)
                if response.status_code != 200:
                    raise SystemExit(f"bench: GET {path} gave {response.status_code}, expected 200")
                return response.get_data(as_text=True)

            listed = tuple(dict.fromkeys(RMA.findall(get())))  # warm-up (templates, statement caches)
            latencies = []
            for _ in range(QUEUE_REQUESTS):
                t0 = time.perf_counter()
                get()
                latencies.append(time.perf_counter() - t0)
            # One more, untimed, recording each SQL statement and its time.
            statements: list[tuple[float, str, object]] = []
            started: list[float] = []

            def before(_conn, _cursor, _statement, _parameters, _context, _executemany) -> None:
                started.append(time.perf_counter())

            def after(_conn, _cursor, statement, parameters, _context, _executemany) -> None:
                statements.append((time.perf_counter() - started.pop(), statement, parameters))

            event.listen(app_engine, "before_cursor_execute", before)
            event.listen(app_engine, "after_cursor_execute", after)
            try:
                get()
            finally:
                event.remove(app_engine, "before_cursor_execute", before)
                event.remove(app_engine, "after_cursor_execute", after)
            timings.append(PageTiming(path, latencies, statements, listed=listed))
    finally:
        app_engine.dispose()
    # Explain now, while the database holds what the pages were timed against.
    explained: set[str] = set()
    for t in timings:
        if t.median_ms > SLOW_MS and t.statements:
            _, statement, parameters = max(t.statements, key=lambda s: s[0])
            if statement not in explained:
                explained.add(statement)
                t.plan = explain(engine, statement, parameters)
    return timings


def describe_statement(statement: str) -> str:
    flat = " ".join(statement.split())
    if flat.startswith("SELECT count(*)"):
        where = flat.split(" WHERE ", 1)[1] if " WHERE " in flat else ""
        return "count: " + (where[:110] + "..." if len(where) > 110 else where or "(all)")
    return flat[:120] + ("..." if len(flat) > 120 else "")


def explain(engine: Engine, statement: str, parameters) -> list[str]:
    with engine.connect() as conn:
        return [row[0] for row in conn.exec_driver_sql("EXPLAIN (ANALYZE, COSTS OFF) " + statement, parameters)]


def print_queue(timings: list[PageTiming]) -> None:
    header = ("page", "median ms", "p95 ms", "SQL stmts", "SQL ms", "slowest stmt ms")
    rows = []
    for t in timings:
        slowest = max(t.statements, key=lambda s: s[0]) if t.statements else (0.0, "", None)
        rows.append(
            (
                f"GET {t.path}",
                f"{t.median_ms:.1f}",
                f"{t.p95_ms:.1f}",
                str(len(t.statements)),
                f"{sum(s[0] for s in t.statements) * 1000:.1f}",
                f"{slowest[0] * 1000:.1f}",
            )
        )
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def fmt(row) -> str:
        return "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )

    print(indent([fmt(header), "  ".join("-" * w for w in widths), *map(fmt, rows)], "   "))
    print("   (SQL columns: one extra request per page with every statement timed)")
    for t in timings:
        if t.median_ms <= SLOW_MS:
            continue
        print()
        print(f"   {t.path}: median {t.median_ms:.0f} ms > {SLOW_MS:.0f} ms; its slowest statements:")
        for seconds, statement, _ in sorted(t.statements, key=lambda s: s[0], reverse=True)[:4]:
            print(f"     {seconds * 1000:7.1f} ms  {describe_statement(statement)}")
        if t.plan is None:
            print("     (plan of the slowest one shown above)")
        else:
            print("     EXPLAIN ANALYZE of the slowest (run with the same tickets in the database):")
            print(indent(t.plan, "       "))


# --- lateness ------------------------------------------------------------------------------


@dataclass
class Lateness:
    due: int
    fired: int
    sweeps: int
    seconds: list[float]


def run_lateness(engine: Engine, desk: Desk, n_due: int, batch: int) -> Lateness:
    """Scenario C: steps falling due over LATENESS_SPREAD seconds, a sweep every SWEEP_EVERY seconds."""
    now = datetime.now(UTC).replace(microsecond=0)
    load_tickets(engine, desk, slot_rows(desk, now), 1, n_due, n_due, n_due)
    start = datetime.now(UTC)
    with engine.begin() as conn:
        # Claiming follows fire_at; the steps are overdue on their clocks, so each is still due when claimed.
        conn.execute(
            text("UPDATE escalation_due SET fire_at = :start + (id % :spread) * interval '1 second'"),
            {"start": start, "spread": LATENESS_SPREAD},
        )
    factory = sessionmaker(engine, expire_on_commit=False)
    sweeps = 0
    deadline = time.monotonic() + LATENESS_SPREAD + 4 * SWEEP_EVERY
    while time.monotonic() < deadline:
        tick = time.monotonic()
        sweep(factory, now=datetime.now(UTC), batch=batch, worker=WORKER)
        sweeps += 1
        if counts(engine)["done"] >= n_due:
            break
        time.sleep(max(0.0, SWEEP_EVERY - (time.monotonic() - tick)))
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT EXTRACT(EPOCH FROM (e.at - d.fire_at)) FROM escalation_due d "
                "JOIN ticket_event e ON e.ticket_id = d.ticket_id AND e.kind = 'step' WHERE d.status = 'done'"
            )
        ).scalars()
        seconds = sorted(float(v) for v in rows)
    return Lateness(n_due, len(seconds), sweeps, seconds)


def print_lateness(result: Lateness) -> None:
    if not result.seconds:
        print("   no step fired")
        return
    values = result.seconds
    p50 = statistics.median(values)
    print(
        f"   {result.fired:,} of {result.due:,} steps fired in {result.sweeps} sweeps; due time to fired: "
        f"p50 {p50:.1f} s, p95 {p95(values):.1f} s, max {values[-1]:.1f} s"
    )


# --- main ---------------------------------------------------------------------------------


def print_same_rows(engine: Engine, desk: Desk, url: str, instance: str, args: argparse.Namespace) -> None:
    """The queue pages with 1,000 tickets and again with --queue-tickets, where every added ticket is
    one no page shows (not due, an RMA no search matches, due after the first page): each page lists
    the same rows at both sizes, so the ratio is what the extra tickets cost alone."""
    small = min(SMALL_QUEUE, args.queue_tickets)
    print(
        f"4. Staff queue page over the same rows: {small:,} tickets as in section 2, then {args.queue_tickets - small:,} "
        "more that no page lists (not due, RMAs 'C-<n>', deadlines after the first page's)"
    )
    now = datetime.now(UTC).replace(microsecond=0)
    slots = slot_rows(desk, now)
    load_tickets(engine, desk, slots, 1, small, args.open, args.due)
    few = {t.path: t for t in time_queue(engine, url, instance, SAME_ROWS_PATHS)}
    if small < args.queue_tickets:
        later = [{**slot, "deadline": slot["deadline"] + timedelta(days=30)} for slot in slots]
        load_tickets(engine, desk, later, small + 1, args.queue_tickets, args.open, 0, prefix="C-")
    many = time_queue(engine, url, instance, SAME_ROWS_PATHS)
    print(f"   page                                 median ms with {small:,}  with {args.queue_tickets:,}  ratio  rows")
    for t in many:
        f = few[t.path]
        rows = f"same ({len(t.listed)})" if t.listed == f.listed else f"DIFFER ({len(f.listed)} vs {len(t.listed)})"
        print(f"   GET {t.path:<36} {f.median_ms:17.1f} {t.median_ms:12.1f} {t.median_ms / f.median_ms:6.2f}  {rows}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sweep", description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=DEFAULT_URL, help="PostgreSQL server and admin database (default %(default)s)")
    parser.add_argument(
        "--open", type=int, default=DEFAULT_OPEN, help="open tickets in scenario A (default %(default)s)"
    )
    parser.add_argument(
        "--due", type=int, default=DEFAULT_DUE, help="tickets with a step due, in A and B (default %(default)s)"
    )
    parser.add_argument(
        "--queue-tickets",
        type=int,
        default=DEFAULT_QUEUE_TICKETS,
        help="tickets in the database while the queue page is timed (default %(default)s)",
    )
    parser.add_argument(
        "--batch", type=int, default=SWEEP_BATCH, help="steps claimed and fired per transaction (default %(default)s)"
    )
    args = parser.parse_args(argv)
    if not args.url.startswith("postgresql"):
        parser.error("--url must be a postgresql:// URL")
    if args.batch < 1:
        parser.error("--batch must be at least 1")
    if not 1 <= args.due <= args.open:
        parser.error("--due must be between 1 and --open")
    if not 1 <= args.queue_tickets <= args.open:
        parser.error("--queue-tickets must be between 1 and --open")

    total_start = time.perf_counter()
    # Shoppers' details are encrypted: the desk's order needs a data key (a throwaway one).
    crypto.install(crypto.parse_keyring(crypto.new_key()))
    with ThrowawayDatabase(args.url) as db, tempfile.TemporaryDirectory(prefix="portal-bench-") as instance:
        print(f"command:  {reproduce_command(args)}")
        print(f"platform: {platform.platform()}")
        print(f"cpu:      {cpu_model()}, {core_count()} cores")
        print(f"python:   {platform.python_implementation()} {platform.python_version()}")
        print(
            f"database: PostgreSQL {db.server_version()} (throwaway database, dropped at the end); "
            f"shared_buffers {db.setting('shared_buffers')}"
        )
        print(
            f"versions: returns-portal {version_of('returns-portal')}, sqlalchemy {version_of('sqlalchemy')}, "
            f"psycopg {version_of('psycopg')}, flask {version_of('flask')}"
        )
        print(
            f"load:     {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min load average at the start; the machine may be shared)"
        )
        print(
            f"desk:     resolution target {TARGET_MINUTES} business minutes, Mon-Fri 09:00-12:00 and 13:00-18:00 {CALENDAR_TZ}, "
            "ladder remind@0.75 / lead@breach / manager@breach+60; one pending 'remind' step per ticket"
        )
        print(flush=True)

        engine = make_engine(db.url)
        try:
            upgrade(engine)
            desk = set_up_desk(sessionmaker(engine, expire_on_commit=False), datetime.now(UTC))

            print(
                f"1. Sweep: one sweep(batch={args.batch}) per scenario, timed from the first claim to the last commit "
                "(load time = INSERT ... SELECT and VACUUM ANALYZE, not part of the sweep time)",
                flush=True,
            )
            now = datetime.now(UTC).replace(microsecond=0)
            load_b = load_tickets(engine, desk, slot_rows(desk, now), 1, args.due, args.due, args.due)
            run_b = run_sweep(engine, "B", args.due, args.due, load_b, args.batch)
            reset_tickets(engine)

            # Scenario A in two parts: the queue is timed with --queue-tickets loaded, then the rest is added.
            now = datetime.now(UTC).replace(microsecond=0)
            slots = slot_rows(desk, now)
            small = min(SMALL_QUEUE, args.queue_tickets)
            load_small = load_tickets(engine, desk, slots, 1, small, args.open, args.due)
            queue_small = time_queue(engine, db.url, instance)
            load_q = load_small
            if small < args.queue_tickets:
                load_q += load_tickets(engine, desk, slots, small + 1, args.queue_tickets, args.open, args.due)
            in_db = counts(engine)
            with engine.connect() as conn:
                breached = conn.execute(text("SELECT count(*) FROM ticket_clock WHERE deadline <= now()")).scalar_one()
            queue = time_queue(engine, db.url, instance)

            load_rest = 0.0
            if args.queue_tickets < args.open:
                load_rest = load_tickets(engine, desk, slots, args.queue_tickets + 1, args.open, args.open, args.due)
            plan = explain_claim(engine, args.batch)
            run_a = run_sweep(engine, "A", args.open, args.due, load_q + load_rest, args.batch)
            ratio = run_a.seconds / run_b.seconds
            print(
                f"   A/B sweep time: {ratio:.2f} (fired/s A {run_a.rate:,.0f}, B {run_b.rate:,.0f}; "
                f"{args.open // args.due}x the open tickets in A)"
            )
            uses_index = "ix_escalation_due_pending" in "\n".join(plan)
            print()
            print(
                f"   Claim query in scenario A ({args.open:,} pending steps, {args.due:,} due), "
                f"{'uses' if uses_index else 'does NOT use'} ix_escalation_due_pending:"
            )
            print(indent(plan))
            print()

            print(
                f"2. Staff queue page: Flask test client, signed-in agent assigned every ticket, "
                f"{QUEUE_REQUESTS} timed GETs per page after one warm-up"
            )
            print(
                f"   in the database: {in_db['tickets']:,} open tickets (part of scenario A, loaded in {load_q:.1f} s), "
                f"{breached:,} past their deadline, {in_db['pending']:,} pending steps"
            )
            print_queue(queue)
            print()
            print(
                f"   The same pages with {small:,} tickets, and the median with {args.queue_tickets:,} / with {small:,}:"
            )
            by_path = {t.path: t for t in queue_small}
            for t in queue:
                few = by_path[t.path]
                print(f"   GET {t.path:<40} median {few.median_ms:7.1f} ms   ratio {t.median_ms / few.median_ms:5.2f}")
            for path in (SEARCH_PATH, WHOLE_RMA_SEARCH_PATH):
                search = next(t for t in queue if t.path == path)
                print(f"   staff search ({path}) with {args.queue_tickets:,} tickets: median {search.median_ms:.1f} ms")
            print()

            reset_tickets(engine)
            print(
                f"3. Lateness: {args.due:,} steps falling due evenly over {LATENESS_SPREAD} s, "
                f"one sweeper every {SWEEP_EVERY:.0f} s (batch {args.batch})",
                flush=True,
            )
            print_lateness(run_lateness(engine, desk, args.due, args.batch))
            print()

            reset_tickets(engine)
            print_same_rows(engine, desk, db.url, instance, args)
        finally:
            engine.dispose()
    print()
    print(
        f"total {time.perf_counter() - total_start:.0f} s, throwaway database dropped; "
        f"load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )


if __name__ == "__main__":
    main()
