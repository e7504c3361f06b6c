"""satisfaction survey: one due row per finished request, the shopper's answer, opted-out addresses

Revision ID: 0022
Revises: 0021
Create Date: 2026-11-29 09:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "survey_due",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("claim_expires", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("email_key", sa.String(length=64), nullable=True),
        sa.Column("outcome", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"], ["return_request.id"], name=op.f("fk_survey_due_request_id_return_request")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_due")),
        sa.UniqueConstraint("request_id", name=op.f("uq_survey_due_request_id")),
    )
    with op.batch_alter_table("survey_due", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_survey_due_email_key"), ["email_key"], unique=False)
        batch_op.create_index(
            "ix_survey_due_pending",
            ["finished_at"],
            unique=False,
            postgresql_where=sa.text("status = 'pending'"),
            sqlite_where=sa.text("status = 'pending'"),
        )
        batch_op.create_index(
            "ix_survey_due_claimed",
            ["claim_expires"],
            unique=False,
            postgresql_where=sa.text("status = 'claimed'"),
            sqlite_where=sa.text("status = 'claimed'"),
        )
    op.create_table(
        "survey_answer",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("nps", sa.Integer(), nullable=False),
        sa.Column("satisfaction", sa.Integer(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("followed_up_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"], ["return_request.id"], name=op.f("fk_survey_answer_request_id_return_request")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_answer")),
        sa.UniqueConstraint("request_id", name=op.f("uq_survey_answer_request_id")),
    )
    with op.batch_alter_table("survey_answer", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_survey_answer_answered_at"), ["answered_at"], unique=False)
    op.create_table(
        "survey_optout",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email_key", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_optout")),
        sa.UniqueConstraint("email_key", name=op.f("uq_survey_optout_email_key")),
    )


def downgrade() -> None:
    op.drop_table("survey_optout")
    with op.batch_alter_table("survey_answer", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_survey_answer_answered_at"))
    op.drop_table("survey_answer")
    with op.batch_alter_table("survey_due", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_survey_due_claimed",
            postgresql_where=sa.text("status = 'claimed'"),
            sqlite_where=sa.text("status = 'claimed'"),
        )
        batch_op.drop_index(
            "ix_survey_due_pending",
            postgresql_where=sa.text("status = 'pending'"),
            sqlite_where=sa.text("status = 'pending'"),
        )
        batch_op.drop_index(batch_op.f("ix_survey_due_email_key"))
    op.drop_table("survey_due")
