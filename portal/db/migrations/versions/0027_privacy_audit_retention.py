"""privacy: audit, retention, subject requests (placeholder, filled in by its change)

Revision ID: 0027
Revises: 0026
Create Date: 2026-11-29 11:20:00
"""

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
