"""Driver-level SQL for the store's hot paths: append, read a stream or the feed, load a snapshot.

SQLAlchemy Core spends tens of microseconds per statement on cache keys, result
wrappers and events; on the command path that was most of the time. These paths
run fixed SQL strings on the DB-API connection under SQLAlchemy's pool instead
(sqlite3 caches prepared statements, psycopg prepares them after a few uses).
The stored format is exactly what the SQLAlchemy tables in `schema.py` write and
read, so both kinds of access can be mixed freely. PostgreSQL array parameters go in
binary (`%b`): psycopg's text format escapes every element with a regex, which made
dumping 100 JSON documents cost ~8 ms against ~0.3 ms in binary.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any, Iterator, Sequence

import orjson
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from .limits import check_event_fields, check_json
from .types import EncodedEvent, NewEvent, RecordedEvent, category_of

COLUMNS = "position, stream_id, version, event_id, event_type, schema_version, data, metadata, recorded_at"
INSERT_COLUMNS = "stream_id, category, version, event_id, event_type, schema_version, data, metadata, recorded_at"
SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"  # SQLAlchemy's storage format for DateTime on SQLite


_STRICT = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS \
    | orjson.OPT_PASSTHROUGH_SUBCLASS


def dumps(value: Any) -> str:
    """Returns `value` as JSON text: orjson where it gives what json.dumps gives, else json.dumps
    (integers beyond 64 bits, str/int/dict subclasses; datetimes still raise TypeError)."""
    try:
        return orjson.dumps(value, option=_STRICT).decode()
    except TypeError:
        return json.dumps(value)


def loads(raw: str | bytes | memoryview) -> Any:
    """Returns the value of JSON text, parsed by orjson; when that holds a float, parsed again by
    json.loads, since orjson turns integers beyond 64 bits into floats."""
    if isinstance(raw, memoryview):
        raw = bytes(raw)
    value = orjson.loads(raw)
    return json.loads(raw) if _has_float(value) else value


def _has_float(value: Any) -> bool:
    kind = type(value)
    if kind is dict:
        value = value.values()
    elif kind is not list:
        return kind is float
    for item in value:
        kind = type(item)
        if kind is float or ((kind is dict or kind is list) and _has_float(item)):
            return True
    return False


def metadata_text(metadata: dict[str, Any], occurred: str) -> str:
    """Returns an event's metadata as stored: with `occurred_at` (the write's time unless it carries its own)."""
    return dumps({"occurred_at": occurred, **metadata})


def event_json(stream_id: str | None, e: NewEvent, occurred: str) -> tuple[str, str]:
    """Returns the event's data and metadata as stored; raises InvalidEvent when a backend cannot hold them."""
    data, meta = dumps(e.data), metadata_text(e.metadata, occurred)
    check_json(data, stream_id, e.type, "data")
    check_json(meta, stream_id, e.type, "metadata")
    return data, meta


def encode_events(events: Sequence[NewEvent], *, parsed: bool = False) -> list[EncodedEvent]:
    """Returns the events encoded as a batch append stores them (`occurred_at` defaults to now);
    `parsed` also reads each JSON back, for `append_batch_recorded` to hand on without parsing.

    Raises InvalidEvent for an event the store cannot hold (see `es_app.store.limits`)."""
    occurred = datetime.now(timezone.utc).isoformat()
    out = []
    for e in events:
        check_event_fields(None, e)
        data_json, metadata_json = event_json(None, e, occurred)
        out.append(EncodedEvent(e.type, str(e.event_id), e.schema_version, data_json, metadata_json,
                                loads(data_json) if parsed else None, loads(metadata_json) if parsed else None))
    return out


@contextmanager
def dbapi_connection(engine: Engine, *, autocommit: bool = False) -> Iterator[Any]:
    """Yields a pooled DB-API connection; `autocommit` makes PostgreSQL reads one round trip each.

    Driver errors come out as SQLAlchemy's (IntegrityError, OperationalError, ...), as
    they would from Core; a connection found dead is invalidated, not pooled again.
    The pool rolls back whatever transaction an error left open.
    """
    with translated_errors(engine.dialect):
        fairy = engine.raw_connection()
    conn = fairy.dbapi_connection
    pg = engine.dialect.name != "sqlite"
    try:
        with translated_errors(engine.dialect, fairy):
            if pg and autocommit:
                conn.autocommit = True
            try:
                yield conn
            finally:
                if pg and autocommit:
                    _leave_autocommit(fairy)
    finally:
        fairy.close()


def _leave_autocommit(fairy: Any) -> None:
    """Puts a PostgreSQL connection back in transaction mode; one that refuses is not pooled again."""
    try:
        fairy.dbapi_connection.autocommit = False
    except Exception:  # noqa: BLE001 - a broken connection: drop it rather than pool it in autocommit
        fairy.invalidate()


@contextmanager
def translated_errors(dialect: Any, fairy: Any = None) -> Iterator[None]:
    """Re-raises DB-API errors as the matching SQLAlchemy exception (IntegrityError, ...)."""
    dbapi_error = dialect.loaded_dbapi.Error
    try:
        yield
    except dbapi_error as err:
        invalidated = fairy is not None and dialect.is_disconnect(err, fairy.dbapi_connection, None)
        if invalidated:
            fairy.invalidate(err)
        raise DBAPIError.instance(None, None, err, dbapi_error, connection_invalidated=invalidated,
                                  dialect=dialect) from err


def dbapi_of(conn: Connection) -> Any:
    """Returns the DB-API connection under a SQLAlchemy connection (same transaction)."""
    return conn.connection.dbapi_connection


class Dialect:
    """Returns SQL text and value conversions of one backend ("sqlite" or "postgresql")."""

    def __init__(self, name: str):
        self.name = name
        self.sqlite = name == "sqlite"

    def q(self, sql: str) -> str:
        """Returns `sql` (written with %s placeholders) in this driver's parameter style."""
        return sql.replace("%s", "?") if self.sqlite else sql

    # -- values ------------------------------------------------------------------
    def time_param(self, now: datetime) -> Any:
        return now.strftime(SQLITE_TIME) if self.sqlite else now

    def recorded_time(self, stored: Any) -> datetime:
        """Returns the recorded_at of a row as `row_tuples` made it (SQLite: text without offset)."""
        return datetime.fromisoformat(stored + "+00:00") if self.sqlite else stored

    def json_value(self, raw: Any) -> Any:
        return loads(raw) if self.sqlite else raw

    def recorded(self, row: tuple, upcast: Any) -> RecordedEvent:
        position, stream_id, version, event_id, event_type, schema_version, data, meta, recorded_at = row
        if self.sqlite:
            data, meta = loads(data), loads(meta)
            recorded_at = self.recorded_time(recorded_at)
        schema_version, data = upcast(event_type, schema_version, data)
        return RecordedEvent(position, stream_id, version, event_id, event_type, schema_version, data, meta,
                             recorded_at)

    def row_tuples(self, stream_id: str, current: int, new_events: Sequence[NewEvent]) -> list[tuple]:
        """Returns the events as rows in INSERT_COLUMNS order, at versions current+1.., recorded now."""
        return self.rows_at(self.stamps(), stream_id, current, new_events)

    def stamps(self) -> tuple[str, Any]:
        """Returns (default occurred_at text, recorded_at parameter) of rows written now; a bulk append
        takes them once for all its streams."""
        now = datetime.now(timezone.utc)
        return now.isoformat(), self.time_param(now)

    @staticmethod
    def rows_at(stamps: tuple[str, Any], stream_id: str, current: int,
                new_events: Sequence[NewEvent | EncodedEvent]) -> list[tuple]:
        """Returns `row_tuples` with the given stamps (encoded events keep their own text)."""
        occurred, recorded = stamps
        category = category_of(stream_id)
        rows = []
        for i, e in enumerate(new_events, start=1):
            if type(e) is EncodedEvent:
                data, meta = e.data_json, e.metadata_json
                check_json(data, stream_id, e.type, "data")
                check_json(meta, stream_id, e.type, "metadata")
            else:
                data, meta = event_json(stream_id, e, occurred)
            rows.append((stream_id, category, current + i, str(e.event_id), e.type, e.schema_version, data, meta,
                         recorded))
        return rows

    def unnest_params(self, stream_id: str, new_events: Sequence[NewEvent], current: Any) -> list[Any]:
        """Returns the parameters of `insert_unnest` (without the expected version of "exact")."""
        now = datetime.now(timezone.utc)
        occurred = now.isoformat()
        texts = [event_json(stream_id, e, occurred) for e in new_events]
        return [stream_id, category_of(stream_id), now, current,
                [str(e.event_id) for e in new_events], [e.type for e in new_events],
                [e.schema_version for e in new_events], [data for data, _ in texts],
                [meta for _, meta in texts]]

    # -- statements ----------------------------------------------------------------
    @property
    def stream_version(self) -> str:
        return self.q("SELECT max(version) FROM events WHERE stream_id = %s")

    def stream_versions(self, n: int | None) -> str:
        """Returns the (stream_id, max version) query of many streams: `n` placeholders on SQLite,
        one array on PostgreSQL (n=None)."""
        if n is None:
            return "SELECT stream_id, max(version) FROM events WHERE stream_id = ANY(%b::text[]) GROUP BY stream_id"
        return f"SELECT stream_id, max(version) FROM events WHERE stream_id IN ({', '.join(['?'] * n)}) " \
               "GROUP BY stream_id"

    @property
    def insert_positioned(self) -> str:
        """Returns SQLite's insert of one row with its position first (for executemany)."""
        return f"INSERT INTO events (position, {INSERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"

    @property
    def copy_positioned(self) -> str:
        """Returns PostgreSQL's COPY of rows with their position first."""
        return f"COPY events (position, {INSERT_COLUMNS}) FROM STDIN"

    @property
    def take_positions(self) -> str:
        """Returns PostgreSQL's query of n new positions from the events sequence (parameters: sequence, n)."""
        return "SELECT nextval(%s::regclass) FROM generate_series(1, %s)"

    @property
    def insert_one(self) -> str:
        return self.q(f"INSERT INTO events ({INSERT_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)")

    def insert_unnest(self, checked: str | None) -> str:
        """Returns PostgreSQL's bulk insert of one stream's events (arrays of ids, types, schema
        versions, data and metadata) at versions current+1.., RETURNING (version, position).

        `checked` ("any", "no_stream", "stream_exists" or "exact") makes the statement read the
        stream's version itself and insert nothing unless it matches the expected one.
        """
        return _insert_unnest(checked)

    def read_stream(self, has_to: bool, backwards: bool, has_limit: bool) -> str:
        return _read_stream(self.sqlite, has_to, backwards, has_limit)

    def insert_values(self, n: int) -> str:
        """Returns SQLite's insert of `n` rows in one statement, RETURNING (stream_id, version, position)."""
        return _insert_values(n)

    def snapshot_and_tail(self, has_to: bool) -> str:
        """Returns one statement (so one consistent read) yielding the stream's usable snapshot,
        if any, as a row with part 0, then the events after it as rows with part 1.

        Parameters: stream id, schema version[, to], stream id, stream id, schema version[, to][, to].
        """
        return _snapshot_and_tail(self.sqlite, has_to)

    def read_all(self, n_types: int | None, has_category: bool, has_before: bool = False) -> str:
        return _read_all(self.sqlite, n_types, has_category, has_before)

    @property
    def head(self) -> str:
        return "SELECT max(position) FROM events"

    @property
    def claim(self) -> str:
        return self.q("INSERT INTO unique_claims (scope, value, owner) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING")

    @property
    def claim_owner(self) -> str:
        return self.q("SELECT owner FROM unique_claims WHERE scope = %s AND value = %s")

    @property
    def release(self) -> str:
        return self.q("DELETE FROM unique_claims WHERE scope = %s AND value = %s AND owner = %s")


_CHECKS = {"any": "TRUE", "no_stream": "cur.v = 0", "stream_exists": "cur.v > 0", "exact": "cur.v = %s"}


@lru_cache(maxsize=None)
def _insert_unnest(checked: str | None) -> str:
    where = _CHECKS[checked] if checked else "TRUE"
    current = ("(SELECT coalesce(max(version), 0) AS v FROM events WHERE stream_id = %s)" if checked
               else "(SELECT %s::int AS v)")
    return (f"INSERT INTO events ({INSERT_COLUMNS}) "
            "SELECT %s, %s, cur.v + u.n, u.event_id, u.event_type, u.schema_version, u.data::jsonb, "
            f"u.metadata::jsonb, %s FROM {current} AS cur, "
            "unnest(%b::text[], %b::text[], %b::int[], %b::text[], %b::text[]) WITH ORDINALITY "
            "AS u(event_id, event_type, schema_version, data, metadata, n) "
            f"WHERE {where} ORDER BY u.n RETURNING version, position")


@lru_cache(maxsize=None)
def _read_stream(sqlite: bool, has_to: bool, backwards: bool, has_limit: bool) -> str:
    sql = f"SELECT {COLUMNS} FROM events WHERE stream_id = %s AND version >= %s"
    if has_to:
        sql += " AND version <= %s"
    sql += " ORDER BY version DESC" if backwards else " ORDER BY version"
    if has_limit:
        sql += " LIMIT %s"
    return sql.replace("%s", "?") if sqlite else sql


@lru_cache(maxsize=None)
def _read_all(sqlite: bool, n_types: int | None, has_category: bool, has_before: bool) -> str:
    sql = f"SELECT {COLUMNS} FROM events WHERE position > %s"
    if has_before:
        sql += " AND position < %s"
    if n_types is not None:
        sql += (f" AND event_type IN ({', '.join(['%s'] * n_types) or 'NULL'})" if sqlite
                else " AND event_type = ANY(%b::text[])")
    if has_category:
        sql += " AND category = %s"
    sql += " ORDER BY position LIMIT %s"
    return sql.replace("%s", "?") if sqlite else sql


@lru_cache(maxsize=64)
def _insert_values(n: int) -> str:
    row = "(" + ", ".join(["?"] * 9) + ")"
    return (f"INSERT INTO events ({INSERT_COLUMNS}) VALUES {', '.join([row] * n)} "
            "RETURNING stream_id, version, position")


@lru_cache(maxsize=None)
def _snapshot_and_tail(sqlite: bool, has_to: bool) -> str:
    upto = " AND version <= %s" if has_to else ""
    usable = f"stream_id = %s AND schema_version = %s{upto}"
    sql = (f"SELECT 0 AS part, NULL AS position, NULL AS stream_id, version, NULL AS event_id, "
           f"NULL AS event_type, schema_version, state AS data, NULL AS metadata, NULL AS recorded_at "
           f"FROM snapshots WHERE {usable} "
           f"UNION ALL SELECT 1, {COLUMNS} FROM events WHERE stream_id = %s "
           f"AND version > coalesce((SELECT version FROM snapshots WHERE {usable}), 0){upto} "
           f"ORDER BY 1, 4")
    return sql.replace("%s", "?") if sqlite else sql
