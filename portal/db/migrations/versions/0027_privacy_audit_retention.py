"""privacy: audit address, reason and order; anonymised orders; subject requests

Revision ID: 0027
Revises: 0026
Create Date: 2026-11-29 11:20:00

The audit log gains where a person acted from, why, and which order it concerned; an order
records when its personal data was removed; shoppers' requests for a copy or an erasure of
their data are kept with their 30-day due date.
"""

import sqlalchemy as sa
from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("address", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("reason", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("order_number", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_audit_log_order_number"), ["order_number"], unique=False)
    with op.batch_alter_table("shop_order", schema=None) as batch_op:
        batch_op.add_column(sa.Column("anonymised_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "privacy_request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("locale", sa.String(length=16), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("asked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_by", sa.Integer(), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("copy_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["completed_by"], ["staff_user.id"], name=op.f("fk_privacy_request_completed_by_staff_user")
        ),
        sa.ForeignKeyConstraint(["order_id"], ["shop_order.id"], name=op.f("fk_privacy_request_order_id_shop_order")),
        sa.ForeignKeyConstraint(
            ["request_id"], ["return_request.id"], name=op.f("fk_privacy_request_request_id_return_request")
        ),
        sa.ForeignKeyConstraint(["team_id"], ["team.id"], name=op.f("fk_privacy_request_team_id_team")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_request")),
    )
    with op.batch_alter_table("privacy_request", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_privacy_request_due_at"), ["due_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_privacy_request_order_id"), ["order_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_privacy_request_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("privacy_request", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_privacy_request_status"))
        batch_op.drop_index(batch_op.f("ix_privacy_request_order_id"))
        batch_op.drop_index(batch_op.f("ix_privacy_request_due_at"))
    op.drop_table("privacy_request")
    with op.batch_alter_table("shop_order", schema=None) as batch_op:
        batch_op.drop_column("anonymised_at")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_order_number"))
        batch_op.drop_column("order_number")
        batch_op.drop_column("reason")
        batch_op.drop_column("address")
