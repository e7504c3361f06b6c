"""insights: daily rollup table (kept by each change, rebuilt by ``insights rebuild``), its zone,
and an index on orders by the time they were placed

A database that already holds orders gets no ``insight_rollup_state`` row here: the dashboard
reads the raw tables until ``returns-portal insights rebuild`` has filled the rollups.

Revision ID: 0024
Revises: 0023
Create Date: 2026-11-29 11:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "insight_rollup",
        sa.Column("metric", sa.String(length=16), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("k1", sa.String(length=256), nullable=False),
        sa.Column("k2", sa.String(length=256), nullable=False),
        sa.Column("n1", sa.BigInteger(), nullable=False),
        sa.Column("n2", sa.BigInteger(), nullable=False),
        sa.Column("n3", sa.BigInteger(), nullable=False),
        sa.Column("x1", sa.Float(), nullable=False),
        sa.Column("m1", sa.Numeric(precision=24, scale=6), nullable=False),
        sa.Column("m2", sa.Numeric(precision=24, scale=6), nullable=False),
        sa.PrimaryKeyConstraint(
            "metric", "day", "channel", "category", "team_id", "k1", "k2", name=op.f("pk_insight_rollup")
        ),
    )
    with op.batch_alter_table("insight_rollup", schema=None) as batch_op:
        batch_op.create_index(
            "ix_insight_rollup_read",
            ["metric", "category", "team_id", "day"],
            unique=False,
            postgresql_include=["channel", "k1", "k2", "n1", "n2", "n3", "x1", "m1", "m2"],
        )
        channel_rows = sa.text("k1 = 'all' AND category = '' AND team_id = 0")
        batch_op.create_index(
            "ix_insight_rollup_channels",
            ["metric", "channel"],
            unique=False,
            postgresql_where=channel_rows,
            sqlite_where=channel_rows,
        )
    op.create_table(
        "insight_rollup_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("rebuilt_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_insight_rollup_state")),
    )
    with op.batch_alter_table("shop_order", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_shop_order_placed_at"), ["placed_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("shop_order", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_shop_order_placed_at"))
    op.drop_table("insight_rollup_state")
    with op.batch_alter_table("insight_rollup", schema=None) as batch_op:
        batch_op.drop_index("ix_insight_rollup_channels")
        batch_op.drop_index("ix_insight_rollup_read")
    op.drop_table("insight_rollup")
