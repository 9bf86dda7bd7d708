"""migrator: recorded shadow-read mismatches (both values, the read-model position and changelog id, lag or not)

Revision ID: migrator_shadow_mismatches
Revises: migrator_verify_runs
"""
from alembic import op
import sqlalchemy as sa

revision = "migrator_shadow_mismatches"
down_revision = "migrator_verify_runs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "migrator_shadow_mismatches",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("migration", sa.String(200), nullable=False),
        sa.Column("table_name", sa.String(200), nullable=False),
        sa.Column("key", sa.String(400), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("fields", sa.Text, nullable=False),
        sa.Column("legacy", sa.Text, nullable=False),
        sa.Column("candidate", sa.Text, nullable=False),
        sa.Column("read_model_position", sa.BigInteger, nullable=True),
        sa.Column("changelog_id", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_migrator_shadow_mismatches_migration", "migrator_shadow_mismatches", ["migration", "id"])


def downgrade() -> None:
    op.drop_index("ix_migrator_shadow_mismatches_migration", "migrator_shadow_mismatches")
    op.drop_table("migrator_shadow_mismatches")
