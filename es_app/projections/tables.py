"""Tables of the read side: the users read model and projection checkpoints."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, DateTime, Index, Integer, String, Table

from es_app.store.schema import Json, metadata

users_view = Table(
    "users_view",
    metadata,
    Column("id", String(255), primary_key=True),  # the stream id, e.g. user-42
    Column("name", String(200), nullable=False),
    Column("email", String(320), nullable=False),
    Column("phone", String(40), nullable=True),
    Column("active", Boolean, nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("version", Integer, nullable=False),
    Column("position", BigInteger, nullable=False),  # global position of the last event applied
    Column("legacy_key", String(255), nullable=True),
    Column("created_at", String(40), nullable=True),  # ISO-8601, as carried by the events
    Column("updated_at", String(40), nullable=True),
    Column("extra", Json, nullable=True),
    Index("ix_users_view_name", "name"),
    Index("ix_users_view_email", "email"),
    Index("ix_users_view_active_name", "active", "name"),
    Index("ix_users_view_created_at", "created_at"),
)

projection_checkpoints = Table(
    "projection_checkpoints",
    metadata,
    Column("name", String(200), primary_key=True),  # projection name, with ":<shard>/<shards>" when sharded
    Column("position", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
