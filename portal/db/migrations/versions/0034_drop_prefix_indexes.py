"""escalation steps and clocks: drop the single-column indexes on ``escalation_due.clock_id`` and
``ticket_clock.ticket_id``; the unique constraints that start with those columns serve the same
lookups, and every update the sweep makes to those rows no longer writes an entry in them too

Revision ID: 0034
Revises: 0033
Create Date: 2026-11-30 01:00:00
"""

from alembic import op

revision = "0034"
down_revision = "0033"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("escalation_due", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_escalation_due_clock_id"))
    with op.batch_alter_table("ticket_clock", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ticket_clock_ticket_id"))


def downgrade() -> None:
    with op.batch_alter_table("ticket_clock", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ticket_clock_ticket_id"), ["ticket_id"], unique=False)
    with op.batch_alter_table("escalation_due", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_escalation_due_clock_id"), ["clock_id"], unique=False)
