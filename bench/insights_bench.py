"""Benchmark: the insights dashboard on PostgreSQL with a large history.

Run from the project root::

    python bench/insights_bench.py [--requests 1000000] [--database postgresql://postgres@127.0.0.1:5432/bench_insights]

``--database`` names the throwaway database: it is dropped if it exists, created, brought up to
date with the Alembic migrations, loaded and dropped again at the end (also after a failure or
Ctrl-C). The load is server-side ``INSERT ... SELECT ... generate_series``: for every return
request three orders of two lines (the first order is the one returned), a ticket with its two SLA
clocks, return lines, warehouse receipts, refunds with their ledger rows and survey answers, spread
over 13 months in the shop's time zone. Values are drawn from a hash of the row id, so a size
always loads the same data.

Then, for each period (7, 30, 90 days, the last calendar month): the dashboard service
(``portal.services.insights.dashboard``) and the HTTP page ``/insights/?period=...`` through the
Flask test client signed in as a lead, several runs each (min, median, max); the headline figures
computed again by plain SQL over the raw tables are printed beside the dashboard's and must be
equal. The slowest statement of one more service run is explained with ANALYZE.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shlex
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from sqlalchemy import Engine, event  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from bench.run import core_count, cpu_model, staff_sign_in, version_of  # noqa: E402
from portal.db import make_engine, upgrade  # noqa: E402
from portal.db.models import BusinessCalendarRow, SlaPolicy  # noqa: E402
from portal.domain import insights as calc  # noqa: E402
from portal.services.insights import Filters, Settings, dashboard, rebuild_rollups  # noqa: E402
from portal.services.staff import create_staff  # noqa: E402
from portal.services.tickets import ensure_team  # noqa: E402

DEFAULT_DATABASE = "postgresql://postgres@127.0.0.1:5432/bench_insights"
DEFAULT_REQUESTS = 1_000_000
DEFAULT_RUNS = 5
TZ = "Asia/Shanghai"
SPAN_DAYS = 395  # about 13 months of history up to now
ORDERS_PER_REQUEST = 3
LEAD_EMAIL = "lead@bench.example"
LEAD_PASSWORD = "bench-lead-password"
TABLES = (
    "shop_order",
    "order_line",
    "return_request",
    "return_line",
    "ticket",
    "ticket_clock",
    "receipt_line",
    "refund",
    "ledger_entry",
    "survey_answer",
)

# A uniform number in [0, 1) from an integer and a salt: the same row always gets the same draw.
UNIFORM = """
CREATE FUNCTION bench_u(n bigint, salt int) RETURNS float8 LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT ((hashint8(n * 1000 + salt) & 2147483647)::float8 / 2147483648.0) $$
"""

# Products are drawn with a skew (a few best sellers); category, price and channel follow from them.
CATEGORIES = ("tops", "dresses", "trousers", "shoes", "knitwear", "outerwear", "accessories", "bags")
PRODUCTS = 200
PRODUCT = f"floor({PRODUCTS} * bench_u(%(id)s, 1) ^ 2)::int"
QTY = "(1 + (bench_u(%(id)s, 2) < 0.2)::int)"
PRICE = f"(49 + ({PRODUCT} * 37) %% 450)::numeric(12, 2)"
CATEGORY = f"(ARRAY{list(CATEGORIES)})[1 + {PRODUCT} %% {len(CATEGORIES)}]"
# Reason codes with realistic weights and their responsibility (portal.domain.reasons).
REASONS = (
    ("size_fit", 0.35, "customer"),
    ("changed_mind", 0.20, "customer"),
    ("defective", 0.12, "seller"),
    ("not_as_described", 0.10, "seller"),
    ("damaged", 0.08, "logistics"),
    ("wrong_item", 0.06, "seller"),
    ("late_delivery", 0.05, "logistics"),
    ("missing_parts", 0.04, "logistics"),
)
TEAMS = (("customer", "Customer desk"), ("seller", "Quality desk"), ("logistics", "Logistics desk"))


def weighted(draw: str, choices: list[tuple[str, float]]) -> str:
    """A CASE picking each value with its weight from a uniform ``draw``."""
    whens, edge = [], 0.0
    for value, weight in choices[:-1]:
        edge += weight
        whens.append(f"WHEN {draw} < {edge:.4f} THEN '{value}'")
    return f"(CASE {' '.join(whens)} ELSE '{choices[-1][0]}' END)"


def line(ol: str) -> dict[str, str]:
    """The order line ``ol``'s SQL expressions (they depend on its id only)."""
    return {
        k: v % {"id": ol} for k, v in {"product": PRODUCT, "qty": QTY, "price": PRICE, "category": CATEGORY}.items()
    }


# --- the throwaway database ------------------------------------------------------------------------


def admin_conninfo(url: str) -> tuple[str, str]:
    """libpq connection string of the server's ``postgres`` database, and the benchmark database's name."""
    parsed = make_url(url)
    name = parsed.database or "bench_insights"
    if not re.fullmatch(r"[A-Za-z0-9_]+", name):
        raise SystemExit(f"bench: database name {name!r} must be letters, digits and underscores")
    admin = parsed.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    return admin, name


def recreate(url: str) -> None:
    admin, name = admin_conninfo(url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop(url: str) -> None:
    admin, name = admin_conninfo(url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- data ---------------------------------------------------------------------------------------------


def set_up_desk(engine: Engine) -> dict[str, int]:
    """Three teams (one per responsibility), a calendar, an SLA policy and a lead who may see insights."""
    with Session(engine) as session:
        lead = create_staff(session, LEAD_EMAIL, "Lead", "lead", LEAD_PASSWORD)  # commits
        teams = {}
        for code, name in TEAMS:
            team = ensure_team(session, code, name)
            team.lead_id = lead.id
            teams[code] = team
        calendar = BusinessCalendarRow(
            code="cn-office",
            name="Shanghai office",
            timezone=TZ,
            weekly={d: ["09:00-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
            country="CN",
        )
        session.add(calendar)
        session.flush()
        policy = SlaPolicy(
            team_id=None,
            priority="normal",
            first_response_minutes=120,
            resolution_minutes=2400,
            calendar_id=calendar.id,
            ladder=[],
        )
        session.add(policy)
        session.commit()
        ids = {f"team_{code}": team.id for code, team in teams.items()}
        return ids | {"lead": lead.id, "calendar": calendar.id, "policy": policy.id}


def load_statements(n: int, now: datetime, desk: dict[str, int]) -> list[tuple[str, str]]:
    """(table, SQL) in load order. Request ``r`` is on order ``r``; orders ``n+1..3n`` are never returned."""
    span = f"interval '{SPAN_DAYS} days'"
    t0 = f"(timestamptz '{now.isoformat()}' - {span})"
    now_sql = f"timestamptz '{now.isoformat()}'"
    created = f"({t0} + ((r - 0.5 + 0.4 * bench_u(r, 10)) / {n}) * {span})"  # request r, evenly over the span
    a, b = line("(2 * o - 1)"), line("(2 * o)")
    channel = weighted("bench_u(o, 3)", [("web", 0.55), ("app", 0.30), ("marketplace", 0.15)])
    placed = (
        f"CASE WHEN o <= {n} THEN ({t0} + ((o - 0.5 + 0.4 * bench_u(o, 10)) / {n}) * {span})"
        " - (1 + 9 * bench_u(o, 4)) * interval '1 day'"
        f" ELSE {t0} + bench_u(o, 4) * {span} END"
    )
    orders = f"""
        INSERT INTO shop_order (id, order_number, placed_at, delivered_at, currency, channel, customer_name,
            customer_email, payment_method, shipping_paid, gift, created_at, updated_at)
        SELECT o, 'B' || o, p, p + interval '2 days', 'CNY', {channel}, 'Shopper ' || o,
            's' || o || '@bench.example', 'card', 0, false, p, p
        FROM (SELECT o, {placed} AS p FROM generate_series(1, {ORDERS_PER_REQUEST * n}) o) s
    """
    ol = line("l")
    order_lines = f"""
        INSERT INTO order_line (id, order_id, line_id, sku, product_name, variant, category, quantity, unit_price,
            discount, tax, final_sale)
        SELECT l, (l + 1) / 2, 'L' || (2 - l % 2), 'SKU-' || lpad({ol["product"]}::text, 3, '0'),
            'Product ' || {ol["product"]}, '', {ol["category"]}, {ol["qty"]}, {ol["price"]}, 0, 0, false
        FROM generate_series(1, {2 * ORDERS_PER_REQUEST * n}) l
    """
    age = f"({now_sql} - {created})"
    status = f"""CASE WHEN {age} > interval '21 days' THEN
            {weighted("bench_u(r, 11)", [("refunded", 0.62), ("closed", 0.12), ("exchanged", 0.12), ("rejected", 0.07), ("cancelled", 0.07)])}
        ELSE {weighted("bench_u(r, 11)", [("submitted", 0.05), ("pending_review", 0.15), ("awaiting_shopper", 0.05), ("approved", 0.10), ("label_issued", 0.15), ("in_transit", 0.20), ("received", 0.10), ("inspected", 0.05), ("refunded", 0.10), ("cancelled", 0.05)])}
        END"""
    two = "(bench_u(r, 5) < 0.4)"
    requests = f"""
        INSERT INTO return_request (id, rma, order_id, status, locale, verdict, decision, policy_version, value,
            returnless, customer_email, created_at, updated_at)
        SELECT r, 'R' || r, r, {status}, 'en', 'eligible', '{{}}', 'bench-1',
            {line("(2 * r - 1)")["price"]} * {line("(2 * r - 1)")["qty"]}
              + CASE WHEN {two} THEN {line("(2 * r)")["price"]} * {line("(2 * r)")["qty"]} ELSE 0 END,
            false, 's' || r || '@bench.example', {created}, {created}
        FROM generate_series(1, {n}) r
    """
    del a, b
    reason = weighted("bench_u(l, 6)", [(code, w) for code, w, _ in REASONS])
    lines = f"""
        INSERT INTO return_line (id, request_id, order_line_id, quantity, reason, responsibility, comment, outcome,
            verdict, value, grade, staff_decision, reserved_quantity)
        SELECT l, q.id, l, {ol["qty"]}, x.reason, CASE x.reason {" ".join(f"WHEN '{c}' THEN '{resp}'" for c, _, resp in REASONS)} END,
            '', CASE WHEN x.reason = 'size_fit' AND bench_u(l, 7) < 0.5 THEN 'exchange'
                     WHEN bench_u(l, 7) < 0.1 THEN 'store_credit' ELSE 'refund' END,
            'eligible', {ol["price"]} * {ol["qty"]},
            CASE WHEN q.status IN ('received', 'inspected', 'refunded', 'exchanged', 'closed')
                 THEN (ARRAY['A', 'A', 'A', 'B', 'B', 'C', 'D'])[1 + floor(7 * bench_u(l, 8))::int] END,
            CASE WHEN q.status = 'rejected' THEN 'rejected' WHEN bench_u(l, 9) < 0.03 THEN 'rejected' END, 0
        FROM generate_series(1, {2 * n}) l
        JOIN return_request q ON q.id = (l + 1) / 2
        CROSS JOIN LATERAL (SELECT {reason} AS reason) x
        WHERE l % 2 = 1 OR bench_u((l + 1) / 2, 5) < 0.4
    """
    terminal = "('refunded', 'closed', 'exchanged', 'rejected', 'cancelled')"
    first_minutes = "(3 + 900 * bench_u(q.id, 12) ^ 3)"
    tickets = f"""
        INSERT INTO ticket (id, request_id, team_id, priority, ticket_class, status, escalation_level, routing_inputs,
            created_at, updated_at, first_response_at, closed_at)
        SELECT q.id, q.id, CASE t.responsibility WHEN 'customer' THEN {desk["team_customer"]}
                              WHEN 'seller' THEN {desk["team_seller"]} ELSE {desk["team_logistics"]} END,
            'normal', 'B', CASE WHEN q.status IN {terminal} THEN 'closed'
                                WHEN q.status = 'awaiting_shopper' THEN 'waiting' ELSE 'open' END, 0, '{{}}',
            q.created_at, q.created_at,
            CASE WHEN q.status NOT IN ('submitted') AND q.created_at + {first_minutes} * interval '1 minute' < {now_sql}
                 THEN q.created_at + {first_minutes} * interval '1 minute' END,
            CASE WHEN q.status IN {terminal} THEN q.created_at + (6 + 8 * bench_u(q.id, 13)) * interval '1 day' END
        FROM return_request q JOIN return_line t ON t.id = 2 * q.id - 1
    """
    clocks = f"""
        INSERT INTO ticket_clock (ticket_id, policy_id, calendar_id, metric, state, target_minutes, used_minutes,
            started_at, changed_at, running_since, stopped_at, met, generation)
        SELECT t.id, {desk["policy"]}, {desk["calendar"]}, m.metric,
            CASE WHEN m.stop IS NOT NULL THEN 'stopped' ELSE 'running' END, m.target,
            CASE WHEN m.stop IS NOT NULL THEN round((extract(epoch FROM m.stop - t.created_at) / 60 * 0.45)::numeric, 1) ELSE 0 END,
            t.created_at, coalesce(m.stop, t.created_at), CASE WHEN m.stop IS NULL THEN t.created_at END, m.stop,
            CASE WHEN m.stop IS NOT NULL THEN extract(epoch FROM m.stop - t.created_at) / 60 * 0.45 <= m.target END, 0
        FROM ticket t CROSS JOIN LATERAL (VALUES ('first_response', 120.0, t.first_response_at),
                                                 ('resolution', 2400.0, t.closed_at)) m(metric, target, stop)
    """
    receipts = f"""
        INSERT INTO receipt_line (request_id, return_line_id, quantity, grade, wear_confirmed, disposition, note,
            received_by, received_at)
        SELECT t.request_id, t.id, t.quantity, t.grade, t.grade IN ('C', 'D'),
            CASE t.grade WHEN 'A' THEN 'restock' WHEN 'B' THEN 'refurbish' WHEN 'C' THEN 'outlet'
                ELSE {weighted("bench_u(t.id, 14)", [("destroy", 0.5), ("return_to_vendor", 0.5)])} END,
            '', {desk["lead"]}, least(q.created_at + (3 + 3 * bench_u(t.id, 15)) * interval '1 day', {now_sql})
        FROM return_line t JOIN return_request q ON q.id = t.request_id
        WHERE t.grade IS NOT NULL
    """
    paid = f"least(q.created_at + (5 + 7 * bench_u(q.id, 16)) * interval '1 day', {now_sql})"
    refunds = f"""
        INSERT INTO refund (id, request_id, idempotency_key, status, provider, currency, amount, store_credit, preview,
            basis_hash, approved_by, approved_at, attempts, executed_at)
        SELECT q.id, q.id, 'bench-' || q.id, CASE WHEN bench_u(q.id, 17) < 0.01 THEN 'failed' ELSE 'succeeded' END,
            'bench', 'CNY', s.cash, s.credit, '{{}}', 'bench', {desk["lead"]}, {paid}, 1,
            CASE WHEN bench_u(q.id, 17) >= 0.01 THEN {paid} END
        FROM return_request q
        JOIN (SELECT request_id, sum(value) FILTER (WHERE outcome = 'refund') AS cash,
                     sum(value) FILTER (WHERE outcome = 'store_credit') AS credit
              FROM return_line WHERE staff_decision IS NULL GROUP BY request_id) s ON s.request_id = q.id
        WHERE q.status IN ('refunded', 'closed') AND (s.cash IS NOT NULL OR s.credit IS NOT NULL)
    """
    refunds = refunds.replace("s.cash, s.credit,", "coalesce(s.cash, 0), coalesce(s.credit, 0),")
    ledger = """
        INSERT INTO ledger_entry (at, kind, method, currency, amount, request_id, refund_id, reference)
        SELECT executed_at, 'refund', 'card', currency, amount, request_id, id, 'bench-' || id
        FROM refund WHERE status = 'succeeded' AND amount > 0
        UNION ALL
        SELECT executed_at, 'store_credit_issued', 'store_credit', currency, store_credit, request_id, id, 'bench-' || id
        FROM refund WHERE status = 'succeeded' AND store_credit > 0
    """
    answered = f"least(q.created_at + (10 + 10 * bench_u(q.id, 18)) * interval '1 day', {now_sql})"
    nps = "LEAST(10, floor(11 * sqrt(bench_u(q.id, 19)))::int)"
    surveys = f"""
        INSERT INTO survey_answer (request_id, nps, satisfaction, comment, answered_at, updated_at)
        SELECT q.id, {nps}, 1 + LEAST(4, floor(5 * sqrt(bench_u(q.id, 20)))::int), '', {answered}, {answered}
        FROM return_request q
        WHERE q.status IN ('refunded', 'exchanged', 'closed') AND bench_u(q.id, 21) < 0.3
    """
    return [
        ("shop_order", orders),
        ("order_line", order_lines),
        ("return_request", requests),
        ("return_line", lines),
        ("ticket", tickets),
        ("ticket_clock", clocks),
        ("receipt_line", receipts),
        ("refund", refunds),
        ("ledger_entry", ledger),
        ("survey_answer", surveys),
    ]


def load(url: str, n: int, now: datetime, desk: dict[str, int]) -> list[tuple[str, int, float]]:
    done = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(UNIFORM)
        for table, sql in load_statements(n, now, desk):
            t0 = time.perf_counter()
            rows = conn.execute(sql).rowcount
            done.append((table, rows, time.perf_counter() - t0))
            print(f"   {table:<15} {rows:>12,} rows  {done[-1][2]:7.1f} s", flush=True)
        for seq in ("shop_order", "order_line", "return_request", "return_line", "ticket", "refund"):
            conn.execute(f"SELECT setval(pg_get_serial_sequence('{seq}', 'id'), (SELECT max(id) FROM {seq}))")
        t0 = time.perf_counter()
        conn.execute("VACUUM (ANALYZE)")
        done.append(("VACUUM ANALYZE", 0, time.perf_counter() - t0))
        print(f"   {'VACUUM ANALYZE':<15} {'':>12}       {done[-1][2]:7.1f} s", flush=True)
    return done


# --- plain SQL over the raw tables ------------------------------------------------------------------


def one(conn: psycopg.Connection, sql: str, params: dict[str, Any] | None = None) -> tuple[Any, ...]:
    row = conn.execute(sql, params).fetchone()
    assert row is not None
    return tuple(row)


def plain_figures(url: str, period: calc.Period) -> dict[str, object]:
    """The headline figures again, written by hand without the service's query builders."""
    p = {"start": period.start, "end": period.end}
    with psycopg.connect(url) as conn:
        sold_units, orders = one(
            conn,
            "SELECT coalesce(sum(l.quantity), 0), count(DISTINCT o.id) FROM shop_order o"
            " JOIN order_line l ON l.order_id = o.id WHERE o.placed_at >= %(start)s AND o.placed_at < %(end)s",
            p,
        )
        returned_units, requests = one(
            conn,
            "SELECT coalesce(sum(t.quantity), 0), count(DISTINCT q.id) FROM return_request q"
            " JOIN return_line t ON t.request_id = q.id"
            " WHERE q.created_at >= %(start)s AND q.created_at < %(end)s"
            " AND q.status NOT IN ('cancelled', 'rejected')"
            " AND (t.staff_decision IS NULL OR t.staff_decision <> 'rejected')",
            p,
        )
        answered, first_total = one(
            conn,
            "SELECT count(*), sum(extract(epoch FROM first_response_at - created_at) / 60) FROM ticket"
            " WHERE created_at >= %(start)s AND created_at < %(end)s AND first_response_at IS NOT NULL",
            p,
        )
        refunded, credit = one(
            conn,
            "SELECT coalesce(sum(amount), 0), coalesce(sum(store_credit), 0) FROM refund WHERE status = 'succeeded'"
            " AND executed_at >= %(start)s AND executed_at < %(end)s",
            p,
        )
        surveys = one(
            conn, "SELECT count(*) FROM survey_answer WHERE answered_at >= %(start)s AND answered_at < %(end)s", p
        )[0]
    return {
        "sold units": int(sold_units),
        "orders": int(orders),
        "returned units": int(returned_units),
        "requests": int(requests),
        "unit return rate %": calc.rate(int(returned_units), int(sold_units)),
        "request rate %": calc.rate(int(requests), int(orders)),
        "first responses": int(answered),
        "first response mean min": calc.mean(None if first_total is None else float(first_total), answered),
        "refunded": Decimal(refunded).quantize(Decimal("0.01")),
        "store credit": Decimal(credit).quantize(Decimal("0.01")),
        "survey answers": int(surveys),
    }


def board_figures(board) -> dict[str, object]:
    rates, fr = board.rates.overall, board.first_response
    return {
        "sold units": rates.sold_units,
        "orders": rates.orders,
        "returned units": rates.returned_units,
        "requests": rates.requests,
        "unit return rate %": rates.unit_rate,
        "request rate %": rates.request_rate,
        "first responses": fr.answered,
        "first response mean min": fr.mean_minutes,
        "refunded": sum((d.refunded for d in board.money), Decimal("0.00")),
        "store credit": sum((d.store_credit for d in board.money), Decimal("0.00")),
        "survey answers": board.survey.answers,
    }


# --- timing -----------------------------------------------------------------------------------------------


def spread(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return f"{min(ms):8.0f} {statistics.median(ms):8.0f} {max(ms):8.0f}"


def sign_in(client) -> None:
    staff_sign_in(client, LEAD_EMAIL, LEAD_PASSWORD)


def periods(now: datetime) -> list[tuple[str, dict[str, str], calc.Period]]:
    today = calc.local_day(now, TZ)
    last_month = (today.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    found = [(kind, {"period": kind}, calc.period_for(kind, today, TZ)) for kind in ("7", "30", "90")]
    found.append(
        (
            f"month {last_month}",
            {"period": "month", "month": last_month},
            calc.period_for("month", today, TZ, last_month),
        )
    )
    return found


def explain(url: str, statement: str, parameters) -> list[str]:
    with make_engine(url).connect() as conn:
        return [
            row[0] for row in conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + statement, parameters)
        ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=DEFAULT_REQUESTS, help="return requests (default %(default)s)")
    parser.add_argument(
        "--database", default=DEFAULT_DATABASE, help="throwaway database, dropped and created (default %(default)s)"
    )
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS, help="timed runs per period (default %(default)s)")
    parser.add_argument("--keep", action="store_true", help="keep the database at the end (to explore it)")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="time the database a --keep run left (upgraded to the newest schema), without loading it again",
    )
    args = parser.parse_args(argv)
    if not args.database.startswith("postgresql://"):
        parser.error("--database must be a postgresql:// URL")
    if args.requests < 100 or args.runs < 1:
        parser.error("--requests must be at least 100 and --runs at least 1")

    command = shlex.join(
        ["python", "bench/insights_bench.py", "--requests", str(args.requests)]
        + (["--database", args.database] if args.database != DEFAULT_DATABASE else [])
        + (["--runs", str(args.runs)] if args.runs != DEFAULT_RUNS else [])
        + (["--keep"] if args.keep else [])
        + (["--reuse"] if args.reuse else [])
    )
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    started = time.perf_counter()
    if not args.reuse:
        recreate(args.database)
    try:
        with psycopg.connect(args.database) as conn:
            server = str(one(conn, "SELECT version()")[0]).split(" on ")[0]
        print(f"command:  {command}")
        print(f"platform: {platform.platform()}")
        print(f"cpu:      {cpu_model()}, {core_count()} cores; RAM {mem:.1f} GiB")
        print(f"python:   {platform.python_implementation()} {platform.python_version()}")
        print(
            f"database: {server} (throwaway database {make_url(args.database).database}, {'kept' if args.keep or args.reuse else 'dropped'} at the end)"
        )
        print(
            f"versions: returns-portal {version_of('returns-portal')}, sqlalchemy {version_of('sqlalchemy')}, "
            f"psycopg {version_of('psycopg')}, flask {version_of('flask')}"
        )
        print(f"load avg: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (the machine may be shared)")
        print(flush=True)

        engine = make_engine(args.database)
        upgrade(engine)
    except BaseException:
        if not (args.keep or args.reuse):
            drop(args.database)
        raise
    try:
        if args.reuse:
            print("1. Load: reusing the database a --keep run loaded, with its rollups", flush=True)
        else:
            load_and_rebuild(args, engine)
        print()

        settings = Settings(timezone=TZ)
        found = periods(datetime.now(UTC))
        print(
            f"2. Dashboard service, dashboard(...) for all figures, no filters; {args.runs} runs after one warm-up (ms)"
        )
        print(f"   {'period':<16} {'min':>8} {'median':>8} {'max':>8}  SQL stmts  slowest stmt")
        slowest_overall: tuple[float, str, object] = (0.0, "", None)
        boards = {}
        for label, _, period in found:
            with Session(engine) as session:
                dashboard(session, period, Filters(), settings, datetime.now(UTC))  # warm-up
                times = []
                for _ in range(args.runs):
                    t = time.perf_counter()
                    boards[label] = dashboard(session, period, Filters(), settings, datetime.now(UTC))
                    times.append(time.perf_counter() - t)
                    session.rollback()
                statements: list[tuple[float, str, object]] = []
                clock: list[float] = []

                def before(*_a) -> None:
                    clock.append(time.perf_counter())

                def after(_conn, _cursor, statement, parameters, *_rest) -> None:
                    statements.append((time.perf_counter() - clock.pop(), statement, parameters))

                event.listen(engine, "before_cursor_execute", before)
                event.listen(engine, "after_cursor_execute", after)
                try:
                    dashboard(session, period, Filters(), settings, datetime.now(UTC))
                finally:
                    event.remove(engine, "before_cursor_execute", before)
                    event.remove(engine, "after_cursor_execute", after)
            top = max(statements, key=lambda s: s[0])
            if top[0] > slowest_overall[0]:
                slowest_overall = top
            flat = " ".join(top[1].split())
            print(
                f"   {label:<16} {spread(times)}  {len(statements):>9}  {top[0] * 1000:.0f} ms: {flat[:70]}...",
                flush=True,
            )
        print()

        print(f"3. HTTP GET /insights/ (Flask test client, signed-in lead); {args.runs} runs after one warm-up (ms)")
        print(f"   {'address':<40} {'min':>8} {'median':>8} {'max':>8}")
        from portal import create_app
        from portal.db import get_engine

        with tempfile.TemporaryDirectory(prefix="portal-bench-") as instance:
            app = create_app(
                {
                    "DATABASE_URL": args.database,
                    "INSTANCE_PATH": instance,
                    "SECRET_KEY": "bench",
                    "TESTING": True,
                    "BABEL_DEFAULT_TIMEZONE": TZ,
                }
            )
            try:
                client = app.test_client()
                sign_in(client)
                for _, query, _period in found:
                    address = "/insights/?" + "&".join(f"{k}={v}" for k, v in query.items())
                    times = []
                    for i in range(args.runs + 1):
                        t = time.perf_counter()
                        response = client.get(address)
                        if i:
                            times.append(time.perf_counter() - t)
                        if response.status_code != 200:
                            raise SystemExit(f"bench: GET {address} gave {response.status_code}, expected 200")
                    print(f"   {address:<40} {spread(times)}", flush=True)
            finally:
                get_engine(app).dispose()
        print()

        print("4. Headline figures: dashboard | plain SQL over the raw tables")
        mismatches = []
        for label, _, period in found:
            t = time.perf_counter()
            plain = plain_figures(args.database, period)
            plain_ms = (time.perf_counter() - t) * 1000
            ours = board_figures(boards[label])
            print(
                f"   {label} ({period.first} to {period.last}, shop days); the five plain queries took {plain_ms:.0f} ms"
            )
            for key, value in ours.items():
                same = value == plain[key]
                if not same:
                    mismatches.append(f"{label}: {key} {value} != {plain[key]}")
                print(f"     {key:<26} {value!s:>16} | {plain[key]!s:<16} {'ok' if same else 'DIFFERENT'}")
        print()

        seconds, statement, parameters = slowest_overall
        print(f"5. Slowest statement of the service ({seconds * 1000:.0f} ms), EXPLAIN ANALYZE:")
        print("   " + " ".join(statement.split())[:400])
        for row in explain(args.database, statement, parameters):
            print("     " + row)
        print()
        engine.dispose()
        print(
            f"total {time.perf_counter() - started:.0f} s; load avg at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
        )
        if mismatches:
            print("MISMATCH:\n  " + "\n  ".join(mismatches))
            return 1
        return 0
    finally:
        if not (args.keep or args.reuse):
            drop(args.database)


def load_and_rebuild(args: argparse.Namespace, engine: Engine) -> None:
    desk = set_up_desk(engine)
    now = datetime.now(UTC).replace(microsecond=0)
    print(
        f"1. Load: {args.requests:,} return requests, {SPAN_DAYS} days up to {now:%Y-%m-%d %H:%M} UTC, shop zone {TZ}"
    )
    t0 = time.perf_counter()
    load(args.database, args.requests, now, desk)
    print(f"   loaded in {time.perf_counter() - t0:.1f} s", flush=True)
    t0 = time.perf_counter()
    with Session(engine) as session:
        rows = rebuild_rollups(session, TZ)  # what `returns-portal insights rebuild` runs
    with psycopg.connect(args.database, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) insight_rollup")
    print(f"   daily rollups rebuilt from the raw tables: {rows:,} rows in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
