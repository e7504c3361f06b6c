"""Staff roles and what each may open: the one home for role names and role sets."""

from __future__ import annotations

from portal.domain.text import N_

AGENT = "agent"
LEAD = "lead"
MANAGER = "manager"
WAREHOUSE = "warehouse"
FINANCE = "finance"
ADMIN = "admin"

ROLES = (AGENT, LEAD, MANAGER, WAREHOUSE, FINANCE, ADMIN)

ROLE_LABELS = {
    AGENT: N_("Agent"),
    LEAD: N_("Team lead"),
    MANAGER: N_("Manager"),
    WAREHOUSE: N_("Warehouse"),
    FINANCE: N_("Finance"),
    ADMIN: N_("Administrator"),
}

# Who may read return requests in the back office.
CAN_VIEW_REQUESTS = frozenset({AGENT, LEAD, MANAGER, ADMIN, FINANCE, WAREHOUSE})

# Who works tickets (queues, take, approve, reject); also who may be a team member.
CAN_WORK_TICKETS = frozenset({AGENT, LEAD, MANAGER, ADMIN})
# Who may approve in bulk tickets the policy would not approve on its own (agents bulk-approve only
# those it would).
CAN_APPROVE_CHOSEN = frozenset({LEAD, MANAGER, ADMIN})
# Who receives parcels in the warehouse, and who refunds.
CAN_RECEIVE = frozenset({WAREHOUSE, MANAGER, ADMIN})
CAN_REFUND = frozenset({FINANCE, ADMIN})
# Who administers the portal (accounts, teams, routing, replies, SLA, audit log).
CAN_ADMIN = frozenset({ADMIN})
# Who may lead a team, and who may manage one (receives level-2 escalations).
CAN_LEAD_TEAM = frozenset({LEAD, MANAGER, ADMIN})
CAN_MANAGE_TEAM = frozenset({MANAGER, ADMIN})
# Who reads the insights: returns by product and reason, the ranked "what to fix" list.
CAN_SEE_INSIGHTS = frozenset({LEAD, MANAGER, ADMIN})
# The insights dashboard's money part (refunds, store credit, value recovered) is finance's too.
CAN_SEE_MONEY_INSIGHTS = CAN_SEE_INSIGHTS | {FINANCE}
# Who answers shoppers' requests for a copy or erasure of their data (the privacy tickets).
CAN_HANDLE_DATA_REQUESTS = frozenset({LEAD, MANAGER, ADMIN})


def in_role_order(roles: frozenset[str]) -> tuple[str, ...]:
    """A role set as a tuple in ``ROLES`` order (stable for queries and choice lists)."""
    return tuple(role for role in ROLES if role in roles)
