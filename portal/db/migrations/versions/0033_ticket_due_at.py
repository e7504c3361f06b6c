"""tickets: the nearest deadline of their running clocks on the ticket (``due_at``), indexed, so the
queue's default order no longer computes it from the clocks for every ticket

Revision ID: 0033
Revises: 0032
Create Date: 2026-11-29 16:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0033"
down_revision = "0032"
branch_labels = None
depends_on = None

OPEN = sa.text("status <> 'closed'")


def upgrade() -> None:
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.add_column(sa.Column("due_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE ticket SET due_at = (SELECT min(c.deadline) FROM ticket_clock AS c"
        " WHERE c.ticket_id = ticket.id AND c.state = 'running')"
    )
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.create_index("ix_ticket_due", ["due_at", "id"], unique=False)
        batch_op.create_index(
            "ix_ticket_open_due", ["due_at", "id"], unique=False, postgresql_where=OPEN, sqlite_where=OPEN
        )
        batch_op.create_index(
            "ix_ticket_open_assignee_due",
            ["assignee_id", "due_at", "id"],
            unique=False,
            postgresql_where=OPEN,
            sqlite_where=OPEN,
        )


def downgrade() -> None:
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.drop_index("ix_ticket_open_assignee_due", postgresql_where=OPEN, sqlite_where=OPEN)
        batch_op.drop_index("ix_ticket_open_due", postgresql_where=OPEN, sqlite_where=OPEN)
        batch_op.drop_index("ix_ticket_due")
        batch_op.drop_column("due_at")
