"""migrator: stored verify runs (counts, watermarks and the whole report of each `migrator verify`)

Revision ID: migrator_verify_runs
Revises: migrator_parked_leases
"""
from alembic import op
import sqlalchemy as sa

revision = "migrator_verify_runs"
down_revision = "migrator_parked_leases"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "migrator_verify_runs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_s", sa.Float, nullable=False),
        sa.Column("clean", sa.Boolean, nullable=False),
        sa.Column("tables", sa.Text, nullable=False),
        sa.Column("options", sa.Text, nullable=False),
        sa.Column("counts", sa.Text, nullable=False),
        sa.Column("watermarks", sa.Text, nullable=False),
        sa.Column("report", sa.Text, nullable=False),
    )
    op.create_index("ix_migrator_verify_runs_clean", "migrator_verify_runs", ["clean", "id"])


def downgrade() -> None:
    op.drop_index("ix_migrator_verify_runs_clean", "migrator_verify_runs")
    op.drop_table("migrator_verify_runs")
