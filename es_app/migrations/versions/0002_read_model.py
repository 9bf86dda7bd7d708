"""read side: users_view read model and projection checkpoints

Revision ID: 0002_read_model
Revises: 0001_event_store
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002_read_model"
down_revision = "0001_event_store"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "users_view",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("phone", sa.String(40), nullable=True),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("legacy_key", sa.String(255), nullable=True),
        sa.Column("created_at", sa.String(40), nullable=True),
        sa.Column("updated_at", sa.String(40), nullable=True),
        sa.Column("extra", Json, nullable=True),
    )
    op.create_index("ix_users_view_name", "users_view", ["name"])
    op.create_index("ix_users_view_email", "users_view", ["email"])
    op.create_index("ix_users_view_active_name", "users_view", ["active", "name"])
    op.create_index("ix_users_view_created_at", "users_view", ["created_at"])
    op.create_table(
        "projection_checkpoints",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("projection_checkpoints")
    op.drop_table("users_view")
