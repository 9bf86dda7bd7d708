"""The store's SQL that both backends share, written with `%s` placeholders (SQLite's module
turns them into `?`); what differs lives in `sqlite.py` and `postgres.py`."""

from __future__ import annotations

from functools import cache, lru_cache

COLUMNS = "position, stream_id, version, event_id, event_type, schema_version, data, metadata, recorded_at"
INSERT_COLUMNS = "stream_id, category, version, event_id, event_type, schema_version, data, metadata, recorded_at"

STREAM_VERSION = "SELECT max(version) FROM events WHERE stream_id = %s"
HEAD = "SELECT max(position) FROM events"
INSERT_ONE = f"INSERT INTO events ({INSERT_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
CLAIM = "INSERT INTO unique_claims (scope, value, owner) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING RETURNING owner"
CLAIM_OWNER = "SELECT owner FROM unique_claims WHERE scope = %s AND value = %s"
RELEASE = "DELETE FROM unique_claims WHERE scope = %s AND value = %s AND owner = %s"


@cache
def read_stream(has_to: bool, backwards: bool, has_limit: bool) -> str:
    """Returns the read of one stream's events; parameters: stream id, from version[, to][, limit]."""
    sql = f"SELECT {COLUMNS} FROM events WHERE stream_id = %s AND version >= %s"
    if has_to:
        sql += " AND version <= %s"
    sql += " ORDER BY version DESC" if backwards else " ORDER BY version"
    if has_limit:
        sql += " LIMIT %s"
    return sql


@lru_cache(maxsize=256)
def read_all(type_filter: str, has_category: bool, has_before: bool) -> str:
    """Returns the read of a page of the feed; parameters: after[, before][, types][, category], limit.
    `type_filter` is the backend's " AND event_type ..." condition, or empty."""
    sql = f"SELECT {COLUMNS} FROM events WHERE position > %s"
    if has_before:
        sql += " AND position < %s"
    sql += type_filter
    if has_category:
        sql += " AND category = %s"
    return sql + " ORDER BY position LIMIT %s"


@cache
def snapshot_and_tail(has_to: bool) -> str:
    """Returns one statement (so one consistent read) yielding the stream's usable snapshot,
    if any, as a row with part 0 (a SnapshotRow), then the events after it as rows with part 1.

    Parameters: stream id, schema version[, to], stream id, stream id, schema version[, to][, to].
    """
    upto = " AND version <= %s" if has_to else ""
    usable = f"stream_id = %s AND schema_version = %s{upto}"
    return (f"SELECT 0 AS part, NULL AS position, NULL AS stream_id, version, NULL AS event_id, "
            f"NULL AS event_type, schema_version, state AS data, NULL AS metadata, NULL AS recorded_at "
            f"FROM snapshots WHERE {usable} "
            f"UNION ALL SELECT 1, {COLUMNS} FROM events WHERE stream_id = %s "
            f"AND version > coalesce((SELECT version FROM snapshots WHERE {usable}), 0){upto} "
            f"ORDER BY 1, 4")


def read_streams(id_filter: str) -> str:
    """Returns the read of many streams' events, by stream then version; `id_filter` is the
    backend's " AND stream_id ..." condition."""
    return f"SELECT {COLUMNS} FROM events WHERE TRUE{id_filter} ORDER BY stream_id, version"
