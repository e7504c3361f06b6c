"""Shared fixtures: a real database (SQLite, or PostgreSQL via PORTAL_DATABASE_URL) and the app.

The schema is built once per session by the Alembic migrations; every test
starts from empty tables. Plain helper functions live in tests/helpers.py.
"""

from __future__ import annotations

import os

import pytest
from sqlalchemy import text

from portal import create_app
from portal.db import get_engine, make_engine, upgrade
from portal.db.models import Base
from tests.helpers import PRODUCTS, app_config, order_payload, post_json


@pytest.fixture(autouse=True)
def quick_password_hashing(monkeypatch):
    """Argon2 with small parameters in tests; the production default is tested on its own."""
    from argon2 import PasswordHasher

    from portal.services import staff

    monkeypatch.setattr(staff, "hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    url = os.environ.get("PORTAL_DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"


@pytest.fixture(scope="session")
def engine(database_url):
    engine = make_engine(database_url)
    with engine.begin() as conn:
        Base.metadata.drop_all(conn)
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    upgrade(engine)
    yield engine
    engine.dispose()


def _empty_tables(engine) -> None:
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())


@pytest.fixture
def app(tmp_path, database_url, engine):
    app = create_app(app_config(tmp_path / "instance", database_url))
    yield app
    get_engine(app).dispose()
    _empty_tables(engine)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def session(app):
    from portal.db import session_scope

    # No app context here: requests made meanwhile must get their own (and their own ``g``).
    with session_scope(app) as s:
        yield s


@pytest.fixture
def order(client):
    """One delivered two-line order with its products, pushed through the API."""
    assert post_json(client, "/api/v1/products", PRODUCTS).status_code == 200
    response = post_json(client, "/api/v1/orders", order_payload())
    assert response.status_code == 201, response.get_json()
    return response.get_json()


@pytest.fixture
def desk(session):
    """A finance team with one agent (and another agent outside it), and a rule sending high values there."""
    from portal.db.models import RoutingRuleRow, TeamMember
    from portal.services.staff import create_staff
    from portal.services.tickets import ensure_team
    from tests.helpers import PASSWORD

    agent = create_staff(session, "agent@example.com", "Ann Agent", "agent", PASSWORD)
    other = create_staff(session, "other@example.com", "Olly Other", "agent", PASSWORD)
    finance = ensure_team(session, "finance", "Finance desk")
    session.add(TeamMember(team_id=finance.id, staff_id=agent.id, cap=10))
    session.add(
        RoutingRuleRow(
            position=1,
            name="High value",
            conditions={"min_value": "1000"},
            team=finance,
            priority="high",
            ticket_class="A",
        )
    )
    session.commit()
    return {"agent": agent.id, "other": other.id}
