"""Staff search matches what was typed: ``%`` and ``_`` are literal characters, not wildcards."""

from __future__ import annotations

import pytest

from portal.db.models import RoutingRuleRow, TeamMember
from portal.services.staff import create_staff
from portal.services.tickets import ensure_team
from tests.helpers import PASSWORD, sign_in, submit_coat


@pytest.fixture
def desk(session):
    agent = create_staff(session, "agent@example.com", "Ann Agent", "agent", PASSWORD)
    team = ensure_team(session, "finance", "Finance desk")
    session.add(TeamMember(team_id=team.id, staff_id=agent.id, cap=10))
    session.add(RoutingRuleRow(position=1, name="All", conditions={}, team=team, priority="normal", ticket_class="A"))
    session.commit()


@pytest.mark.parametrize(("typed", "hit", "miss"), [("50%", "PCT-50%", "PCT-5000"), ("A_B", "US-A_B", "US-AXB")])
def test_wildcards_are_literal(client, app, desk, typed, hit, miss):
    submit_coat(app, hit, email="one@example.com")
    submit_coat(app, miss, email="two@example.com")
    sign_in(client, "agent@example.com")
    page = client.get("/staff/queue", query_string={"view": "all", "q": typed}).get_data(as_text=True)
    assert hit in page
    assert miss not in page
