"""actors as columns, exchange reservation and shipping as columns, audit before/after

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-28 09:00:00

Data: event actors "kind:id" split into two columns; exchange reservations and
shipments, until now only written as timeline notes, copied onto their lines.
"""

import re

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

RESERVED = re.compile(r"^reserved (\d+) x (.+)$")
RELEASED = re.compile(r"^released (\d+) x (.+)$")


def _split_actors(table: str) -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.text(f"SELECT id, actor FROM {table}")).fetchall()
    for row_id, actor in rows:
        kind, _, ident = (actor or "system").partition(":")
        conn.execute(
            sa.text(f"UPDATE {table} SET actor_kind = :kind, actor_id = :ident WHERE id = :id"),
            {"kind": kind[:16] or "system", "ident": ident[:64] or None, "id": row_id},
        )


def upgrade() -> None:
    for table in ("request_event", "ticket_event"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("actor_kind", sa.String(length=16), nullable=True))
            batch_op.add_column(sa.Column("actor_id", sa.String(length=64), nullable=True))
        _split_actors(table)
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column("actor_kind", existing_type=sa.String(length=16), nullable=False)
            batch_op.drop_column("actor")

    with op.batch_alter_table("return_line", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reserved_quantity", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("exchange_shipped_at", sa.DateTime(timezone=True), nullable=True))

    conn = op.get_bind()
    lines = conn.execute(
        sa.text("SELECT id, request_id, exchange_sku FROM return_line WHERE outcome = 'exchange' AND exchange_sku IS NOT NULL")
    ).fetchall()
    for line_id, request_id, sku in lines:
        held = 0
        shipped_at = None
        events = conn.execute(
            sa.text("SELECT note, at FROM request_event WHERE request_id = :r AND kind = 'exchange' ORDER BY id"), {"r": request_id}
        ).fetchall()
        for note, at in events:
            if (m := RESERVED.match(note or "")) and m.group(2) == sku:
                held = int(m.group(1))
            elif (m := RELEASED.match(note or "")) and m.group(2) == sku:
                held = 0
            elif (note or "").startswith("ready to ship") and f" x {sku}" in note and shipped_at is None:
                shipped_at, held = at, 0
        conn.execute(
            sa.text("UPDATE return_line SET reserved_quantity = :held, exchange_shipped_at = :at WHERE id = :id"),
            {"held": held, "at": shipped_at, "id": line_id},
        )

    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("before", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("after", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_column("after")
        batch_op.drop_column("before")
    with op.batch_alter_table("return_line", schema=None) as batch_op:
        batch_op.drop_column("exchange_shipped_at")
        batch_op.drop_column("reserved_quantity")
    for table in ("request_event", "ticket_event"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("actor", sa.String(length=64), nullable=True))
        op.execute(
            sa.text(
                f"UPDATE {table} SET actor = CASE WHEN actor_id IS NULL THEN actor_kind ELSE actor_kind || ':' || actor_id END"
            )
        )
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column("actor", existing_type=sa.String(length=64), nullable=False)
            batch_op.drop_column("actor_id")
            batch_op.drop_column("actor_kind")
