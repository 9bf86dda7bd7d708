"""api: first responses of commands sent with an Idempotency-Key

Revision ID: api_idempotency_keys
Revises: 0002_read_model
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

revision = "api_idempotency_keys"
down_revision = "0002_read_model"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "api_idempotency_keys",
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer, nullable=False),
        sa.Column("body", Json, nullable=False),
        sa.Column("headers", Json, nullable=False),
        sa.Column("stream_id", sa.String(255), nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("api_idempotency_keys")
