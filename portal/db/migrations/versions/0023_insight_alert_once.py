"""insights: one row per alert told to the leads (a figure past its line, once per period)

Revision ID: 0023
Revises: 0022
Create Date: 2026-11-29 10:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "insight_alert",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=128), nullable=False),
        sa.Column("value", sa.String(length=32), nullable=False),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_insight_alert")),
        sa.UniqueConstraint("key", name=op.f("uq_insight_alert_key")),
    )


def downgrade() -> None:
    op.drop_table("insight_alert")
