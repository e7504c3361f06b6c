"""staff notifications in the reader's language: the message as translatable words

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


def upgrade() -> None:
    with op.batch_alter_table("staff_notification", schema=None) as batch_op:
        batch_op.add_column(sa.Column("words", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("staff_notification", schema=None) as batch_op:
        batch_op.drop_column("words")
