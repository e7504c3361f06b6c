"""insights: daily rollups (placeholder, filled in by its change)

Revision ID: 0024
Revises: 0023
Create Date: 2026-11-29 11:20:00
"""

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
