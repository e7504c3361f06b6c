"""product and variant pictures: the shop's address, our stored copy, why a copy failed

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-29 06:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("product", "variant"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("image_url", sa.String(length=1024), nullable=True))
            batch_op.add_column(sa.Column("image_key", sa.String(length=128), nullable=True))
            batch_op.add_column(sa.Column("image_error", sa.String(length=255), nullable=True))


def downgrade() -> None:
    for table in ("variant", "product"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("image_error")
            batch_op.drop_column("image_key")
            batch_op.drop_column("image_url")
