"""privacy: personal data encrypted at rest (placeholder, filled in by its change)

Revision ID: 0028
Revises: 0027
Create Date: 2026-11-29 11:20:00
"""

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
