"""Tables of the read side: the users read model, projection checkpoints, dead letters, outbox."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, DateTime, Float, Index, Integer, String, Table, Text

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
    Column("rate", Float, nullable=True),  # events/s of the last batch (revision projection_runtime)
)

# A failed event of one stream, parked for a projection; that stream's later events wait
# behind it (they are re-read from the store on retry/skip). Rows stay as history once resolved.
dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("projection", String(200), nullable=False),
    Column("stream_id", String(255), nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("version", Integer, nullable=False),
    Column("event_id", String(36), nullable=False),
    Column("event_type", String(200), nullable=False),
    Column("error", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("status", String(20), nullable=False),  # parked | retried | skipped | superseded
    Column("parked_at", DateTime(timezone=True), nullable=False),
    Column("resolved_at", DateTime(timezone=True), nullable=True),
    Index("ix_dead_letters_projection_status_stream", "projection", "status", "stream_id"),
)

# Side effects of events (e.g. the welcome notification), written once per event id.
notifications = Table(
    "notifications",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("kind", String(50), nullable=False),
    Column("stream_id", String(255), nullable=False),
    Column("recipient", String(320), nullable=True),
    Column("payload", Json, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_notifications_stream", "stream_id"),
)
