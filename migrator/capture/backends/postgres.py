"""PostgreSQL capture: one trigger function for every table, ids numbered at commit, a GUC as origin marker.

The changelog row gets its public `id` at COMMIT, from a deferred constraint trigger that
takes one transaction-scoped advisory lock first. Ids are therefore handed out in commit
order, so a relay reading `id > offset` never skips a row that commits late (a plain
sequence would hand a lower id to a transaction that commits later). The lock is held only
while committing, after the transaction's own work, so capture adds no lock waits to the
legacy transactions themselves and cannot create deadlocks between them. A BEFORE TRUNCATE
trigger refuses TRUNCATE on a captured table (it would bypass the row triggers). The origin
marker is the transaction-local setting `migrator.origin`.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, Engine, text

from ..sql import CHANGELOG, HISTORY, HISTORY_ACTIONS, LEGACY_ORIGIN, NOTIFY_CHANNEL, NUMBERING_LOCK_KEY, literal, quote
from .base import CaptureBackend, Entry

ORIGIN_SETTING = "migrator.origin"  # transaction-local GUC
ORIGIN_EXPR = f"coalesce(nullif(current_setting('{ORIGIN_SETTING}', true), ''), '{LEGACY_ORIGIN}')"
HIGH_ID = f"SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM {CHANGELOG}_id_seq"

CHANGELOG_DDL = [
    f"""CREATE TABLE IF NOT EXISTS {CHANGELOG} (
        entry BIGSERIAL PRIMARY KEY,
        id BIGINT UNIQUE,
        table_name TEXT NOT NULL,
        op CHAR(1) NOT NULL CHECK (op IN ('I', 'U', 'D')),
        pk TEXT NOT NULL,
        old_row JSONB,
        new_row JSONB,
        tx_time TIMESTAMPTZ NOT NULL DEFAULT now(),
        origin TEXT NOT NULL DEFAULT '{LEGACY_ORIGIN}'
    )""",
    f"CREATE SEQUENCE IF NOT EXISTS {CHANGELOG}_id_seq",
    f"CREATE INDEX IF NOT EXISTS ix_{CHANGELOG}_table_id ON {CHANGELOG} (table_name, id)",
    f"CREATE INDEX IF NOT EXISTS ix_{CHANGELOG}_unnumbered ON {CHANGELOG} (entry) WHERE id IS NULL",
    # Fires at commit once per changelog row; the first firing numbers all of the transaction's
    # rows (the only unnumbered rows it can see) in one UPDATE, from a block of the sequence
    # taken under the lock; the other firings find their row numbered and return. Deferred
    # events fire in insertion order, so the first firing's row has the transaction's lowest
    # entry: `entry >= NEW.entry` keeps the scan off the dead row versions of older commits.
    f"""CREATE OR REPLACE FUNCTION {CHANGELOG}_number() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        n BIGINT;
        base BIGINT;
    BEGIN
        IF (SELECT id FROM {CHANGELOG} WHERE entry = NEW.entry) IS NOT NULL THEN
            RETURN NULL;
        END IF;
        PERFORM pg_advisory_xact_lock({NUMBERING_LOCK_KEY});
        SELECT count(*) INTO n FROM {CHANGELOG} WHERE id IS NULL AND entry >= NEW.entry;
        base := nextval('{CHANGELOG}_id_seq');
        IF n > 1 THEN
            PERFORM setval('{CHANGELOG}_id_seq', base + n - 1);
        END IF;
        UPDATE {CHANGELOG} c SET id = s.id
          FROM (SELECT entry, base + row_number() OVER (ORDER BY entry) - 1 AS id
                  FROM {CHANGELOG} WHERE id IS NULL AND entry >= NEW.entry) s
         WHERE c.entry = s.entry;
        RETURN NULL;
    END $$""",
    f"DROP TRIGGER IF EXISTS {CHANGELOG}_number ON {CHANGELOG}",
    f"""CREATE CONSTRAINT TRIGGER {CHANGELOG}_number AFTER INSERT ON {CHANGELOG}
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION {CHANGELOG}_number()""",
    f"""CREATE OR REPLACE FUNCTION migrator_capture() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        origin TEXT := {ORIGIN_EXPR};
        old_j JSONB; new_j JSONB; old_pk TEXT; new_pk TEXT;
    BEGIN
        IF TG_OP <> 'INSERT' THEN old_j := to_jsonb(OLD); old_pk := old_j ->> TG_ARGV[0]; END IF;
        IF TG_OP <> 'DELETE' THEN new_j := to_jsonb(NEW); new_pk := new_j ->> TG_ARGV[0]; END IF;
        IF TG_OP = 'UPDATE' AND old_pk IS DISTINCT FROM new_pk THEN
            INSERT INTO {CHANGELOG} (table_name, op, pk, old_row, new_row, origin)
                VALUES (TG_TABLE_NAME, 'D', old_pk, old_j, NULL, origin),
                       (TG_TABLE_NAME, 'I', new_pk, NULL, new_j, origin);
        ELSE
            INSERT INTO {CHANGELOG} (table_name, op, pk, old_row, new_row, origin)
                VALUES (TG_TABLE_NAME, left(TG_OP, 1), coalesce(new_pk, old_pk), old_j, new_j, origin);
        END IF;
        PERFORM pg_notify('{NOTIFY_CHANNEL}', TG_TABLE_NAME);
        RETURN NULL;
    END $$""",
    """CREATE OR REPLACE FUNCTION migrator_refuse_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'change capture is installed on table %: TRUNCATE would bypass it '
            '(delete the rows, or run `migrator capture remove` first)', TG_TABLE_NAME;
    END $$""",
]

DROP_CHANGELOG_DDL = [
    f"DROP TABLE IF EXISTS {CHANGELOG}",
    f"DROP SEQUENCE IF EXISTS {CHANGELOG}_id_seq",
    f"DROP FUNCTION IF EXISTS {CHANGELOG}_number()",
    "DROP FUNCTION IF EXISTS migrator_capture()",
    "DROP FUNCTION IF EXISTS migrator_refuse_truncate()",
]

HISTORY_DDL = [
    f"""CREATE TABLE IF NOT EXISTS {HISTORY} (
        seq BIGSERIAL PRIMARY KEY,
        at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
        action TEXT NOT NULL CHECK (action IN ({", ".join(literal(a) for a in HISTORY_ACTIONS)})),
        table_name TEXT,
        generation TEXT,
        last_id BIGINT NOT NULL DEFAULT 0
    )""",
]


class PostgresCapture(CaptureBackend):
    name = "postgresql"

    def changelog_ddl(self) -> list[str]:
        return list(CHANGELOG_DDL)

    def drop_changelog_ddl(self) -> list[str]:
        return list(DROP_CHANGELOG_DDL)

    def high_id(self, conn: Connection) -> int:
        return conn.execute(text(HIGH_ID)).scalar() or 0

    def raise_id_floor(self, conn: Connection, floor: int) -> None:
        self.run(conn, [f"SELECT setval('{CHANGELOG}_id_seq', {int(floor)}) WHERE {int(floor)} > 0 AND "
                        f"({HIGH_ID}) < {int(floor)}"])

    def number_committed(self, bind: Engine | Connection) -> int:
        return 0  # ids are given at COMMIT, by the changelog's numbering trigger

    def trigger_ddl(self, conn: Connection, table: str, key: str, columns: Sequence[str]) -> list[str]:
        t = quote(table)  # to_jsonb(OLD/NEW) takes every column: `columns` is not needed
        return [
            *self.drop_trigger_ddl(table),
            f"CREATE TRIGGER migrator_capture AFTER INSERT OR UPDATE OR DELETE ON {t} "
            f"FOR EACH ROW EXECUTE FUNCTION migrator_capture({literal(key)})",
            f"CREATE TRIGGER migrator_capture_truncate BEFORE TRUNCATE ON {t} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION migrator_refuse_truncate()",
        ]

    def drop_trigger_ddl(self, table: str) -> list[str]:
        t = quote(table)
        return [f"DROP TRIGGER IF EXISTS migrator_capture ON {t}",
                f"DROP TRIGGER IF EXISTS migrator_capture_truncate ON {t}"]

    def triggers_installed(self, conn: Connection, table: str) -> bool:
        found = conn.execute(text(
            "SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "WHERE c.relname = :t AND pg_table_is_visible(c.oid) AND t.tgname = 'migrator_capture'"),
            {"t": table}).scalar()
        return bool(found)

    def set_origin(self, conn: Connection, origin: str) -> None:
        conn.execute(text("SELECT set_config(:k, :o, true)"), {"k": ORIGIN_SETTING, "o": origin})

    def clear_origin(self, conn: Connection) -> None:
        conn.execute(text("SELECT set_config(:k, '', true)"), {"k": ORIGIN_SETTING})

    def row_json_expr(self, conn: Connection, table: str, columns: Sequence[str], alias: str) -> str:
        return f"to_jsonb({alias})::text"

    def insert_changes(self, conn: Connection, entries: Sequence[Entry]) -> None:
        conn.execute(text(
            f"INSERT INTO {CHANGELOG} (table_name, op, pk, old_row, new_row, origin) "
            f"VALUES (:t, :op, :pk, CAST(:old AS jsonb), CAST(:new AS jsonb), {ORIGIN_EXPR})"),
            [dict(e) for e in entries])
        for table in sorted({e["t"] for e in entries}):
            conn.execute(text("SELECT pg_notify(:c, :t)"), {"c": NOTIFY_CHANNEL, "t": table})

    def history_ddl(self) -> list[str]:
        return list(HISTORY_DDL)


BACKEND = PostgresCapture()
