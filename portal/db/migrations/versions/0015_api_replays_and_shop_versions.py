"""shop API: accepted signatures (replay window) and the shop's own updated_at on orders and products

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-29 05:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_signature",
        sa.Column("signature", sa.String(length=80), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("signature", name=op.f("pk_api_signature")),
    )
    with op.batch_alter_table("api_signature", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_signature_expires_at"), ["expires_at"], unique=False)
    for table in ("shop_order", "product"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("shop_updated_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    for table in ("product", "shop_order"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("shop_updated_at")
    with op.batch_alter_table("api_signature", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_signature_expires_at"))
    op.drop_table("api_signature")
