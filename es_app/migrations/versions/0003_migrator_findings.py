"""migrator: data-quality findings of the imports (e.g. case-duplicate emails)

Revision ID: migrator_findings
Revises: 0002_read_model
"""
from alembic import op
import sqlalchemy as sa

revision = "migrator_findings"
down_revision = "0002_read_model"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "migrator_findings",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(100), nullable=False),
        sa.Column("table_name", sa.String(200), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("other_key", sa.String(255), nullable=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("found_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("kind", "table_name", "key", "value", name="uq_migrator_findings"),
    )
    op.create_index("ix_migrator_findings_table_kind", "migrator_findings", ["table_name", "kind"])


def downgrade() -> None:
    op.drop_index("ix_migrator_findings_table_kind", "migrator_findings")
    op.drop_table("migrator_findings")
