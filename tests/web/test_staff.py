"""Staff sign-in, sessions that really end, and who may open what."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from portal.db.models import StaffUser
from portal.domain.roles import ROLES
from portal.services.staff import StaffError, create_staff, set_active
from tests.conftest import get_csrf, login_shopper
from tests.web.test_shop_request import form_for

PASSWORD = "correct horse battery"


@pytest.fixture
def accounts(session):
    return {role: create_staff(session, f"{role}@example.com", role.title(), role, PASSWORD).id for role in ROLES}


def sign_in(client, email, password=PASSWORD):
    token = get_csrf(client, "/staff/login")
    return client.post("/staff/login", data={"csrf_token": token, "email": email, "password": password})


def test_sign_in_and_see_requests(client, accounts, order):
    shopper = client.application.test_client()
    login_shopper(shopper)
    shopper.post("/order/request", data=form_for(shopper, **{"0": {"quantity": "1", "reason": "size_fit", "outcome": "refund"}}))
    response = sign_in(client, "agent@example.com")
    assert response.status_code == 303 and response.headers["Location"] == "/staff/"
    home = client.get("/staff/").get_data(as_text=True)
    assert "SO-1001" in home and "li.wei@example.com" not in home and "l***@e***.com" in home
    rma = home.split('href="/staff/requests/', 1)[1].split('"', 1)[0]
    detail = client.get(f"/staff/requests/{rma}").get_data(as_text=True)
    assert "default-1" in detail and "window" in detail


def test_wrong_password_and_unknown_email_look_the_same(client, accounts):
    a = sign_in(client, "agent@example.com", "wrong password!")
    b = sign_in(client, "nobody@example.com", "wrong password!")
    assert a.status_code == b.status_code == 422
    assert "not right" in a.get_data(as_text=True)


def test_login_is_throttled(client, accounts):
    for _ in range(10):
        assert sign_in(client, "agent@example.com", "wrong password!").status_code == 422
    assert sign_in(client, "agent@example.com", "wrong password!").status_code == 429


def test_logout_ends_every_session_of_the_account(client, app, accounts):
    other = app.test_client()
    sign_in(client, "lead@example.com")
    sign_in(other, "lead@example.com")
    assert other.get("/staff/").status_code == 200
    client.post("/staff/logout", data={"csrf_token": get_csrf(client, "/staff/")})
    assert client.get("/staff/").status_code == 303
    assert other.get("/staff/").status_code == 303  # the other browser is signed out too


def test_disabling_an_account_ends_its_sessions(client, accounts, session):
    sign_in(client, "finance@example.com")
    assert client.get("/staff/").status_code == 200
    set_active(session, session.get(StaffUser, accounts["finance"]), False)
    assert client.get("/staff/").status_code == 303
    assert sign_in(client, "finance@example.com").status_code == 422


def test_password_rehashed_when_parameters_change(client, session):
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    user = StaffUser(email="old@example.com", name="Old", role="agent", password_hash=weak.hash(PASSWORD), active=True, session_version=1)
    session.add(user)
    session.commit()
    old_hash = user.password_hash
    assert sign_in(client, "old@example.com").status_code == 303
    session.refresh(user)
    assert user.password_hash != old_hash and user.password_hash.startswith("$argon2id$")


def test_production_hasher_is_argon2id_with_recommended_parameters():
    from portal.services.staff import DEFAULT_HASHER

    assert DEFAULT_HASHER.type.name == "ID"
    assert DEFAULT_HASHER.time_cost >= 2 and DEFAULT_HASHER.memory_cost >= 19 * 1024


def test_create_staff_rules(session):
    with pytest.raises(StaffError):
        create_staff(session, "x@example.com", "X", "superuser", PASSWORD)
    with pytest.raises(StaffError):
        create_staff(session, "x@example.com", "X", "agent", "short")
    create_staff(session, "X@example.com", "X", "agent", PASSWORD)
    with pytest.raises(StaffError):
        create_staff(session, "x@example.com", "X", "agent", PASSWORD)


def test_open_redirect_after_login_is_refused(client, accounts):
    token = get_csrf(client, "/staff/login")
    response = client.post("/staff/login?next=https://evil.example/", data={"csrf_token": token, "email": "agent@example.com", "password": PASSWORD})
    assert response.headers["Location"] == "/staff/"


# Expected outcome of every staff route for every kind of caller.
# 303 = sent to sign in, 200 = allowed, 403 = signed in but not allowed, 404 = allowed but no such thing.
WORKERS = {"agent", "lead", "manager", "admin"}
ROUTES = [
    ("GET", "/staff/", {"anonymous": 303, "shopper": 303, **{r: 200 for r in ROLES}}),
    ("GET", "/staff/queue", {"anonymous": 303, "shopper": 303, **{r: 200 if r in WORKERS else 403 for r in ROLES}}),
    ("GET", "/staff/requests/R-XXX-XXX-XXX/photos", {"anonymous": 303, "shopper": 303, **{r: 404 for r in ROLES}}),
    ("GET", "/staff/photos/999999/thumb", {"anonymous": 303, "shopper": 303, **{r: 404 for r in ROLES}}),
    ("GET", "/staff/photos/999999/overlay", {"anonymous": 303, "shopper": 303, **{r: 404 for r in ROLES}}),
    # POSTs without a CSRF token are refused before anything else (400) for everyone signed in or not.
    ("POST", "/staff/tickets/999999/take", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("POST", "/staff/requests/R-XXX-XXX-XXX/decide", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("GET", "/admin/staff", {"anonymous": 303, "shopper": 303, **{r: 200 if r == "admin" else 403 for r in ROLES}}),
    ("POST", "/admin/staff", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("GET", "/admin/replies", {"anonymous": 303, "shopper": 303, **{r: 200 if r == "admin" else 403 for r in ROLES}}),
    ("POST", "/admin/replies", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("GET", "/admin/replies/999999", {"anonymous": 303, "shopper": 303, **{r: 404 if r == "admin" else 403 for r in ROLES}}),
    ("POST", "/admin/replies/999999", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("POST", "/staff/requests/R-XXX-XXX-XXX/reply", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("GET", "/staff/notifications", {"anonymous": 303, "shopper": 303, **{r: 200 for r in ROLES}}),
    ("POST", "/staff/notifications/read", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("GET", "/staff/tickets/999999", {"anonymous": 303, "shopper": 303, **{r: 404 for r in ROLES}}),
    ("GET", "/admin/teams", {"anonymous": 303, "shopper": 303, **{r: 200 if r == "admin" else 403 for r in ROLES}}),
    ("POST", "/admin/teams/999999", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("POST", "/admin/teams/999999/members", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("POST", "/admin/members/999999", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("GET", "/staff/orders", {"anonymous": 303, "shopper": 303, **{r: 200 if r in WORKERS else 403 for r in ROLES}}),
    ("GET", "/staff/orders/NOPE-404", {"anonymous": 303, "shopper": 303, **{r: 404 if r in WORKERS else 403 for r in ROLES}}),
    ("POST", "/staff/orders/NOPE-404", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("GET", "/warehouse/", {"anonymous": 303, "shopper": 303, **{r: 200 if r in ("warehouse", "manager", "admin") else 403 for r in ROLES}}),
    ("GET", "/warehouse/parcels/R-XXX-XXX-XXX", {"anonymous": 303, "shopper": 303, **{r: 404 if r in ("warehouse", "manager", "admin") else 403 for r in ROLES}}),
    ("POST", "/warehouse/pickups", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("POST", "/warehouse/parcels/R-XXX-XXX-XXX", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("GET", "/finance/", {"anonymous": 303, "shopper": 303, **{r: 200 if r in ("finance", "admin") else 403 for r in ROLES}}),
    ("GET", "/finance/export.csv", {"anonymous": 303, "shopper": 303, **{r: 200 if r in ("finance", "admin") else 403 for r in ROLES}}),
    ("POST", "/finance/requests/R-XXX-XXX-XXX/approve", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("POST", "/finance/refunds/999999/second", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("POST", "/finance/refunds/999999/execute", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("POST", "/finance/refunds/999999/retry", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("GET", "/admin/audit", {"anonymous": 303, "shopper": 303, **{r: 200 if r == "admin" else 403 for r in ROLES}}),
    ("GET", "/admin/sla", {"anonymous": 303, "shopper": 303, **{r: 200 if r == "admin" else 403 for r in ROLES}}),
    ("GET", "/admin/sla/999999", {"anonymous": 303, "shopper": 303, **{r: 404 if r == "admin" else 403 for r in ROLES}}),
    ("POST", "/admin/sla/999999", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("GET", "/admin/calendars/999999", {"anonymous": 303, "shopper": 303, **{r: 404 if r == "admin" else 403 for r in ROLES}}),
    ("POST", "/admin/calendars/999999", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("GET", "/admin/routing", {"anonymous": 303, "shopper": 303, **{r: 200 if r == "admin" else 403 for r in ROLES}}),
    ("POST", "/admin/routing", {"anonymous": 400, "shopper": 400, **{r: 400 for r in ROLES}}),
    ("GET", "/admin/routing/999999", {"anonymous": 303, "shopper": 303, **{r: 404 if r == "admin" else 403 for r in ROLES}}),
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
]
CALLERS = ["anonymous", "shopper", *ROLES]


def _as(client, caller):
    if caller == "shopper":
        login_shopper(client)
    elif caller != "anonymous":
        sign_in(client, f"{caller}@example.com")


@pytest.mark.parametrize("caller", CALLERS)
def test_role_matrix(client, accounts, order, caller):
    """Every staff route for one caller; one test per caller keeps the setup cost down."""
    _as(client, caller)
    wrong = []
    for method, path, expected in ROUTES:
        with client.open(path, method=method) as response:
            if response.status_code != expected[caller]:
                wrong.append(f"{method} {path}: {response.status_code}, expected {expected[caller]}")
    assert not wrong, wrong


POSTS_WITH_TOKEN = [
    ("/staff/tickets/999999/take", 404),
    ("/staff/requests/R-XXX-XXX-XXX/decide", 404),
    ("/staff/tickets/999999/note", 404),
    ("/staff/tickets/999999/reassign", 404),
    ("/staff/requests/R-XXX-XXX-XXX/contact", 404),
    ("/staff/requests/R-XXX-XXX-XXX/reply", 404),
]


@pytest.mark.parametrize("caller", CALLERS)
def test_role_matrix_for_posts_with_token(client, accounts, order, caller):
    """With a valid CSRF token: anonymous and shoppers are sent to sign in, non-workers get 403."""
    _as(client, caller)
    token = get_csrf(client, "/staff/login")
    wrong = []
    for path, allowed in POSTS_WITH_TOKEN:
        expected = 303 if caller in ("anonymous", "shopper") else allowed if caller in WORKERS else 403
        status = client.post(path, data={"csrf_token": token}).status_code
        if status != expected:
            wrong.append(f"POST {path}: {status}, expected {expected}")
    assert not wrong, wrong


def test_every_staff_route_is_in_the_matrix(app):
    covered = {path.split("/")[2] if path.count("/") > 2 else "" for _, path, _ in ROUTES}
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith(("staff.", "admin.", "warehouse.", "finance.")):
            first = rule.rule.split("/")[2] if rule.rule.count("/") > 2 else ""
            assert first in covered or rule.endpoint in ("staff.login",), rule.rule


def test_htmx_request_without_session_gets_401(client):
    assert client.get("/staff/", headers={"HX-Request": "true"}).status_code == 401
