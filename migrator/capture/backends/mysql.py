"""MySQL / MariaDB capture: three triggers per table, ids given after commit by a sequencer, a `migrator_origin` row.

InnoDB hands out AUTO_INCREMENT values at INSERT, not at COMMIT, so a transaction that
commits late would leave a lower number behind a relay reading `id > offset`. The changelog
therefore has two numbers: `entry` (AUTO_INCREMENT, allocated at INSERT, only orders the
rows) and the public `id`, NULL until a *sequencer* pass (`number`) gives it: under the
row lock of the counter `migrator_changelog_id_seq`, the committed rows without id get ids
in entry order, after every id handed out before. A row that commits late is numbered by a
later pass, with a higher id, so `id > offset` never skips it. Changes of one key are
ordered by InnoDB's row locks (a second writer waits for the first to commit), so entry
order is commit order per key. Readers number first (`MySQLCapture.number_committed`).

The rows are `JSON_OBJECT(...)` over the columns reflected at install, in the shape the
other backends write: DATETIME as `YYYY-MM-DD HH:MM:SS[.ffffff]` (naive UTC, as SQLite),
TIMESTAMP converted to UTC with an explicit `+00:00`, TINYINT(1) as 0/1 (as SQLite),
binary as hex; `capture install` is run again after columns are added. The origin marker
is a row in `migrator_origin` keyed by CONNECTION_ID(), inserted in the migrator's write
transaction and deleted at its end: other connections never see it, and a crash or a
rollback takes it away. TRUNCATE fires no trigger and cannot be refused on MySQL (see
docs/architecture.md). MySQL's DDL commits implicitly: install and remove are sequences of
idempotent steps, safe to run again after a failure.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy import types as sqltypes
from sqlalchemy.exc import DBAPIError

from ..errors import CaptureError, CaptureNotInstalled
from ..sql import CHANGELOG, HISTORY, HISTORY_ACTIONS, LEGACY_ORIGIN, literal
from .base import CaptureBackend, Entry

ORIGIN_TABLE = "migrator_origin"  # a row per connection, only inside a migrator write transaction
ID_SEQ = f"{CHANGELOG}_id_seq"  # one row: the highest id handed out; its row lock serializes the sequencer
ORIGIN_EXPR = f"COALESCE((SELECT origin FROM {ORIGIN_TABLE} WHERE conn_id = CONNECTION_ID()), '{LEGACY_ORIGIN}')"
NOW = "UTC_TIMESTAMP(6)"
TRIGGERS = (("ins", "INSERT"), ("upd", "UPDATE"), ("del", "DELETE"))
NAME_MAX = 64  # MySQL's identifier length limit
NUMBER_CHUNK = 1000  # rows numbered per chunk
RUNS_MAX = 8  # runs of consecutive entries in a chunk numbered by arithmetic; more: one CASE
NO_SUCH_TABLE = 1146

TABLE_OPTIONS = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"

CHANGELOG_DDL = [
    # The counter and its row exist before the changelog does: MySQL's DDL commits statement by statement,
    # and a reader that finds the changelog (a relay, a worker running while capture is installed) numbers
    # through the counter at once.
    f"""CREATE TABLE IF NOT EXISTS {ID_SEQ} (
        one TINYINT NOT NULL PRIMARY KEY,
        last_id BIGINT NOT NULL
    ) {TABLE_OPTIONS}""",
    f"INSERT INTO {ID_SEQ} (one, last_id) VALUES (1, 0) ON DUPLICATE KEY UPDATE one = one",
    f"""CREATE TABLE IF NOT EXISTS {CHANGELOG} (
        entry BIGINT NOT NULL AUTO_INCREMENT,
        id BIGINT NULL,
        table_name VARCHAR(200) NOT NULL,
        op CHAR(1) NOT NULL,
        pk TEXT NOT NULL,
        old_row LONGTEXT NULL,
        new_row LONGTEXT NULL,
        tx_time DATETIME(6) NOT NULL,
        origin VARCHAR(100) NOT NULL DEFAULT '{LEGACY_ORIGIN}',
        PRIMARY KEY (entry),
        UNIQUE KEY ux_{CHANGELOG}_id (id),
        KEY ix_{CHANGELOG}_table_id (table_name, id),
        CONSTRAINT ck_{CHANGELOG}_op CHECK (op IN ('I', 'U', 'D'))
    ) {TABLE_OPTIONS}""",
    # also repairs a counter behind (an install interrupted between its statements, an older changelog)
    f"UPDATE {ID_SEQ} SET last_id = GREATEST(last_id, (SELECT COALESCE(MAX(id), 0) FROM {CHANGELOG})) "
    "WHERE one = 1",
    f"""CREATE TABLE IF NOT EXISTS {ORIGIN_TABLE} (
        conn_id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
        origin VARCHAR(100) NOT NULL
    ) {TABLE_OPTIONS}""",
]

DROP_CHANGELOG_DDL = [f"DROP TABLE IF EXISTS {CHANGELOG}", f"DROP TABLE IF EXISTS {ID_SEQ}",
                      f"DROP TABLE IF EXISTS {ORIGIN_TABLE}"]

HISTORY_DDL = [
    f"""CREATE TABLE IF NOT EXISTS {HISTORY} (
        seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        at DATETIME(6) NOT NULL DEFAULT (UTC_TIMESTAMP(6)),
        action VARCHAR(40) NOT NULL,
        table_name VARCHAR(200) NULL,
        generation VARCHAR(36) NULL,
        last_id BIGINT NOT NULL DEFAULT 0,
        CONSTRAINT ck_{HISTORY}_action CHECK (action IN ({", ".join(literal(a) for a in HISTORY_ACTIONS)}))
    ) {TABLE_OPTIONS}""",
]


def tick(name: str) -> str:
    """Returns an identifier in backticks."""
    return "`" + name.replace("`", "``") + "`"


def trigger_names(table: str) -> list[str]:
    """Returns the names of one table's three capture triggers (shortened with a hash past 64 characters)."""
    names = []
    for suffix, _ in TRIGGERS:
        name = f"migrator_capture_{table}_{suffix}"
        if len(name) > NAME_MAX:
            digest = hashlib.sha1(table.encode()).hexdigest()[:10]
            name = f"migrator_capture_{table[:NAME_MAX - 32]}_{digest}_{suffix}"
        names.append(name)
    return names


def _value(ref: str, kind: str) -> str:
    if kind == "binary":
        return f"HEX({ref})"
    if kind == "timestamp":  # TIMESTAMP is read in the session's time zone: its UTC instant, explicitly
        utc = f"TIMESTAMPADD(MICROSECOND, ROUND(UNIX_TIMESTAMP({ref}) * 1000000), '1970-01-01 00:00:00')"
        return (f"CASE WHEN {ref} IS NULL THEN NULL WHEN UNIX_TIMESTAMP({ref}) = 0 THEN '0000-00-00 00:00:00' "
                f"ELSE DATE_FORMAT({utc}, '%Y-%m-%dT%H:%i:%s.%f+00:00') END")
    return ref


def row_json(prefix: str, columns: Sequence[str], kinds: dict[str, str]) -> str:
    """Returns a JSON_OBJECT(...) expression of a row; `prefix` is NEW, OLD or a table alias."""
    parts = [f"{literal(c)}, {_value(f'{prefix}.{tick(c)}', kinds.get(c, ''))}" for c in columns]
    return f"JSON_OBJECT({', '.join(parts)})"


def column_kinds(conn: Connection, table: str) -> dict[str, str]:
    """Returns the columns written other than as they are: "binary" (as hex) and "timestamp" (to UTC)."""
    kinds = {}
    for c in inspect(conn).get_columns(table):
        if isinstance(c["type"], (sqltypes.LargeBinary, sqltypes.BINARY, sqltypes.VARBINARY, sqltypes.NullType)):
            kinds[c["name"]] = "binary"
        elif isinstance(c["type"], sqltypes.TIMESTAMP):
            kinds[c["name"]] = "timestamp"
    return kinds


def _missing(conn: Connection, exc: DBAPIError) -> None:
    """Returns when the changelog is absent (nothing to number); raises otherwise."""
    args: tuple[Any, ...] = tuple(getattr(exc.orig, "args", ()))
    if not args or args[0] != NO_SUCH_TABLE:
        raise exc
    if inspect(conn).has_table(CHANGELOG):  # the changelog without its counter: its rows would never get ids
        raise CaptureError(f"the changelog's id counter ({ID_SEQ}) is missing: run `migrator capture install` "
                           "to restore it") from None


def _numbering(entries: Sequence[int], last_id: int) -> list[str]:
    """Returns the UPDATEs giving `entries` (ascending) the ids after `last_id`, in order.

    By primary key only (`entry IN (...)`): a condition on `id` would let a REPEATABLE READ pass
    lock-scan the id index and gap-lock the place where every new (id NULL) row goes, stopping the
    legacy writes. A run of consecutive entries takes `entry + offset`; a chunk broken into many
    runs (late commits between) one CASE. An id a row has already is kept.
    """
    runs: list[list[int]] = []
    for e in entries:
        if runs and e == runs[-1][-1] + 1:
            runs[-1].append(e)
        else:
            runs.append([e])
    if len(runs) > RUNS_MAX:
        cases = " ".join(f"WHEN {e} THEN {last_id + i}" for i, e in enumerate(entries, 1))
        return [f"UPDATE {CHANGELOG} SET id = COALESCE(id, CASE entry {cases} END) "
                f"WHERE entry IN ({', '.join(map(str, entries))})"]
    statements, next_id = [], last_id + 1
    for run in runs:
        statements.append(f"UPDATE {CHANGELOG} SET id = COALESCE(id, entry + {next_id - run[0]}) "
                          f"WHERE entry IN ({', '.join(map(str, run))})")
        next_id += len(run)
    return statements


def number(conn: Connection, *, wait: bool = True) -> int:
    """Numbers the committed changelog rows without id, in entry order, in the caller's transaction; returns how many.

    Takes the counter's row lock first (held until the caller's transaction ends: one pass at a
    time; without `wait`, returns 0 at once when another pass holds it), then reads the rows
    without id with a consistent read, which never waits for an open legacy transaction (its
    rows stay unnumbered until a later pass). The UPDATE keeps an id a row has already.
    In a REPEATABLE READ transaction, call it before any other read: the snapshot then begins
    under the lock, and the highest id it shows afterwards covers exactly the changes it holds.
    """
    lock = "FOR UPDATE" if wait else "FOR UPDATE SKIP LOCKED"
    last = conn.execute(text(f"SELECT last_id FROM {ID_SEQ} WHERE one = 1 {lock}")).scalar()
    if last is None:
        if wait or conn.execute(text(f"SELECT 1 FROM {ID_SEQ} WHERE one = 1")).first() is None:
            raise CaptureError(f"the changelog's id counter ({ID_SEQ}) is empty: run `migrator capture install` "
                               "to restore it")
        return 0  # another pass holds the counter
    # The caller's snapshot (REPEATABLE READ: from its first plain read; it begins here when this is the
    # first) must not predate a pass that numbered rows: that pass may have given ids to rows committed
    # after the snapshot, and ids given now would rank above them, though the snapshot does not hold them.
    # Then leave numbering to the next pass (the caller's highest id stays the one its snapshot shows).
    if conn.execute(text(f"SELECT last_id FROM {ID_SEQ} WHERE one = 1")).scalar() != last:
        return 0
    numbered, after, next_id = 0, None, int(last)
    while True:
        # the first rows without id from the id index; the next ones along the primary key from there (the
        # id index would sort every row without id again for each chunk: quadratic in a long backlog)
        q = (f"SELECT entry FROM {CHANGELOG} WHERE id IS NULL ORDER BY entry LIMIT :n" if after is None else
             f"SELECT entry FROM {CHANGELOG} FORCE INDEX (PRIMARY) WHERE entry > :after AND id IS NULL "
             "ORDER BY entry LIMIT :n")
        entries = [int(e) for e in conn.execute(text(q), {"after": after, "n": NUMBER_CHUNK}).scalars()]
        if not entries:
            break
        for statement in _numbering(entries, next_id):
            conn.execute(text(statement))
        next_id += len(entries)
        numbered += len(entries)
        after = entries[-1]
        if len(entries) < NUMBER_CHUNK:
            break
    if numbered:
        conn.execute(text(f"UPDATE {ID_SEQ} SET last_id = :n WHERE one = 1"), {"n": next_id})
    return numbered


class MySQLCapture(CaptureBackend):
    name = "mysql"
    ids_after_commit = True

    def changelog_ddl(self) -> list[str]:
        return list(CHANGELOG_DDL)

    def drop_changelog_ddl(self) -> list[str]:
        return list(DROP_CHANGELOG_DDL)

    def high_id(self, conn: Connection) -> int:
        return conn.execute(text(f"SELECT last_id FROM {ID_SEQ} WHERE one = 1")).scalar() or 0

    def raise_id_floor(self, conn: Connection, floor: int) -> None:
        conn.execute(text(f"UPDATE {ID_SEQ} SET last_id = GREATEST(last_id, :f) WHERE one = 1"), {"f": int(floor)})

    def number_committed(self, bind: Engine | Connection) -> int:
        if isinstance(bind, Connection):
            try:
                if bind.in_transaction():
                    return number(bind)
                with bind.begin():
                    return number(bind)
            except DBAPIError as exc:
                _missing(bind, exc)
                return 0
        with bind.connect() as conn:
            conn = conn.execution_options(isolation_level="READ COMMITTED")  # sees every commit up to now
            try:
                with conn.begin():
                    return number(conn, wait=False)  # another pass is numbering: it covers these commits
            except DBAPIError as exc:
                _missing(conn, exc)
                return 0

    def trigger_ddl(self, conn: Connection, table: str, key: str, columns: Sequence[str]) -> list[str]:
        t, k = tick(table), tick(key)
        kinds = column_kinds(conn, table)
        old, new = row_json("OLD", columns, kinds), row_json("NEW", columns, kinds)

        def entries(*rows: tuple[str, str, str, str]) -> str:
            values = ", ".join(f"({literal(table)}, '{op}', CAST({pk} AS CHAR), {o}, {n}, {NOW}, m_origin)"
                               for op, pk, o, n in rows)
            return (f"INSERT INTO {CHANGELOG} (table_name, op, pk, old_row, new_row, tx_time, origin) "
                    f"VALUES {values};")

        head = f"BEGIN DECLARE m_origin VARCHAR(100) DEFAULT {ORIGIN_EXPR}; "
        bodies = {
            "INSERT": head + entries(("I", f"NEW.{k}", "NULL", new)) + " END",
            "UPDATE": head + f"IF CAST(OLD.{k} AS BINARY) <=> CAST(NEW.{k} AS BINARY) THEN "
                      + entries(("U", f"NEW.{k}", old, new)) + " ELSE "
                      + entries(("D", f"OLD.{k}", old, "NULL"), ("I", f"NEW.{k}", "NULL", new))
                      + " END IF; END",
            "DELETE": head + entries(("D", f"OLD.{k}", old, "NULL")) + " END",
        }
        present = self._trigger_bodies(conn, table)
        wanted = [(name, event, bodies[event]) for name, (_, event) in zip(trigger_names(table), TRIGGERS, strict=True)]
        stale = [(name, event, body) for name, event, body in wanted if present.get(name) != (event, body)]
        if not stale:
            return []  # in place as they are: nothing to replace, no window without capture
        create = [f"TRIGGER {tick(name)} AFTER {event} ON {t} FOR EACH ROW {body}" for name, event, body in stale]
        if conn.dialect.is_mariadb:  # type: ignore[attr-defined]
            return [f"CREATE OR REPLACE {c}" for c in create]  # one statement each: never without a trigger
        # MySQL replaces a trigger by DROP and CREATE: the table is locked in between, so no write is missed
        return [f"LOCK TABLES {t} WRITE, {CHANGELOG} WRITE, {ORIGIN_TABLE} READ",
                *(f"DROP TRIGGER IF EXISTS {tick(name)}" for name, _, _ in stale),
                *(f"CREATE {c}" for c in create),
                "UNLOCK TABLES"]

    @staticmethod
    def _trigger_bodies(conn: Connection, table: str) -> dict[str, tuple[str, str]]:
        rows = conn.execute(text(
            "SELECT TRIGGER_NAME, EVENT_MANIPULATION, ACTION_STATEMENT FROM information_schema.TRIGGERS "
            "WHERE TRIGGER_SCHEMA = DATABASE() AND EVENT_OBJECT_TABLE = :t AND ACTION_TIMING = 'AFTER'"),
            {"t": table})
        return {r[0]: (r[1], r[2]) for r in rows}

    def drop_trigger_ddl(self, table: str) -> list[str]:
        return [f"DROP TRIGGER IF EXISTS {tick(n)}" for n in trigger_names(table)]

    def triggers_installed(self, conn: Connection, table: str) -> bool:
        return set(trigger_names(table)) <= set(self._trigger_bodies(conn, table))

    def set_origin(self, conn: Connection, origin: str) -> None:
        if not inspect(conn).has_table(ORIGIN_TABLE):
            raise CaptureNotInstalled()
        conn.execute(text(f"INSERT INTO {ORIGIN_TABLE} (conn_id, origin) VALUES (CONNECTION_ID(), :o) "
                          "ON DUPLICATE KEY UPDATE origin = VALUES(origin)"), {"o": origin})

    def clear_origin(self, conn: Connection) -> None:
        conn.execute(text(f"DELETE FROM {ORIGIN_TABLE} WHERE conn_id = CONNECTION_ID()"))

    def row_json_expr(self, conn: Connection, table: str, columns: Sequence[str], alias: str) -> str:
        return row_json(alias, columns, column_kinds(conn, table))

    def insert_changes(self, conn: Connection, entries: Sequence[Entry]) -> None:
        origin: Any = conn.execute(text(f"SELECT {ORIGIN_EXPR}")).scalar()  # a plain read: no lock on the marker
        conn.execute(text(
            f"INSERT INTO {CHANGELOG} (table_name, op, pk, old_row, new_row, tx_time, origin) "
            f"VALUES (:t, :op, :pk, :old, :new, {NOW}, :origin)"), [{**e, "origin": origin} for e in entries])

    def history_ddl(self) -> list[str]:
        return list(HISTORY_DDL)


BACKEND = MySQLCapture()
