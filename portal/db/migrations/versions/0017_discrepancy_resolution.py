"""discrepancy resolution: what happens to a refused item, and carrier claims for damage in transit

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-29 06:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("return_line", schema=None) as batch_op:
        batch_op.add_column(sa.Column("refused_fate", sa.String(length=24), nullable=True))
    op.create_table(
        "carrier_claim",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("carrier", sa.String(length=32), nullable=False),
        sa.Column("pickup_code", sa.String(length=32), nullable=True),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=14, scale=4), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"], ["return_request.id"], name=op.f("fk_carrier_claim_request_id_return_request")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_carrier_claim")),
    )
    with op.batch_alter_table("carrier_claim", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_carrier_claim_request_id"), ["request_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("carrier_claim", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_carrier_claim_request_id"))
    op.drop_table("carrier_claim")
    with op.batch_alter_table("return_line", schema=None) as batch_op:
        batch_op.drop_column("refused_fate")
