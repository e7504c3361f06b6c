"""staff notifications in the reader's language: the message as translatable words; the breached
and breaching-soon views look at both clocks (running deadlines of either metric, recorded breaches)

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-29 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


RUNNING_RESOLUTION = sa.text("state = 'running' AND metric = 'resolution'")
RUNNING = sa.text("state = 'running'")
LIVE_BREACH = sa.text("breached_at IS NOT NULL AND state IN ('running', 'paused')")


def upgrade() -> None:
    with op.batch_alter_table("staff_notification", schema=None) as batch_op:
        batch_op.add_column(sa.Column("words", sa.JSON(), nullable=True))
    with op.batch_alter_table("ticket_clock", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_ticket_clock_running_deadline", postgresql_where=RUNNING_RESOLUTION, sqlite_where=RUNNING_RESOLUTION
        )
        batch_op.create_index(
            "ix_ticket_clock_running_deadline_any",
            ["deadline", "ticket_id"],
            unique=False,
            postgresql_where=RUNNING,
            sqlite_where=RUNNING,
        )
        batch_op.create_index(
            "ix_ticket_clock_live_breach",
            ["ticket_id"],
            unique=False,
            postgresql_where=LIVE_BREACH,
            sqlite_where=LIVE_BREACH,
        )


def downgrade() -> None:
    with op.batch_alter_table("ticket_clock", schema=None) as batch_op:
        batch_op.drop_index("ix_ticket_clock_live_breach", postgresql_where=LIVE_BREACH, sqlite_where=LIVE_BREACH)
        batch_op.drop_index("ix_ticket_clock_running_deadline_any", postgresql_where=RUNNING, sqlite_where=RUNNING)
        batch_op.create_index(
            "ix_ticket_clock_running_deadline",
            ["deadline", "ticket_id"],
            unique=False,
            postgresql_where=RUNNING_RESOLUTION,
            sqlite_where=RUNNING_RESOLUTION,
        )
    with op.batch_alter_table("staff_notification", schema=None) as batch_op:
        batch_op.drop_column("words")
