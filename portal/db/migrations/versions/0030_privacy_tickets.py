"""privacy: a shopper's data request is worked as a ticket

Revision ID: 0030
Revises: 0029
Create Date: 2026-11-29 12:20:00

A ticket gains its kind: "return" (every existing ticket, the request's own) or "data_request"
(a shopper's request for a copy or an erasure of their data, asked on that return's page). A
request keeps exactly one ticket of its own (a unique index on the request for kind "return");
its data requests may have several. A data request points at its ticket (none for requests made
before this).
"""

import sqlalchemy as sa
from alembic import op

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=16), server_default="return", nullable=False))
        batch_op.drop_constraint(batch_op.f("uq_ticket_request_id"), type_="unique")
        batch_op.create_index(batch_op.f("ix_ticket_request_id"), ["request_id"], unique=False)
        batch_op.create_index(
            "ux_ticket_request_return",
            ["request_id"],
            unique=True,
            postgresql_where=sa.text("kind = 'return'"),
            sqlite_where=sa.text("kind = 'return'"),
        )
    with op.batch_alter_table("privacy_request", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ticket_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f("fk_privacy_request_ticket_id_ticket"), "ticket", ["ticket_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("privacy_request", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_privacy_request_ticket_id_ticket"), type_="foreignkey")
        batch_op.drop_column("ticket_id")
    # Data-request tickets (and what hangs on them) cannot stay once a request holds one ticket only.
    data_tickets = "SELECT id FROM ticket WHERE kind = 'data_request'"
    clocks = f"SELECT id FROM ticket_clock WHERE ticket_id IN ({data_tickets})"
    op.execute(f"DELETE FROM escalation_due WHERE ticket_id IN ({data_tickets})")
    op.execute(f"DELETE FROM escalation_due WHERE clock_id IN ({clocks})")
    op.execute(f"DELETE FROM ticket_clock WHERE ticket_id IN ({data_tickets})")
    op.execute(f"UPDATE staff_notification SET ticket_id = NULL WHERE ticket_id IN ({data_tickets})")
    op.execute(f"DELETE FROM ticket_event WHERE ticket_id IN ({data_tickets})")
    op.execute(f"DELETE FROM ticket_viewer WHERE ticket_id IN ({data_tickets})")
    op.execute("DELETE FROM ticket WHERE kind = 'data_request'")
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.drop_index("ux_ticket_request_return")
        batch_op.drop_index(batch_op.f("ix_ticket_request_id"))
        batch_op.create_unique_constraint(batch_op.f("uq_ticket_request_id"), ["request_id"])
        batch_op.drop_column("kind")
