"""The DDL of change capture, per backend: the changelog table, triggers and the origin marker.

PostgreSQL: the changelog row gets its public `id` at COMMIT, from a deferred constraint
trigger that takes one transaction-scoped advisory lock first. Ids are therefore handed
out in commit order, so a relay reading `id > offset` never skips a row that commits late
(a plain sequence would hand a lower id to a transaction that commits later). The lock is
held only while committing, after the transaction's own work, so capture adds no lock
waits to the legacy transactions themselves and cannot create deadlocks between them.
SQLite has one writer at a time, so AUTOINCREMENT ids already follow commit order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

CHANGELOG = "migrator_changelog"
ORIGIN_TABLE = "migrator_origin"  # SQLite: holds a row only inside a migrator write transaction
ORIGIN_SETTING = "migrator.origin"  # PostgreSQL: transaction-local GUC
NOTIFY_CHANNEL = "migrator_changelog"
NUMBERING_LOCK_KEY = 7_045_112_358
LEGACY_ORIGIN = "legacy"
MIGRATOR_ORIGIN = "migrator"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# -- PostgreSQL ----------------------------------------------------------------
PG_CHANGELOG = [
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
        origin TEXT := coalesce(nullif(current_setting('{ORIGIN_SETTING}', true), ''), '{LEGACY_ORIGIN}');
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

PG_DROP_CHANGELOG = [
    f"DROP TABLE IF EXISTS {CHANGELOG}",
    f"DROP SEQUENCE IF EXISTS {CHANGELOG}_id_seq",
    f"DROP FUNCTION IF EXISTS {CHANGELOG}_number()",
    "DROP FUNCTION IF EXISTS migrator_capture()",
    "DROP FUNCTION IF EXISTS migrator_refuse_truncate()",
]


def pg_triggers(table: str, key: str) -> list[str]:
    """Returns the statements (re)creating the capture triggers of one table on PostgreSQL."""
    t = _quote(table)
    return [
        *pg_drop_triggers(table),
        f"CREATE TRIGGER migrator_capture AFTER INSERT OR UPDATE OR DELETE ON {t} "
        f"FOR EACH ROW EXECUTE FUNCTION migrator_capture({_literal(key)})",
        f"CREATE TRIGGER migrator_capture_truncate BEFORE TRUNCATE ON {t} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION migrator_refuse_truncate()",
    ]


def pg_drop_triggers(table: str) -> list[str]:
    """Returns the statements dropping one table's capture triggers on PostgreSQL (if present)."""
    t = _quote(table)
    return [f"DROP TRIGGER IF EXISTS migrator_capture ON {t}",
            f"DROP TRIGGER IF EXISTS migrator_capture_truncate ON {t}"]


PG_ORIGIN_EXPR = f"coalesce(nullif(current_setting('{ORIGIN_SETTING}', true), ''), '{LEGACY_ORIGIN}')"


# -- SQLite --------------------------------------------------------------------
SQLITE_CHANGELOG = [
    f"""CREATE TABLE IF NOT EXISTS {CHANGELOG} (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        table_name TEXT NOT NULL,
        op TEXT NOT NULL CHECK (op IN ('I', 'U', 'D')),
        pk TEXT NOT NULL,
        old_row TEXT,
        new_row TEXT,
        tx_time TEXT NOT NULL,
        origin TEXT NOT NULL DEFAULT '{LEGACY_ORIGIN}'
    )""",
    f"CREATE INDEX IF NOT EXISTS ix_{CHANGELOG}_table_id ON {CHANGELOG} (table_name, id)",
    f"CREATE TABLE IF NOT EXISTS {ORIGIN_TABLE} (origin TEXT NOT NULL)",
]

SQLITE_DROP_CHANGELOG = [f"DROP TABLE IF EXISTS {CHANGELOG}", f"DROP TABLE IF EXISTS {ORIGIN_TABLE}"]

SQLITE_ORIGIN_EXPR = f"coalesce((SELECT origin FROM {ORIGIN_TABLE} LIMIT 1), '{LEGACY_ORIGIN}')"
SQLITE_NOW = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
SQLITE_TRIGGER_SUFFIXES = ("ins", "upd", "key", "del")


def sqlite_row_json(prefix: str, columns: Sequence[str], binary: Iterable[str] = ()) -> str:
    """Returns a json_object(...) expression of a row; `prefix` is NEW, OLD or a table alias."""
    binary = set(binary)
    parts = []
    for c in columns:
        ref = f"{prefix}.{_quote(c)}"
        value = f"hex({ref})" if c in binary else ref
        parts.append(f"{_literal(c)}, {value}")
    return f"json_object({', '.join(parts)})"


def sqlite_trigger_names(table: str) -> list[str]:
    """Returns the names of one table's four capture triggers on SQLite."""
    return [f"migrator_capture_{table}_{s}" for s in SQLITE_TRIGGER_SUFFIXES]


def sqlite_triggers(table: str, key: str, columns: Sequence[str], binary: Iterable[str] = ()) -> list[str]:
    """Returns the statements (re)creating the capture triggers of one table on SQLite."""
    t, k = _quote(table), _quote(key)
    name = dict(zip(SQLITE_TRIGGER_SUFFIXES, (_quote(n) for n in sqlite_trigger_names(table)), strict=True))
    old, new = sqlite_row_json("OLD", columns, binary), sqlite_row_json("NEW", columns, binary)

    def entry(op: str, pk: str, old_row: str, new_row: str) -> str:
        return (f"INSERT INTO {CHANGELOG} (table_name, op, pk, old_row, new_row, tx_time, origin) VALUES "
                f"({_literal(table)}, '{op}', CAST({pk} AS TEXT), {old_row}, {new_row}, {SQLITE_NOW}, "
                f"{SQLITE_ORIGIN_EXPR});")

    return [
        *sqlite_drop_triggers(table),
        f"CREATE TRIGGER {name['ins']} AFTER INSERT ON {t} FOR EACH ROW BEGIN "
        f"{entry('I', f'NEW.{k}', 'NULL', new)} END",
        f"CREATE TRIGGER {name['upd']} AFTER UPDATE ON {t} FOR EACH ROW WHEN OLD.{k} IS NEW.{k} BEGIN "
        f"{entry('U', f'NEW.{k}', old, new)} END",
        f"CREATE TRIGGER {name['key']} AFTER UPDATE ON {t} FOR EACH ROW WHEN OLD.{k} IS NOT NEW.{k} BEGIN "
        f"{entry('D', f'OLD.{k}', old, 'NULL')} {entry('I', f'NEW.{k}', 'NULL', new)} END",
        f"CREATE TRIGGER {name['del']} AFTER DELETE ON {t} FOR EACH ROW BEGIN "
        f"{entry('D', f'OLD.{k}', old, 'NULL')} END",
    ]


def sqlite_drop_triggers(table: str) -> list[str]:
    """Returns the statements dropping one table's capture triggers on SQLite (if present)."""
    return [f"DROP TRIGGER IF EXISTS {_quote(n)}" for n in sqlite_trigger_names(table)]


# -- history: kept when the changelog is dropped -------------------------------
HISTORY = "migrator_capture_history"
HISTORY_ACTIONS = ("installed", "removed", "changelog_created", "changelog_dropped")
_ACTIONS_CHECK = ", ".join(_literal(a) for a in HISTORY_ACTIONS)

PG_HISTORY = [
    f"""CREATE TABLE IF NOT EXISTS {HISTORY} (
        seq BIGSERIAL PRIMARY KEY,
        at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
        action TEXT NOT NULL CHECK (action IN ({_ACTIONS_CHECK})),
        table_name TEXT,
        generation TEXT,
        last_id BIGINT NOT NULL DEFAULT 0
    )""",
]

SQLITE_HISTORY = [
    f"""CREATE TABLE IF NOT EXISTS {HISTORY} (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        action TEXT NOT NULL CHECK (action IN ({_ACTIONS_CHECK})),
        table_name TEXT,
        generation TEXT,
        last_id INTEGER NOT NULL DEFAULT 0
    )""",
]

# the highest id the changelog has handed out (0 when none); and moving it up to a floor
SQLITE_HIGH_ID = f"SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = '{CHANGELOG}'), 0)"
PG_HIGH_ID = f"SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM {CHANGELOG}_id_seq"


def sqlite_id_floor(floor: int) -> list[str]:
    """Returns the statements making the next SQLite changelog id at least `floor` + 1."""
    return [f"DELETE FROM sqlite_sequence WHERE name = '{CHANGELOG}' AND seq < {int(floor)}",
            f"INSERT INTO sqlite_sequence (name, seq) SELECT '{CHANGELOG}', {int(floor)} "
            f"WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = '{CHANGELOG}')"]


def pg_id_floor(floor: int) -> list[str]:
    """Returns the statements making the next PostgreSQL changelog id at least `floor` + 1."""
    return [f"SELECT setval('{CHANGELOG}_id_seq', {int(floor)}) WHERE {int(floor)} > 0 AND "
            f"({PG_HIGH_ID}) < {int(floor)}"]
