"""Tables of the event store: events, snapshots and unique claims (SQLAlchemy Core)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

Json = JSON().with_variant(JSONB(), "postgresql")
Position = BigInteger().with_variant(Integer(), "sqlite")

events = Table(
    "events",
    metadata,
    Column("position", Position, primary_key=True, autoincrement=True),
    Column("stream_id", String(255), nullable=False),
    Column("category", String(100), nullable=False),
    Column("version", Integer, nullable=False),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("event_type", String(200), nullable=False),
    Column("schema_version", Integer, nullable=False),
    Column("data", Json, nullable=False),
    Column("metadata", Json, nullable=False, key="meta"),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("stream_id", "version", name="uq_events_stream_version"),
    Index("ix_events_category_position", "category", "position"),
    Index("ix_events_type_position", "event_type", "position"),
)

snapshots = Table(
    "snapshots",
    metadata,
    Column("stream_id", String(255), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("schema_version", Integer, nullable=False),
    Column("state", Json, nullable=False),
    Column("taken_at", DateTime(timezone=True), nullable=False),
)

unique_claims = Table(
    "unique_claims",
    metadata,
    Column("scope", String(100), primary_key=True),
    Column("value", String(320), primary_key=True),
    Column("owner", String(255), nullable=False),
)
