"""Staff sign-in, sessions that really end, and who may open what."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from portal.db.models import StaffUser
from portal.domain.roles import ROLES
from portal.services.staff import StaffError, create_staff, set_active
from tests.helpers import PASSWORD, STAFF_ROUTES, WORKERS, form_for, get_csrf, hrefs, login_shopper, sign_in


@pytest.fixture
def accounts(session):
    return {role: create_staff(session, f"{role}@example.com", role.title(), role, PASSWORD).id for role in ROLES}


def test_sign_in_and_see_requests(client, accounts, order):
    shopper = client.application.test_client()
    login_shopper(shopper)
    shopper.post(
        "/order/request", data=form_for(shopper, **{"0": {"quantity": "1", "reason": "size_fit", "outcome": "refund"}})
    )
    response = sign_in(client, "agent@example.com")
    assert response.status_code == 303 and response.headers["Location"] == "/staff/"
    home = client.get("/staff/")
    assert "SO-1001" in home.text and "li.wei@example.com" not in home.text and "l***@e***.com" in home.text
    detail = client.get(hrefs(home, "/staff/requests/")[0]).get_data(as_text=True)
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
    user = StaffUser(
        email="old@example.com",
        name="Old",
        role="agent",
        password_hash=weak.hash(PASSWORD),
        active=True,
        session_version=1,
    )
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
    response = client.post(
        "/staff/login?next=https://evil.example/",
        data={"csrf_token": token, "email": "agent@example.com", "password": PASSWORD},
    )
    assert response.headers["Location"] == "/staff/"


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
    for method, path, expected in STAFF_ROUTES:
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
    covered = {path.split("/")[2] if path.count("/") > 2 else "" for _, path, _ in STAFF_ROUTES}
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith(("staff.", "admin.", "warehouse.", "finance.")):
            first = rule.rule.split("/")[2] if rule.rule.count("/") > 2 else ""
            assert first in covered or rule.endpoint in ("staff.login",), rule.rule


def test_htmx_request_without_session_gets_401(client):
    assert client.get("/staff/", headers={"HX-Request": "true"}).status_code == 401
