"""policy versions in the database: numbered TOML versions, one published; requests keep the version id

Revision ID: 0026
Revises: 0025
Create Date: 2026-11-29 11:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "policy_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("checksum", sa.String(length=64), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published", sa.Boolean(), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("published_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["staff_user.id"], name=op.f("fk_policy_version_created_by_id_staff_user")
        ),
        sa.ForeignKeyConstraint(
            ["published_by_id"], ["staff_user.id"], name=op.f("fk_policy_version_published_by_id_staff_user")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_version")),
        sa.UniqueConstraint("number", name=op.f("uq_policy_version_number")),
    )
    op.create_index(
        "ix_policy_version_one_published",
        "policy_version",
        ["published"],
        unique=True,
        postgresql_where=sa.text("published"),
        sqlite_where=sa.text("published"),
    )
    with op.batch_alter_table("return_request", schema=None) as batch_op:
        batch_op.add_column(sa.Column("policy_version_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_return_request_policy_version_id"), ["policy_version_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_return_request_policy_version_id_policy_version"),
            "policy_version",
            ["policy_version_id"],
            ["id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("return_request", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_return_request_policy_version_id_policy_version"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_return_request_policy_version_id"))
        batch_op.drop_column("policy_version_id")
    op.drop_index(
        "ix_policy_version_one_published",
        table_name="policy_version",
        postgresql_where=sa.text("published"),
        sqlite_where=sa.text("published"),
    )
    op.drop_table("policy_version")
