"""migrator: backfill runs and their per-chunk checkpoints

Revision ID: migrator_backfill_runs
Revises: 0002_read_model
"""
from alembic import op
import sqlalchemy as sa

revision = "migrator_backfill_runs"
down_revision = "0002_read_model"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "migrator_backfill_runs",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("table_name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("last_key", sa.Text, nullable=True),
        sa.Column("rows_done", sa.BigInteger, nullable=False),
        sa.Column("rows_imported", sa.BigInteger, nullable=False),
        sa.Column("rows_skipped", sa.BigInteger, nullable=False),
        sa.Column("chunks", sa.Integer, nullable=False),
        sa.Column("watermark", sa.BigInteger, nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("migrator_backfill_runs")
