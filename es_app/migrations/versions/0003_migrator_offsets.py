"""migrator: offsets of the change relay (last changelog id relayed, per table)

Revision ID: migrator_offsets
Revises: 0002_read_model
"""
from alembic import op
import sqlalchemy as sa

revision = "migrator_offsets"
down_revision = "0002_read_model"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "migrator_offsets",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("migrator_offsets")
