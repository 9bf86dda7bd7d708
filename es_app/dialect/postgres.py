"""PostgreSQL (psycopg 3): ON CONFLICT upserts, SELECT ... FOR UPDATE, pg_try_advisory_lock, COPY.

Batches travel as one JSON document (`jsonb_array_elements`, `jsonb_to_recordset`): orjson
writes it in C, where psycopg's array dumpers pack every element in Python.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from functools import cache
from typing import Any

from sqlalchemy import Connection, Table, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError

from .base import DriverTable, OnConflictDialect, converter, quoted

UNIQUE_VIOLATION = "23505"  # SQLSTATE
COPY_AT_LEAST = 100  # absent rows from which upsert_newer COPYs them (its savepoint costs two round trips)
_CASTS = {"text": "text", "boolean": "boolean", "integer": "integer", "bigint": "bigint"}


@cache
def _upsert_sql(table: DriverTable) -> str:
    """Returns one INSERT .. SELECT FROM jsonb_array_elements(the rows as one JSON array of arrays) .. ON CONFLICT;
    JSON null in a JSON column becomes SQL NULL."""
    t = table.name
    values = ", ".join(f"NULLIF(r->{i}, 'null')" if k == "json" else f"(r->>{i})::{_CASTS[k]}"
                       for i, k in enumerate(table.kinds))
    sets = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in table.columns if c != table.key)
    newer = "" if table.version is None else f' WHERE "{t}"."{table.version}" < EXCLUDED."{table.version}"'
    return (f'INSERT INTO "{t}" ({quoted(table.columns)}) SELECT {values} FROM jsonb_array_elements(%s::jsonb) AS r '
            f'ON CONFLICT ("{table.key}") DO UPDATE SET {sets}{newer}')


@cache
def _copy_encoder(table: DriverTable) -> Callable[[Sequence[Any]], Sequence[Any]] | None:
    """Returns the conversion of a row for COPY: JSON columns as text, None as SQL NULL."""
    dumps = table.dumps

    def json_in(value: Any) -> Any:
        return None if value is None else dumps(value)

    return converter({i: json_in for i, k in enumerate(table.kinds) if k == "json"})


def _copy_types(conn: Connection, table: Table, columns: Sequence[str]) -> list[str]:
    """Returns the PostgreSQL type names of the columns, as psycopg's COPY knows them ("varchar", not "VARCHAR(40)")."""
    compiler = conn.dialect.type_compiler_instance
    return [re.sub(r"\(.*?\)", "", compiler.process(table.c[c].type)).strip().lower() for c in columns]


def _copy_rows(cur: Any, table: str, columns: Sequence[str], rows: Any, types: Sequence[str] | None = None) -> None:
    with cur.copy(f'COPY "{table}" ({quoted(columns)}) FROM STDIN') as copy:
        if types is not None:
            copy.set_types(list(types))
        for row in rows:
            copy.write_row(row)


@cache
def _recordset_sql(compiler: Any, table: Table, columns: tuple[str, ...], same: tuple[str, ...],
                   key_columns: tuple[str, ...]) -> str:
    """Returns driver SQL: INSERT .. SELECT FROM jsonb_to_recordset(%(rows)s) .. ON CONFLICT DO NOTHING,
    `same` as %(same_<i>)s."""
    record = ", ".join(f'"{c}" {compiler.process(table.c[c].type)}' for c in columns)
    shared = ", ".join(f"%(same_{i})s" for i in range(len(same)))
    return (f'INSERT INTO "{table.name}" ({quoted([*columns, *same])}) '
            f"SELECT {quoted(columns)}{', ' + shared if shared else ''} "
            f"FROM jsonb_to_recordset(CAST(%(rows)s AS jsonb)) AS r({record}) "
            f"ON CONFLICT ({quoted(key_columns)}) DO NOTHING")


@contextlib.contextmanager
def _raw_cursor(conn: Connection) -> Iterator[Any]:
    """Yields a psycopg cursor in `conn`'s transaction, closed after; its errors raised as Core raises them
    (IntegrityError, ...)."""
    dbapi_error = conn.dialect.loaded_dbapi.Error
    cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]  # a live connection's
    try:
        yield cur
    except dbapi_error as err:
        raise DBAPIError.instance(None, None, err, dbapi_error, dialect=conn.dialect) from err
    finally:
        cur.close()


def _pipelined(cur: Any) -> bool:
    """Returns whether `cur`'s connection is in pipeline mode (results not yet read)."""
    return bool(cur.connection.pgconn.pipeline_status)  # pq.PipelineStatus.OFF is 0


def _index_defs(conn: Connection, table: str) -> list[tuple[str, str]]:
    return [(n, d) for n, d in conn.execute(text(
        "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
        "WHERE x.indrelid = CAST(:t AS regclass) AND NOT x.indisprimary ORDER BY i.relname"), {"t": table})]


def _temp_name(name: str) -> str:
    return f"{name[:57]}__next"


def _key_lock(table: str) -> int:
    """Returns the advisory lock key of a table's key counter (a stable 63-bit number from its name)."""
    return int.from_bytes(hashlib.sha256(f"next_key:{table}".encode()).digest()[:8], "big") >> 1


class PostgresDialect(OnConflictDialect):
    name = "postgresql"
    listens = True
    commits_with_last_write = True
    _insert = staticmethod(insert)

    def snapshot_read_options(self) -> dict[str, Any]:
        return {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}

    def try_advisory_lock(self, conn: Connection, key: int) -> bool:
        return bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())

    def advisory_unlock(self, conn: Connection, key: int) -> None:
        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})

    def lock_for_transaction(self, conn: Connection, key: int) -> None:
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})

    def set_driver_autocommit(self, dbapi_conn: Any, on: bool) -> bool:
        dbapi_conn.autocommit = on
        return True

    def next_key(self, conn: Connection, table: str, key_column: str, counters: Table) -> int:
        sequence = conn.execute(text("SELECT pg_get_serial_sequence(:t, :c)"),
                                {"t": conn.dialect.identifier_preparer.quote(table), "c": key_column}).scalar()
        if sequence is None:  # a key without a sequence: the counter, under a lock per table
            self.lock_for_transaction(conn, _key_lock(table))
            return super().next_key(conn, table, key_column, counters)
        # past the table's largest key too: rows inserted with explicit keys never advanced the sequence
        quote = conn.dialect.identifier_preparer.quote
        return int(conn.execute(text(
            f"SELECT setval(:s, greatest(nextval(:s), (SELECT coalesce(max({quote(key_column)}), 0) + 1 "
            f"FROM {quote(table)})))"), {"s": sequence}).scalar_one())

    def read_together(self, cur: Any, reads: Sequence[tuple[str, Sequence[Any]]]) -> list[list[Any]]:
        db = cur.connection
        with db.pipeline():  # with the BEGIN of a transaction not yet begun: one round trip in all
            sent = [db.execute(statement, params, prepare=True) for statement, params in reads]
        try:
            return [c.fetchall() for c in sent]
        finally:
            for c in sent:
                c.close()

    @contextlib.contextmanager
    def writes_with_commit(self, cur: Any) -> Iterator[None]:
        db = cur.connection
        with db.pipeline():  # the block's statements, the COMMIT and the pipeline's sync: one round trip
            yield
            db.execute("COMMIT").close()

    def select_in(self, cur: Any, table: DriverTable, values: Sequence[Any],
                  columns: Sequence[str] | None = None) -> list[Sequence[Any]]:
        # One array parameter, planned afresh each time, not a prepared statement: a plan cached
        # while the table was small (a catch-up from 0) would stay a sequential scan as it grows.
        cols = table.columns if columns is None else columns
        ids = values if isinstance(values, list) else list(values)
        cur.execute(f'SELECT {quoted(cols)} FROM "{table.name}" WHERE "{table.key}" = ANY(%s)', (ids,),
                    prepare=False)
        return cur.fetchall()  # psycopg decodes booleans, and JSON with the engine's loads

    def upsert_newer(self, cur: Any, table: DriverTable, rows: Sequence[Sequence[Any]],
                     absent: Collection[Any] = ()) -> None:
        key = table.columns.index(table.key)
        # COPY is not possible in a pipeline (writes_with_commit): there the rows go by the upsert
        new = [r for r in rows if r[key] in absent] if len(absent) >= COPY_AT_LEAST and not _pipelined(cur) else []
        if new and self._copy_new_rows(cur, table, new):
            rows = [r for r in rows if r[key] not in absent]
        if rows:
            cur.execute(_upsert_sql(table), (table.dumps(rows),))

    @staticmethod
    def _copy_new_rows(cur: Any, table: DriverTable, rows: list[Sequence[Any]]) -> bool:
        """Returns True after COPYing rows that are not in the table; False, having written nothing,
        if one of them was there after all (the upsert then writes them all)."""
        encode = _copy_encoder(table)
        cur.execute("SAVEPOINT upsert_copy")
        try:
            _copy_rows(cur, table.name, table.columns, rows if encode is None else map(encode, rows))
        except Exception as exc:
            if getattr(exc, "sqlstate", None) != UNIQUE_VIOLATION:  # only that means "there after all"
                raise
            cur.execute("ROLLBACK TO SAVEPOINT upsert_copy")
            return False
        cur.execute("RELEASE SAVEPOINT upsert_copy")
        return True

    def bulk_copy(self, conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        columns = list(rows[0])
        with _raw_cursor(conn) as cur:
            _copy_rows(cur, table.name, columns, (tuple(row[c] for c in columns) for row in rows),
                       _copy_types(conn, table, columns))

    def insert_ignore_many(self, conn: Connection, table: Table, key_columns: Sequence[str],
                           rows: Sequence[Mapping[str, Any]], same: Mapping[str, Any],
                           dumps: Callable[[Any], str] = json.dumps) -> int:
        if not rows:
            return 0
        sql = _recordset_sql(conn.dialect.type_compiler_instance, table, tuple(rows[0]), tuple(same),
                             tuple(key_columns))
        shared = {f"same_{i}": value for i, value in enumerate(same.values())}
        with _raw_cursor(conn) as cur:  # driver SQL: it can go in a pipeline (writes_with_commit)
            cur.execute(sql, {"rows": dumps(list(rows)), **shared})
            return cur.rowcount

    def clone_table_empty(self, conn: Connection, source: str, target: str) -> None:
        conn.execute(text(f"DROP TABLE IF EXISTS {target}"))
        conn.execute(text(f"CREATE TABLE {target} (LIKE {source} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"))
        primary = conn.execute(text(
            "SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c "
            "WHERE c.conrelid = CAST(:t AS regclass) AND c.contype = 'p'"), {"t": source}).scalar_one()
        conn.execute(text(f"ALTER TABLE {target} ADD CONSTRAINT {target}_pkey {primary}"))

    def copy_indexes(self, conn: Connection, source: str, target: str) -> list[tuple[str, str]]:
        pattern = re.compile(
            rf"(CREATE (?:UNIQUE )?INDEX )(\S+)( ON (?:ONLY )?)((?:\S+\.)?){re.escape(source)}( USING .*)", re.S)
        renames = []
        for name, ddl in _index_defs(conn, source):
            m = pattern.match(ddl)
            if m is None:
                raise RuntimeError(f"cannot copy index definition: {ddl}")
            temp = _temp_name(name)
            conn.execute(text(f"DROP INDEX IF EXISTS {temp}"))
            conn.execute(text(f"{m[1]}{temp}{m[3]}{m[4]}{target}{m[5]}"))
            renames.append((temp, name))
        return renames

    def swap_tables(self, conn: Connection, live: str, target: str, indexes: Sequence[tuple[str, str]]) -> None:
        conn.execute(text(f"DROP TABLE {live}"))
        conn.execute(text(f"ALTER TABLE {target} RENAME TO {live}"))
        conn.execute(text(f"ALTER TABLE {live} RENAME CONSTRAINT {target}_pkey TO {live}_pkey"))
        for temp, final in indexes:
            conn.execute(text(f"ALTER INDEX {temp} RENAME TO {final}"))


DIALECT = PostgresDialect()
