"""staff workbench: saved queue views, who has a ticket open, rejection reasons, reply macros

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-29 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rejection_reason",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rejection_reason")),
    )
    op.create_table(
        "saved_view",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("query", sa.String(length=512), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["staff_id"], ["staff_user.id"], name=op.f("fk_saved_view_staff_id_staff_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saved_view")),
        sa.UniqueConstraint("staff_id", "name", name="uq_saved_view_staff_id_name"),
    )
    with op.batch_alter_table("saved_view", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_saved_view_staff_id"), ["staff_id"], unique=False)
    op.create_table(
        "ticket_viewer",
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["staff_id"], ["staff_user.id"], name=op.f("fk_ticket_viewer_staff_id_staff_user")),
        sa.ForeignKeyConstraint(["ticket_id"], ["ticket.id"], name=op.f("fk_ticket_viewer_ticket_id_ticket")),
        sa.PrimaryKeyConstraint("ticket_id", "staff_id", name=op.f("pk_ticket_viewer")),
    )
    with op.batch_alter_table("ticket_viewer", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ticket_viewer_seen_at"), ["seen_at"], unique=False)
    with op.batch_alter_table("canned_reply", schema=None) as batch_op:
        batch_op.add_column(sa.Column("decision", sa.String(length=16), nullable=True))
    with op.batch_alter_table("return_request", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rejection_reason_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_return_request_rejection_reason_id_rejection_reason"),
            "rejection_reason",
            ["rejection_reason_id"],
            ["id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("return_request", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_return_request_rejection_reason_id_rejection_reason"), type_="foreignkey"
        )
        batch_op.drop_column("rejection_reason_id")
    with op.batch_alter_table("canned_reply", schema=None) as batch_op:
        batch_op.drop_column("decision")
    with op.batch_alter_table("ticket_viewer", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ticket_viewer_seen_at"))
    op.drop_table("ticket_viewer")
    with op.batch_alter_table("saved_view", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_saved_view_staff_id"))
    op.drop_table("saved_view")
    op.drop_table("rejection_reason")
