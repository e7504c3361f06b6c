"""jobs: background jobs that kept failing, for admins to see and retry

Revision ID: 0025
Revises: 0024
Create Date: 2026-11-29 11:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_failure",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task", sa.String(length=100), nullable=False),
        sa.Column("args", sa.JSON(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("error", sa.String(length=500), nullable=False),
        sa.Column("traceback", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("first_failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["resolved_by_id"], ["staff_user.id"], name=op.f("fk_job_failure_resolved_by_id_staff_user")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_failure")),
    )
    # One open record per job and parameters: workers failing at once count on the same row.
    op.create_index(
        "ix_job_failure_open",
        "job_failure",
        ["fingerprint"],
        unique=True,
        postgresql_where=sa.text("resolved_at IS NULL"),
        sqlite_where=sa.text("resolved_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_job_failure_open", table_name="job_failure")
    op.drop_table("job_failure")
