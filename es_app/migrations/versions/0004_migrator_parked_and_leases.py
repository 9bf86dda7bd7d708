"""migrator: parked legacy rows and changes, run leases, parked rows of a backfill run

Revision ID: migrator_parked_leases
Revises: migrator_backfill_runs
"""
from alembic import op
import sqlalchemy as sa

revision = "migrator_parked_leases"
down_revision = "migrator_backfill_runs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "migrator_parked",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("table_name", sa.String(200), nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("changelog_id", sa.BigInteger, nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("row", sa.Text, nullable=False),
        sa.Column("parked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_migrator_parked_open", "migrator_parked", ["table_name", "key", "resolved_at"])
    op.create_table(
        "migrator_leases",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("owner", sa.String(100), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.add_column("migrator_backfill_runs",
                  sa.Column("rows_parked", sa.BigInteger, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("migrator_backfill_runs") as batch:
        batch.drop_column("rows_parked")
    op.drop_table("migrator_leases")
    op.drop_index("ix_migrator_parked_open", "migrator_parked")
    op.drop_table("migrator_parked")
