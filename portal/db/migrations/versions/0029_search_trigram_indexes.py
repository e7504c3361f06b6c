"""staff search: trigram indexes for substring search on PostgreSQL

The queue's search matches a part of an order number, SKU, RMA or pickup code (``LIKE '%..%'``),
which a B-tree cannot serve. On PostgreSQL ``pg_trgm`` GIN indexes on exactly the expressions the
search compares (``portal.db.queries._search``) can. SQLite has nothing equivalent; there each part
of the search reads one narrow table.

Revision ID: 0029
Revises: 0028
Create Date: 2026-11-29 12:05:00
"""

from alembic import op

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_shop_order_number_trgm": ("shop_order", "lower(order_number)"),
    "ix_order_line_sku_trgm": ("order_line", "lower(sku)"),
    "ix_return_request_rma_trgm": ("return_request", "replace(replace(lower(rma), '-', ''), ' ', '')"),
    "ix_return_request_pickup_trgm": ("return_request", "replace(replace(lower(pickup_code), '-', ''), ' ', '')"),
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, (table, expression) in INDEXES.items():
        op.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {table} USING gin (({expression}) gin_trgm_ops)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")
