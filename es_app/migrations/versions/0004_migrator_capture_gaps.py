"""migrator: capture gaps (changes the relay could not see) and the changelog generation the relay read

Revision ID: migrator_capture_gaps
Revises: migrator_offsets
"""
from alembic import op
import sqlalchemy as sa

revision = "migrator_capture_gaps"
down_revision = "migrator_offsets"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("migrator_offsets") as batch:
        batch.add_column(sa.Column("generation", sa.String(36), nullable=True))
        batch.add_column(sa.Column("history_seq", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("id_base", sa.BigInteger, nullable=True))
    op.create_table(
        "migrator_capture_gaps",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("table_name", sa.String(200), nullable=False),
        sa.Column("reason", sa.String(40), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detail", sa.String(500), nullable=False),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.String(100), nullable=True),
    )
    op.create_index("ix_migrator_capture_gaps_open", "migrator_capture_gaps", ["table_name", "resolved_at"])


def downgrade() -> None:
    op.drop_index("ix_migrator_capture_gaps_open", "migrator_capture_gaps")
    op.drop_table("migrator_capture_gaps")
    with op.batch_alter_table("migrator_offsets") as batch:
        batch.drop_column("id_base")
        batch.drop_column("history_seq")
        batch.drop_column("generation")
