"""policy versions in the database (placeholder, filled in by its change)

Revision ID: 0026
Revises: 0025
Create Date: 2026-11-29 11:20:00
"""

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
