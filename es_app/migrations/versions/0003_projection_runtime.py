"""projections: checkpoint rate, dead letters (sequenced per stream), notifications outbox

Revision ID: projection_runtime
Revises: 0002_read_model
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

revision = "projection_runtime"
down_revision = "0002_read_model"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("projection_checkpoints") as batch:
        batch.add_column(sa.Column("rate", sa.Float, nullable=True))
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("projection", sa.String(200), nullable=False),
        sa.Column("stream_id", sa.String(255), nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("event_type", sa.String(200), nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("parked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_dead_letters_projection_status_stream", "dead_letters",
                    ["projection", "status", "stream_id"])
    op.create_table(
        "notifications",
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(50), nullable=False),
        sa.Column("stream_id", sa.String(255), nullable=False),
        sa.Column("recipient", sa.String(320), nullable=True),
        sa.Column("payload", Json, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_notifications_stream", "notifications", ["stream_id"])


def downgrade() -> None:
    op.drop_table("notifications")
    op.drop_table("dead_letters")
    with op.batch_alter_table("projection_checkpoints") as batch:
        batch.drop_column("rate")
