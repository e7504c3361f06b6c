"""Helpers shared by the tests: plain functions and constants, no fixtures.

Test modules import from here (and conftest.py builds fixtures on top); no test
module imports another test module. HTML is read with BeautifulSoup, never by
splitting strings.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import itertools
import json
import os
import re
import struct
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from PIL import Image
from sqlalchemy import select

from portal.domain.roles import ROLES

REQUIRE_SERVICES = os.environ.get("PORTAL_REQUIRE_SERVICES") == "1"
API_SECRET = "test-api-secret"


def app_config(instance: Path, database_url: str, **settings: object) -> dict[str, object]:
    """The settings a test app starts with (instance folder, database, jobs run at once), and ``settings``."""
    return {
        "TESTING": True,
        "INSTANCE_PATH": str(instance),
        "DATABASE_URL": database_url,
        "SECRET_KEY": "test-secret-key",
        "API_SECRET": API_SECRET,
        "JOBS_MODE": "eager",
        "PUBLIC_URL": "http://localhost",
        "RATELIMIT_STORAGE_URI": "memory://",
        **settings,
    }


PASSWORD = "correct horse battery"


def service_missing(reason: str):
    """Skip on a machine without the service; fail when the services are required (CI)."""
    if REQUIRE_SERVICES:
        pytest.fail(f"required service unavailable: {reason}")
    pytest.skip(reason)


@contextmanager
def flushed_redis(url: str, flush: bool = True):
    """A client of the Redis database at ``url`` (emptied before and after when ``flush``); skips
    when the client library or the server is missing (fails when services are required)."""
    try:
        import redis
    except ImportError:
        service_missing("the redis client is not installed")
    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    try:
        try:
            client.ping()
        except redis.exceptions.ConnectionError:
            service_missing(f"no Redis at {url}")
        if flush:
            client.flushdb()
        yield client
        if flush:
            client.flushdb()
    finally:
        client.close()


@contextmanager
def scratch_database(kind: str, tmp_path: Path, prefix: str) -> Iterator[str]:
    """The URL of an empty database of its own: a SQLite file in ``tmp_path``, or (``kind`` "postgresql")
    a throwaway PostgreSQL database from ``scratch_postgres``."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / (prefix + '.sqlite3')}"
        return
    with scratch_postgres(prefix) as url:
        yield url


@contextmanager
def scratch_postgres(prefix: str):
    """A throwaway PostgreSQL database next to the configured one (``PORTAL_DATABASE_URL``), its URL;
    dropped afterwards. Skips when PostgreSQL is not configured (fails when services are required)."""
    configured = os.environ.get("PORTAL_DATABASE_URL", "")
    if not configured.startswith("postgresql"):
        pytest.skip("PostgreSQL is not configured (PORTAL_DATABASE_URL)")
    import uuid

    import psycopg
    from sqlalchemy.engine import make_url

    admin = make_url(configured).set(drivername="postgresql")
    admin_dsn = admin.render_as_string(hide_password=False)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        service_missing(f"PostgreSQL unavailable: {exc}")
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- reading HTML ---------------------------------------------------------------


def soup(page) -> BeautifulSoup:
    """Parse a response (or an HTML string)."""
    html = page if isinstance(page, str) else page.get_data(as_text=True)
    return BeautifulSoup(html, "html.parser")


def csrf_token(page) -> str:
    field = soup(page).find("input", attrs={"name": "csrf_token"})
    assert field is not None and field.get("value"), "page has no CSRF token"
    return field["value"]


def input_value(page, name: str) -> str:
    """The value of the (first) input called ``name``."""
    field = soup(page).find("input", attrs={"name": name})
    assert field is not None, f"page has no input {name!r}"
    return field.get("value", "")


def form_values(page, selector: str = "form") -> dict[str, str]:
    """The inputs of the first form matching ``selector`` as the browser would send them by default."""
    form = soup(page).select_one(selector)
    assert form is not None, f"page has no {selector!r}"
    values: dict[str, str] = {}
    for field in form.find_all(["input", "select", "textarea"]):
        name = field.get("name")
        if not name or field.has_attr("disabled"):
            continue
        if field.name == "select":
            chosen = field.find("option", selected=True) or field.find("option")
            values[name] = chosen.get("value", chosen.get_text()) if chosen else ""
        elif field.name == "textarea":
            values[name] = field.get_text()
        elif field.get("type") in ("checkbox", "radio"):
            if field.has_attr("checked"):
                values[name] = field.get("value", "on")
        elif field.get("type") not in ("submit", "button", "file", "reset", "image"):
            values[name] = field.get("value", "")
    return values


def page_values(page) -> dict[str, str]:
    """What all the page's forms would post as they stand: every named field's current value (a checkbox
    only when checked, a select its selected option, or the first one as a browser would)."""
    values: dict[str, str] = {}
    for tag in soup(page).find_all(["input", "select", "textarea"]):
        name = tag.get("name")
        if not name or tag.get("type") == "file":
            continue
        if tag.name == "select":
            option = tag.find("option", selected=True) or tag.find("option")
            values[name] = option.get("value", option.get_text()) if option else ""
        elif tag.name == "textarea":
            text = tag.get_text()  # a browser drops the one newline that may open a textarea
            values[name] = text[2:] if text.startswith("\r\n") else text[1:] if text.startswith("\n") else text
        elif tag.get("type") == "checkbox":
            if tag.has_attr("checked"):
                values[name] = tag.get("value", "on")
        else:
            values[name] = tag.get("value", "")
    return values


def field_errors(page, field_id: str) -> list[str]:
    """The error messages shown beside one field (inside the same ``.field`` block or table cell)."""
    tag = soup(page).find(id=field_id)
    assert tag is not None, f"no field {field_id} on the page"
    box = tag.find_parent(class_="field") or tag.find_parent("td")
    assert box is not None, f"field {field_id} is not inside a .field block or a table cell"
    return [e.get_text(strip=True) for e in box.find_all(class_="error")]


def hrefs(page, prefix: str = "") -> list[str]:
    """Every link target on the page starting with ``prefix``, in document order."""
    return [a["href"] for a in soup(page).find_all("a", href=True) if a["href"].startswith(prefix)]


def get_csrf(client, path: str = "/") -> str:
    return csrf_token(client.get(path))


# --- the signed API -------------------------------------------------------------


_SENDS = itertools.count()
_SIGNED: set[str] = set()  # signatures already handed out with a chosen timestamp


def signed_headers(body: bytes, secret: str = API_SECRET, timestamp: int | None = None) -> dict[str, str]:
    """Headers for one send. Each call signs with a different timestamp (stepping back through the
    accepted window) as separate sends by a shop would; the same headers twice are a replay. A
    signature already handed out is never handed out again: when a second passes between two sends
    of one body, the next step back lands on the same timestamp, so the step after it is taken."""

    def sign(ts: str) -> str:
        return hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()

    if timestamp is not None:
        ts = str(timestamp)
        mac = sign(ts)
    else:
        while True:
            ts = str(int(time.time()) - next(_SENDS) % 240)
            mac = sign(ts)
            if mac not in _SIGNED:
                break
        _SIGNED.add(mac)
    return {"X-Portal-Timestamp": ts, "X-Portal-Signature": f"sha256={mac}", "Content-Type": "application/json"}


def post_json(client, path: str, payload, **kw):
    body = json.dumps(payload).encode() if not isinstance(payload, bytes) else payload
    return client.post(path, data=body, headers=signed_headers(body, **kw))


def order_payload(
    number: str = "SO-1001",
    *,
    delivered_days_ago: float | None = 2,
    email: str = "li.wei@example.com",
    postcode: str = "200001",
    gift: bool = False,
    lines=None,
    currency: str = "CNY",
) -> dict:
    now = datetime.now(UTC)
    delivered = None if delivered_days_ago is None else (now - timedelta(days=delivered_days_ago)).isoformat()
    return {
        "order_number": number,
        "placed_at": (now - timedelta(days=10)).isoformat(),
        "delivered_at": delivered,
        "currency": currency,
        "channel": "web",
        "customer": {"name": "Li Wei", "email": email, "phone": "+86 138 0000 0000", "postcode": postcode},
        "payment": {"method": "alipay", "reference": "PAY-1"},
        "shipping_paid": "10.00",
        "gift": gift,
        "lines": lines
        or [
            {
                "line_id": "1",
                "sku": "TEE-S",
                "product_name": "T-shirt",
                "variant": "S",
                "category": "tops",
                "quantity": 2,
                "unit_price": "99.00",
                "discount": "10.00",
                "tax": "0",
                "final_sale": False,
            },
            {
                "line_id": "2",
                "sku": "SCARF-RED",
                "product_name": "Silk scarf",
                "variant": "Red",
                "category": "accessories",
                "quantity": 1,
                "unit_price": "259.00",
                "discount": "0",
                "tax": "0",
                "final_sale": False,
            },
        ],
    }


PRODUCTS = {
    "products": [
        {
            "product_code": "TEE",
            "name": "T-shirt",
            "category": "tops",
            "variants": [
                {"sku": "TEE-S", "variant": "S", "stock": 5},
                {"sku": "TEE-M", "variant": "M", "stock": 0},
                {"sku": "TEE-L", "variant": "L", "stock": 3},
            ],
        },
        {
            "product_code": "SCARF",
            "name": "Silk scarf",
            "category": "accessories",
            "variants": [{"sku": "SCARF-RED", "variant": "Red", "stock": 1}],
        },
    ]
}

COAT = [
    {
        "line_id": "1",
        "sku": "COAT-M",
        "product_name": "Coat",
        "variant": "M",
        "category": "outerwear",
        "quantity": 1,
        "unit_price": "2899.00",
        "discount": "0",
        "tax": "0",
        "final_sale": False,
    }
]


def carrier_event(code, kind="picked_up", event_id="evt-1", minutes=0, location="Pudong depot") -> dict:
    at = datetime.now(UTC) + timedelta(minutes=minutes)
    return {"event_id": event_id, "pickup_code": code, "kind": kind, "at": at.isoformat(), "location": location}


# --- the shopper ----------------------------------------------------------------


def login_shopper(client, number: str = "SO-1001", contact: str = "li.wei@example.com"):
    token = get_csrf(client)
    return client.post("/lookup", data={"csrf_token": token, "order_number": number, "contact": contact})


def form_for(client, **lines) -> dict:
    """Form data for the order page: ``lines={"0": {...}}`` keyed by line index; every line starts at quantity 0."""
    page = soup(client.get("/order"))
    data = {"csrf_token": csrf_token(str(page))}
    for field in page.select('input[type="hidden"][name^="lines-"][name$="-line_id"]'):
        prefix = field["name"].removesuffix("-line_id")
        data[f"{prefix}-line_id"] = field["value"]
        data[f"{prefix}-quantity"] = "0"
        data[f"{prefix}-outcome"] = "refund"
    for key, values in lines.items():
        for name, value in values.items():
            data[f"lines-{key}-{name}"] = value
    return data


def step(client, data: dict, at: str, go: str = "next", htmx: bool = False, **kw):
    """Post one step of the guided return (``at`` is the step on screen) with ``data`` as the form."""
    headers = {"HX-Request": "true"} if htmx else {}
    return client.post("/order/step", data={**data, "step": at, "go": go}, headers=headers, **kw)


def refund_once_back_as_new(app, client, session, req):
    """Carry an approved request through pickup and receiving (every unit back as grade A) and
    return the refund preview finance would then see."""
    from portal.domain.receiving import ReceivedLine
    from portal.services.receiving import receive_parcel
    from portal.services.refunds import preview_refund, refund_settings

    post_json(client, "/api/v1/carrier-events", carrier_event(req.pickup_code, event_id=f"e-{req.rma}"))
    session.refresh(req)
    lines = [ReceivedLine(rl.id, rl.quantity, "A", False, "restock") for rl in req.lines]
    receive_parcel(session, req, warehouse_worker(session), lines, [])
    session.refresh(req)
    return preview_refund(session, req, refund_settings(app.config))


SLA_LADDER = [
    {"key": "remind", "at_fraction": 0.75, "action": "remind"},
    {"key": "lead", "after_breach_minutes": 0, "action": "move_to_lead"},
    {"key": "manager", "after_breach_minutes": 60, "action": "notify_manager"},
]


def shanghai_desk(session, password: str | None = None) -> dict:
    """The finance desk working 09:00-12:00 and 13:00-18:00 Shanghai time, Monday to Friday (Tuesday
    24 November 2026 a holiday), with an agent who takes new tickets (agnes), a lead (leo) and a
    manager (mia), and a rule routing high values there. No SLA policy yet. Returns the rows."""
    from portal.db.models import BusinessCalendarRow, CalendarException, RoutingRuleRow, StaffUser, TeamMember
    from portal.services.staff import hasher
    from portal.services.tickets import ensure_team

    def person(name: str, role: str):
        user = StaffUser(
            email=f"{name}@example.com",
            name=name.title(),
            role=role,
            password_hash=hasher.hash(password) if password else "x",
            active=True,
            session_version=1,
        )
        session.add(user)
        session.flush()
        return user

    agent, lead, manager = person("agnes", "agent"), person("leo", "lead"), person("mia", "manager")
    team = ensure_team(session, "finance", "Finance desk")
    team.lead_id, team.manager_id = lead.id, manager.id
    session.add(TeamMember(team_id=team.id, staff_id=agent.id, cap=10))
    session.add(
        RoutingRuleRow(
            position=1,
            name="High value",
            conditions={"min_value": "1000"},
            team=team,
            priority="high",
            ticket_class="A",
        )
    )
    week = {d: ["09:00-12:00", "13:00-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")}
    calendar = BusinessCalendarRow(
        code="cn", name="Shanghai office", timezone="Asia/Shanghai", weekly=week, country="CN"
    )
    session.add(calendar)
    session.flush()
    holiday = datetime(2026, 11, 24).date()
    session.add(CalendarException(calendar_id=calendar.id, day=holiday, hours=[], note="company holiday"))
    session.commit()
    return {"agent": agent, "lead": lead, "manager": manager, "team": team, "calendar": calendar}


def free_port() -> int:
    """A TCP port on loopback nobody listens on (for a server a test starts)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str) -> tuple[int, str]:
    """Status and body of a GET, error statuses included."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def open_coat_ticket(app, number: str, at) -> int:
    """The high-value coat returned at ``at`` (delivered the day before) under the default policy;
    the id of its ticket."""
    from portal.db import session_scope
    from portal.db.models import Ticket
    from portal.domain.orders import parse_order
    from portal.domain.policy import load_policy
    from portal.services.filing import LineRequest, open_return
    from portal.services.orders import upsert_order
    from portal.services.policies import default_policy_text
    from portal.storage import LocalPhotoStore

    with session_scope(app) as s:
        order, _ = upsert_order(s, parse_order(order_payload(number, lines=COAT)))
        order.delivered_at = at - timedelta(days=1)
        s.commit()
        policy = load_policy(default_policy_text())
        line = LineRequest("1", 1, "size_fit", outcome="refund")
        req = open_return(s, order, [line], policy, at, "en", LocalPhotoStore(app.config["PHOTO_PATH"]))
        return s.scalars(select(Ticket.id).where(Ticket.request_id == req.id)).one()


def finance_desk_sla(session, timezone: str = "Asia/Shanghai") -> None:
    """Both clocks for the finance desk's high-priority tickets (the ``desk`` fixture), counted around
    the clock: 2 hours to the first response, 10 to the resolution."""
    from portal.db.models import BusinessCalendarRow, SlaPolicy, Team

    days = {d: ["00:00-23:59"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    calendar = BusinessCalendarRow(code="always", name="Always", timezone=timezone, weekly=days, country="CN")
    session.add(calendar)
    session.flush()
    team = session.scalars(select(Team).where(Team.code == "finance")).one()
    session.add(
        SlaPolicy(
            team_id=team.id,
            priority="high",
            first_response_minutes=120,
            resolution_minutes=600,
            calendar_id=calendar.id,
            ladder=[],
        )
    )
    session.commit()


def shanghai_desk_with_policy(session, password: str | None = None) -> dict:
    """``shanghai_desk`` with the SLA policy of its high-value tickets (2 h to the first response, 4 h to
    resolve, business hours, ``SLA_LADDER``), committed. Returns the rows and ``policy``."""
    from portal.db.models import SlaPolicy

    desk = shanghai_desk(session, password)
    policy = SlaPolicy(
        team_id=desk["team"].id,
        priority="high",
        first_response_minutes=120,
        resolution_minutes=240,
        calendar_id=desk["calendar"].id,
        ladder=SLA_LADDER,
    )
    session.add(policy)
    session.commit()
    return {**desk, "policy": policy}


def submit_coat(app, number="HV-1", email="li.wei@example.com") -> str:
    """A shopper orders the high-value coat and asks to return it; returns the RMA."""
    client = app.test_client()
    post_json(client, "/api/v1/orders", order_payload(number, lines=COAT, email=email))
    assert login_shopper(client, number=number, contact=email).status_code == 303
    response = client.post(
        "/order/request", data=form_for(client, **{"0": {"quantity": "1", "reason": "size_fit", "outcome": "refund"}})
    )
    return response.headers["Location"].rsplit("/", 1)[1]


# --- staff ----------------------------------------------------------------------


def sign_in(client, email, password=PASSWORD):
    token = get_csrf(client, "/staff/login")
    return client.post("/staff/login", data={"csrf_token": token, "email": email, "password": password})


def finance_user(session, name):
    """A finance staff row (no usable password), committed."""
    from portal.db.models import StaffUser

    user = StaffUser(
        email=f"{name}@example.com", name=name, role="finance", password_hash="x", active=True, session_version=1
    )
    session.add(user)
    session.commit()
    return user


def warehouse_worker(session) -> int:
    from portal.db.models import StaffUser

    user = session.scalars(select(StaffUser).where(StaffUser.email == "wh@example.com")).one_or_none()
    if user is None:
        user = StaffUser(
            email="wh@example.com", name="Wen", role="warehouse", password_hash="x", active=True, session_version=1
        )
        session.add(user)
        session.commit()
    return user.id


def inspected(app, client, session, number="RF-1", quantity="2", outcome="refund", lines=None, grade="A", missing=0):
    """A request carried through pickup and warehouse receiving, ready for a refund (or, with
    ``missing`` units short on each line, waiting for an agent with a discrepancy)."""
    from portal.db.models import ReturnRequest
    from portal.domain.receiving import Finding, ReceivedLine
    from portal.services.receiving import receive_parcel

    post_json(client, "/api/v1/orders", order_payload(number, lines=lines))
    shopper = app.test_client()
    login_shopper(shopper, number=number)
    shopper.post(
        "/order/request",
        data=form_for(shopper, **{"0": {"quantity": quantity, "reason": "size_fit", "outcome": outcome}}),
    )
    req = session.scalars(
        select(ReturnRequest).join(ReturnRequest.order).where(ReturnRequest.order.has(order_number=number))
    ).one()
    post_json(client, "/api/v1/carrier-events", carrier_event(req.pickup_code, event_id=f"e-{number}"))
    session.refresh(req)
    receive_parcel(
        session,
        req,
        warehouse_worker(session),
        [ReceivedLine(rl.id, rl.quantity - missing, grade, False, "restock") for rl in req.lines],
        [Finding("short_quantity", rl.id, missing, "not in the parcel") for rl in req.lines if missing],
    )
    return req


# Expected outcome of every staff route for every kind of caller.
# 303 = sent to sign in, 200 = allowed, 403 = signed in but not allowed, 404 = allowed but no such thing.
WORKERS = {"agent", "lead", "manager", "admin"}
INSIGHTS = {"lead", "manager", "admin"}
INSIGHTS_MONEY = INSIGHTS | {"finance"}
STAFF_ROUTES = [
    ("GET", "/staff/", {"anonymous": 303, "shopper": 303, **{r: 200 for r in ROLES}}),
    ("GET", "/staff/queue", {"anonymous": 303, "shopper": 303, **{r: 200 if r in WORKERS else 403 for r in ROLES}}),
    ("GET", "/staff/requests/R-XXX-XXX-XXX/photos", {"anonymous": 303, "shopper": 303, **{r: 404 for r in ROLES}}),
    ("GET", "/staff/photos/999999/thumb", {"anonymous": 303, "shopper": 303, **{r: 404 for r in ROLES}}),
    ("GET", "/staff/photos/999999/overlay", {"anonymous": 303, "shopper": 303, **{r: 404 for r in ROLES}}),
    # POSTs without a CSRF token are refused before anything else (400) for everyone signed in or not.
    ("POST", "/staff/tickets/999999/take", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("POST", "/staff/queue/bulk", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("POST", "/staff/tickets/999999/close", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("GET", "/staff/settings", {"anonymous": 303, "shopper": 303, **{r: 200 for r in ROLES}}),
    ("POST", "/staff/settings", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("POST", "/staff/requests/R-XXX-XXX-XXX/macro/1", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("POST", "/staff/queue/views", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("POST", "/staff/queue/views/999999/delete", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("POST", "/staff/tickets/999999/here", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("POST", "/staff/requests/R-XXX-XXX-XXX/decide", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    (
        "POST",
        "/staff/requests/R-XXX-XXX-XXX/accept-arrived",
        {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}},
    ),
    ("GET", "/admin/staff", {"anonymous": 303, "shopper": 303, **{r: 200 if r == "admin" else 403 for r in ROLES}}),
    ("POST", "/admin/staff", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("GET", "/admin/replies", {"anonymous": 303, "shopper": 303, **{r: 200 if r == "admin" else 403 for r in ROLES}}),
    (
        "GET",
        "/admin/rejection-reasons",
        {"anonymous": 303, "shopper": 303, **{r: 200 if r == "admin" else 403 for r in ROLES}},
    ),
    ("POST", "/admin/rejection-reasons", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    (
        "GET",
        "/admin/rejection-reasons/999999",
        {"anonymous": 303, "shopper": 303, **{r: 404 if r == "admin" else 403 for r in ROLES}},
    ),
    ("GET", "/admin/policy", {"anonymous": 303, "shopper": 303, **{r: 200 if r == "admin" else 403 for r in ROLES}}),
    (
        "GET",
        "/admin/policy/new",
        {"anonymous": 303, "shopper": 303, **{r: 200 if r == "admin" else 403 for r in ROLES}},
    ),
    ("POST", "/admin/policy/new", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    (
        "GET",
        "/admin/policy/999999",
        {"anonymous": 303, "shopper": 303, **{r: 404 if r == "admin" else 403 for r in ROLES}},
    ),
    ("POST", "/admin/policy/999999/publish", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("POST", "/admin/policy/rollback", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("POST", "/admin/replies", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    (
        "GET",
        "/admin/replies/999999",
        {"anonymous": 303, "shopper": 303, **{r: 404 if r == "admin" else 403 for r in ROLES}},
    ),
    ("POST", "/admin/replies/999999", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("POST", "/staff/requests/R-XXX-XXX-XXX/reply", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("GET", "/staff/notifications", {"anonymous": 303, "shopper": 303, **{r: 200 for r in ROLES}}),
    ("POST", "/staff/notifications/read", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("GET", "/staff/tickets/999999", {"anonymous": 303, "shopper": 303, **{r: 404 for r in ROLES}}),
    ("GET", "/admin/teams", {"anonymous": 303, "shopper": 303, **{r: 200 if r == "admin" else 403 for r in ROLES}}),
    ("GET", "/admin/jobs", {"anonymous": 303, "shopper": 303, **{r: 200 if r == "admin" else 403 for r in ROLES}}),
    ("GET", "/admin/wear", {"anonymous": 303, "shopper": 303, **{r: 200 if r == "admin" else 403 for r in ROLES}}),
    ("POST", "/admin/wear/thresholds", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("POST", "/admin/jobs/999999/retry", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("POST", "/admin/teams/999999", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("POST", "/admin/teams/999999/members", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("POST", "/admin/members/999999", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("GET", "/staff/orders", {"anonymous": 303, "shopper": 303, **{r: 200 if r in WORKERS else 403 for r in ROLES}}),
    (
        "GET",
        "/staff/orders/NOPE-404",
        {"anonymous": 303, "shopper": 303, **{r: 404 if r in WORKERS else 403 for r in ROLES}},
    ),
    ("POST", "/staff/orders/NOPE-404", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    # Reasons back to products: leads, managers and admins (no personal data, but not everyone's business).
    (
        "GET",
        "/staff/products?month=2026-11",
        {"anonymous": 303, "shopper": 303, **{r: 200 if r in INSIGHTS else 403 for r in ROLES}},
    ),
    (
        "GET",
        "/staff/products/export.csv?month=2026-11",
        {"anonymous": 303, "shopper": 303, **{r: 200 if r in INSIGHTS else 403 for r in ROLES}},
    ),
    (
        "GET",
        "/staff/products/NOPE-404",
        {"anonymous": 303, "shopper": 303, **{r: 404 if r in INSIGHTS else 403 for r in ROLES}},
    ),
    (
        "GET",
        "/staff/products/NOPE-404/trend.svg",
        {"anonymous": 303, "shopper": 303, **{r: 404 if r in INSIGHTS else 403 for r in ROLES}},
    ),
    (
        "GET",
        "/warehouse/",
        {
            "anonymous": 303,
            "shopper": 303,
            **{r: 200 if r in ("warehouse", "manager", "admin") else 403 for r in ROLES},
        },
    ),
    (
        "GET",
        "/warehouse/parcels/R-XXX-XXX-XXX",
        {
            "anonymous": 303,
            "shopper": 303,
            **{r: 404 if r in ("warehouse", "manager", "admin") else 403 for r in ROLES},
        },
    ),
    ("POST", "/warehouse/pickups", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("POST", "/warehouse/parcels/R-XXX-XXX-XXX", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    (
        "GET",
        "/finance/",
        {"anonymous": 303, "shopper": 303, **{r: 200 if r in ("finance", "admin") else 403 for r in ROLES}},
    ),
    (
        "GET",
        "/finance/export.csv",
        {"anonymous": 303, "shopper": 303, **{r: 200 if r in ("finance", "admin") else 403 for r in ROLES}},
    ),
    ("POST", "/finance/requests/R-XXX-XXX-XXX/approve", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("POST", "/finance/refunds/999999/second", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("POST", "/finance/refunds/999999/execute", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("POST", "/finance/refunds/999999/retry", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("POST", "/finance/refunds/999999/resolve", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    (
        "GET",
        "/finance/refunds/999999/second",
        {"anonymous": 303, "shopper": 303, **{r: 404 if r in ("finance", "admin") else 403 for r in ROLES}},
    ),
    ("POST", "/finance/bulk-approve", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    (
        "GET",
        "/finance/ledger",
        {"anonymous": 303, "shopper": 303, **{r: 200 if r in ("finance", "admin") else 403 for r in ROLES}},
    ),
    (
        "GET",
        "/finance/ledger.csv",
        {"anonymous": 303, "shopper": 303, **{r: 200 if r in ("finance", "admin") else 403 for r in ROLES}},
    ),
    ("GET", "/admin/sla", {"anonymous": 303, "shopper": 303, **{r: 200 if r == "admin" else 403 for r in ROLES}}),
    (
        "GET",
        "/admin/sla/999999",
        {"anonymous": 303, "shopper": 303, **{r: 404 if r == "admin" else 403 for r in ROLES}},
    ),
    ("POST", "/admin/sla/999999", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    (
        "GET",
        "/admin/calendars/999999",
        {"anonymous": 303, "shopper": 303, **{r: 404 if r == "admin" else 403 for r in ROLES}},
    ),
    ("POST", "/admin/calendars/999999", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("GET", "/admin/audit", {"anonymous": 303, "shopper": 303, **{r: 200 if r == "admin" else 403 for r in ROLES}}),
    ("GET", "/admin/audit.csv", {"anonymous": 303, "shopper": 303, **{r: 200 if r == "admin" else 403 for r in ROLES}}),
    # Shoppers' data requests: leads, managers and admins answer them.
    ("GET", "/staff/privacy", {"anonymous": 303, "shopper": 303, **{r: 200 if r in INSIGHTS else 403 for r in ROLES}}),
    (
        "GET",
        "/staff/privacy/999999",
        {"anonymous": 303, "shopper": 303, **{r: 404 if r in INSIGHTS else 403 for r in ROLES}},
    ),
    ("POST", "/staff/privacy/999999/complete", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("GET", "/admin/routing", {"anonymous": 303, "shopper": 303, **{r: 200 if r == "admin" else 403 for r in ROLES}}),
    ("POST", "/admin/routing", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    (
        "GET",
        "/admin/routing/999999",
        {"anonymous": 303, "shopper": 303, **{r: 404 if r == "admin" else 403 for r in ROLES}},
    ),
    ("POST", "/admin/routing/999999", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("POST", "/admin/staff/999999/role", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("POST", "/admin/staff/999999/active", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("POST", "/staff/logout", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("POST", "/staff/tickets/999999/note", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("POST", "/staff/tickets/999999/reassign", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("POST", "/staff/requests/R-XXX-XXX-XXX/contact", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("GET", "/staff/requests/R-XXX-XXX-XXX", {"anonymous": 303, "shopper": 303, **{r: 404 for r in ROLES}}),
    ("GET", "/staff/photos/999999", {"anonymous": 303, "shopper": 303, **{r: 404 for r in ROLES}}),
    ("GET", "/staff/login", {"anonymous": 200, "shopper": 200, **{r: 200 for r in ROLES}}),
    # Passwords: change your own (signed in), ask for a link, set one through a link; an admin makes links.
    ("GET", "/staff/password", {"anonymous": 303, "shopper": 303, **{r: 200 for r in ROLES}}),
    ("POST", "/staff/password", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("GET", "/staff/password/forgot", {"anonymous": 200, "shopper": 200, **{r: 200 for r in ROLES}}),
    ("POST", "/staff/password/forgot", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("GET", "/staff/password/reset/not-a-token", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("GET", "/staff/password/reset", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("POST", "/staff/password/reset", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("POST", "/admin/staff/999999/reset", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    # Insights: leads, managers and admins see it all; finance only the money part (its charts too).
    (
        "GET",
        "/insights/",
        {"anonymous": 303, "shopper": 303, **{r: 200 if r in INSIGHTS_MONEY else 403 for r in ROLES}},
    ),
    (
        "GET",
        "/insights/charts/rates.svg",
        {"anonymous": 303, "shopper": 303, **{r: 200 if r in INSIGHTS else 403 for r in ROLES}},
    ),
    (
        "GET",
        "/insights/charts/money.svg",
        {"anonymous": 303, "shopper": 303, **{r: 200 if r in INSIGHTS_MONEY else 403 for r in ROLES}},
    ),
    (
        "GET",
        "/insights/charts/nope.svg",
        {"anonymous": 303, "shopper": 303, **{r: 404 if r in INSIGHTS_MONEY else 403 for r in ROLES}},
    ),
]


# --- images ---------------------------------------------------------------------


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def rgb(size=(320, 240), color=(120, 60, 30)) -> Image.Image:
    return Image.new("RGB", size, color)


def jpeg(color=(200, 30, 30), size=(640, 480)) -> bytes:
    return encode(Image.new("RGB", size, color), "JPEG")


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG that declares huge dimensions."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b"")


# --- documents ------------------------------------------------------------------


def pdf_streams(pdf: bytes) -> list[bytes]:
    out = []
    # Up to "\nendstream" only: compressed data may itself end in a "\r" byte, which an optional
    # "\r?" before the newline would eat (about one label in 250 then read as empty). A
    # decompressor object ignores a line-end byte after the end of the data.
    for match in re.finditer(rb"stream\r?\n(.*?)\nendstream", pdf, re.S):
        raw = match.group(1)
        try:
            out.append(zlib.decompressobj().decompress(raw))
        except zlib.error:
            out.append(raw)
    return out


def _unescape(literal: bytes) -> bytes:
    simple = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}

    def replace(match: re.Match[bytes]) -> bytes:
        token = match.group(1)
        if token.isdigit():
            return bytes([int(token, 8)])
        return simple.get(token, token)

    return re.sub(rb"\\([0-7]{1,3}|.)", replace, literal, flags=re.S)


def pdf_text(pdf: bytes) -> str:
    """The strings shown by ``Tj``, one per line, decoded through the ToUnicode map if any."""
    streams = pdf_streams(pdf)
    to_unicode: dict[bytes, str] = {}
    for stream in streams:
        if b"beginbfchar" in stream:
            for cid, uni in re.findall(rb"<([0-9A-Fa-f]{4})>\s*<([0-9A-Fa-f]{4,8})>", stream):
                to_unicode[bytes.fromhex(cid.decode())] = bytes.fromhex(uni.decode()).decode("utf-16-be")
    lines = []
    for stream in streams:
        for literal in re.findall(rb"\(((?:\\.|[^\\)])*)\)\s*Tj", stream, re.S):
            data = _unescape(literal)
            if to_unicode:
                lines.append("".join(to_unicode.get(data[i : i + 2], "\ufffd") for i in range(0, len(data), 2)))
            else:
                lines.append(data.decode("cp1252"))
    return "\n".join(lines)


def email_text(message) -> str:
    """The plain-text part of an email (each one also carries an HTML twin)."""
    return message.get_body(("plain",)).get_content()


# --- the browser (Playwright pages) ------------------------------------------------------


def browser_shopper_files(page, reason: str = "size_fit", outcome: str = "refund", quantity: str = "1") -> None:
    """Go through the guided return for the order's first item, as a shopper taps it, and submit."""
    page.locator("label.item-card").first.click()
    quantity_field = page.locator('select[name="lines-0-quantity"]')
    if quantity_field.count():
        quantity_field.select_option(quantity)
    for step, choice in (("items", None), ("reasons", reason), ("details", None), ("outcome", outcome)):
        page.locator(f'input[name="step"][value="{step}"]').wait_for(state="attached")
        if choice:
            page.locator(f'label.choice:has(input[value="{choice}"])').click()
        page.locator(".step-nav button.primary").click()
    page.locator('input[name="step"][value="review"]').wait_for(state="attached")
    page.locator(".step-nav button.primary").click()  # Submit
    page.wait_for_url(re.compile(r".*/requests/R-"))


def browser_shopper_sign_in(page, base: str, number: str = "SO-1001", contact: str = "li.wei@example.com") -> None:
    """Find an order from the start page, as a shopper types it."""
    page.goto(base + "/")
    page.get_by_label("Order number").fill(number)
    page.get_by_label("Email or postcode").fill(contact)
    page.get_by_role("button", name="Find my order").click()
    page.wait_for_url(re.compile(r".*/order$"))


def rollup_rows(session) -> dict[tuple, tuple]:
    """The insights' daily rollups as they stand, by key (sums rounded as the database keeps them)."""
    from decimal import Decimal

    from portal.db.insight_rollups import InsightRollup

    session.expire_all()
    return {
        (r.metric, r.day, r.channel, r.category, r.team_id, r.k1, r.k2): (
            r.n1,
            r.n2,
            r.n3,
            round(r.x1, 6),
            Decimal(r.m1).quantize(Decimal("0.0001")),
            Decimal(r.m2).quantize(Decimal("0.0001")),
        )
        for r in session.scalars(select(InsightRollup))
    }
