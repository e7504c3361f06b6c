"""wear: per-category thresholds a merchant sets from the wear report, per model version

Revision ID: 0032
Revises: 0031
Create Date: 2026-11-29 15:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0032"
down_revision = "0031"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "wear_threshold",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_version", sa.String(length=120), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("set_by_id", sa.Integer(), nullable=True),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["set_by_id"], ["staff_user.id"], name=op.f("fk_wear_threshold_set_by_id_staff_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wear_threshold")),
        sa.UniqueConstraint("model_version", "category", name="uq_wear_threshold_model_version_category"),
    )


def downgrade() -> None:
    op.drop_table("wear_threshold")
