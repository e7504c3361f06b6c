"""privacy: personal data encrypted at rest, with keyed blind indexes for lookups

Revision ID: 0028
Revises: 0027
Create Date: 2026-11-29 11:20:00

The shopper's name, email, phone and postcode, the free text that may repeat them (line comments,
staff notes, timeline notes, survey comments), store-credit emails and outbox payloads become
encrypted text (``portal.db.sealed``); the order and request gain blind index columns for
equality lookups, and the plaintext email indexes go.

Data step: rows already in the database are encrypted here, in the migration's transaction, with
the data key the app was started with (``returns-portal db upgrade`` reads PORTAL_DATA_KEY or the
instance folder's key). Without a key and with rows to encrypt the migration stops and says so.
``returns-portal keys rotate`` also seals any plaintext value it finds.
"""

import sqlalchemy as sa
from alembic import op

from portal import crypto
from portal.db.sealed import SealedColumn, reseal_table

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None

# The sealed columns as of this revision: (column, blind index kind, type it had before).
COLUMNS: dict[str, list[tuple[str, str | None, sa.types.TypeEngine]]] = {
    "shop_order": [
        ("customer_name", "name", sa.String(length=255)),
        ("customer_email", "email", sa.String(length=255)),
        ("customer_phone", "phone", sa.String(length=64)),
        ("customer_postcode", "postcode", sa.String(length=32)),
    ],
    "return_request": [("customer_email", "email", sa.String(length=255))],
    "return_line": [("comment", None, sa.Text()), ("staff_note", None, sa.Text())],
    "request_event": [("note", None, sa.Text())],
    "ticket_event": [("note", None, sa.Text())],
    "outbox": [("payload", None, sa.JSON())],
    "store_credit": [("customer_email", None, sa.String(length=255))],
    "survey_answer": [("comment", None, sa.Text())],
}
INDEXED = {"shop_order": ["customer_name", "customer_email", "customer_phone"], "return_request": ["customer_email"]}


def _spec(table: str) -> list[SealedColumn]:
    return [SealedColumn(name, f"{table}.{name}", index) for name, index, _ in COLUMNS[table]]


def _has_data(conn: sa.Connection) -> bool:
    for table, columns in COLUMNS.items():
        for name, _, _ in columns:
            col = sa.column(name, sa.Text)
            found = conn.execute(
                sa.select(sa.literal(1))
                .select_from(sa.table(table, col))
                .where(col.is_not(None), sa.cast(col, sa.Text) != "")
                .limit(1)
            ).first()
            if found is not None:
                return True
    return False


def _keyring(conn: sa.Connection) -> crypto.Keyring | None:
    keyring = crypto.installed()
    if keyring is None and _has_data(conn):
        raise RuntimeError(
            "migration 0028 encrypts the personal data already stored and needs the data key: run "
            "`returns-portal db upgrade` (it reads PORTAL_DATA_KEY, or the key in the instance folder)"
        )
    return keyring


def upgrade() -> None:
    conn = op.get_bind()
    postgres = conn.dialect.name == "postgresql"
    with op.batch_alter_table("shop_order", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_shop_order_customer_email"))
        for name, _, old in COLUMNS["shop_order"]:
            batch_op.alter_column(name, existing_type=old, type_=sa.Text())
            batch_op.add_column(sa.Column(name + "_bidx", sa.String(length=64), nullable=True))
    with op.batch_alter_table("return_request", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_return_request_customer_email"))
        batch_op.alter_column("customer_email", existing_type=sa.String(length=255), type_=sa.Text())
        batch_op.add_column(sa.Column("customer_email_bidx", sa.String(length=64), nullable=True))
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.alter_column(
            "payload",
            existing_type=sa.JSON(),
            type_=sa.Text(),
            existing_nullable=False,
            **({"postgresql_using": "payload::text"} if postgres else {}),
        )
    with op.batch_alter_table("store_credit", schema=None) as batch_op:
        batch_op.alter_column("customer_email", existing_type=sa.String(length=255), type_=sa.Text())

    keyring = _keyring(conn)
    if keyring is not None:
        for table in COLUMNS:
            reseal_table(conn, keyring, table, _spec(table))

    for table, names in INDEXED.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for name in names:
                batch_op.create_index(batch_op.f(f"ix_{table}_{name}_bidx"), [name + "_bidx"], unique=False)


def _unseal_all(conn: sa.Connection, keyring: crypto.Keyring) -> None:
    for table, columns in COLUMNS.items():
        raw = sa.table(table, sa.column("id"), *[sa.column(name, sa.Text) for name, _, _ in columns])
        for row in conn.execute(sa.select(raw)).all():
            changes = {}
            for name, _, _ in columns:
                value = row._mapping[name]
                if value and crypto.is_sealed(value):
                    changes[name] = crypto.unseal(keyring, value, f"{table}.{name}")
            if changes:
                conn.execute(sa.update(raw).where(raw.c.id == row.id).values(**changes))


def downgrade() -> None:
    conn = op.get_bind()
    postgres = conn.dialect.name == "postgresql"
    keyring = _keyring(conn)
    if keyring is not None:
        _unseal_all(conn, keyring)
    for table, names in INDEXED.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for name in names:
                batch_op.drop_index(batch_op.f(f"ix_{table}_{name}_bidx"))
    with op.batch_alter_table("store_credit", schema=None) as batch_op:
        batch_op.alter_column("customer_email", existing_type=sa.Text(), type_=sa.String(length=255))
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.alter_column(
            "payload",
            existing_type=sa.Text(),
            type_=sa.JSON(),
            existing_nullable=False,
            **({"postgresql_using": "payload::json"} if postgres else {}),
        )
    with op.batch_alter_table("return_request", schema=None) as batch_op:
        batch_op.drop_column("customer_email_bidx")
        batch_op.alter_column("customer_email", existing_type=sa.Text(), type_=sa.String(length=255))
        batch_op.create_index(batch_op.f("ix_return_request_customer_email"), ["customer_email"], unique=False)
    with op.batch_alter_table("shop_order", schema=None) as batch_op:
        for name, _, old in COLUMNS["shop_order"]:
            batch_op.drop_column(name + "_bidx")
            batch_op.alter_column(name, existing_type=sa.Text(), type_=old)
        batch_op.create_index(batch_op.f("ix_shop_order_customer_email"), ["customer_email"], unique=False)
