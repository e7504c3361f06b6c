"""Staff roles and what each may open."""

from __future__ import annotations

from portal.domain.text import N_

ROLES = ("agent", "lead", "manager", "warehouse", "finance", "admin")

ROLE_LABELS = {
    "agent": N_("Agent"),
    "lead": N_("Team lead"),
    "manager": N_("Manager"),
    "warehouse": N_("Warehouse"),
    "finance": N_("Finance"),
    "admin": N_("Administrator"),
}

# Who may read return requests in the back office.
CAN_VIEW_REQUESTS = frozenset({"agent", "lead", "manager", "admin", "finance", "warehouse"})

# Who works tickets (queues, take, approve, reject).
CAN_WORK_TICKETS = frozenset({"agent", "lead", "manager", "admin"})
# Who receives parcels in the warehouse, and who refunds.
CAN_RECEIVE = frozenset({"warehouse", "manager", "admin"})
CAN_REFUND = frozenset({"finance", "admin"})
