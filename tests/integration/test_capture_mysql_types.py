"""MySQL/MariaDB capture writes rows the mapping reads as it reads the table itself: no mapping change per backend.

TINYINT(1), DATETIME with and without fractional seconds, TIMESTAMP written from a session
in another time zone, ON UPDATE CURRENT_TIMESTAMP, utf8mb4 (emoji), binary columns, an
unsigned BIGINT key and a CHAR(36) uuid key; plus how capture install behaves on MySQL
(DDL commits at once): re-running it changes nothing, a changed table gets its triggers
replaced in place, and the migrator's origin marker never outlives its transaction.
"""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import text

from es_app.store import make_engine
from migrator.capture import changelog as capture
from migrator.capture.backends import capture_backend_for
from migrator.capture.backends.mysql import MySQLCapture
from migrator.mapping import ColumnMap, TableMapping

pytestmark = pytest.mark.mysql

GADGETS = TableMapping(
    table="gadgets", key="id", stream_prefix="gadget",
    columns=(ColumnMap("name", "name"), ColumnMap("active", "active", ("bool",))),
    import_event_type="GadgetImported", delete_event_type="GadgetDeleted", column_event_type="GadgetColumnChanged",
    created_at="made_at", updated_at="touched_at")
TOKENS = TableMapping(
    table="tokens", key="uid", stream_prefix="token", columns=(ColumnMap("label", "label"),),
    import_event_type="TokenImported", delete_event_type="TokenDeleted", column_event_type="TokenColumnChanged")

BIG = 2**64 - 2


@pytest.fixture
def legacy(mysql_databases):
    url = mysql_databases.new(schema_head=False)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text(
            "CREATE TABLE gadgets (id BIGINT UNSIGNED NOT NULL PRIMARY KEY, name VARCHAR(100) NOT NULL, "
            "active TINYINT(1) NOT NULL, made_at DATETIME NOT NULL, "
            "touched_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6), "
            "stamped TIMESTAMP(6) NULL, blob_col VARBINARY(16) NULL, note TEXT NULL) "
            "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
        conn.execute(text("CREATE TABLE tokens (uid CHAR(36) NOT NULL PRIMARY KEY, label VARCHAR(50) NOT NULL) "
                          "CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"))
    yield engine
    engine.dispose()
    mysql_databases.drop(url)


def selected(engine, table, key_column, key):
    with engine.connect() as conn:
        return dict(conn.execute(text(f"SELECT * FROM {table} WHERE {key_column} = :k"), {"k": key}).mappings().one())


def test_rows_in_the_changelog_read_as_the_table_reads(legacy):
    capture.install(legacy, [GADGETS, TOKENS])
    with legacy.begin() as conn:
        conn.execute(text("SET time_zone = '+05:00'"))  # a legacy app in another zone: TIMESTAMP is kept in UTC
        conn.execute(text(
            "INSERT INTO gadgets (id, name, active, made_at, stamped, blob_col, note) VALUES "
            "(:id, :name, 1, '2026-01-02 03:04:05', '2026-01-02 08:04:05.250000', :blob, NULL)"),
            {"id": BIG, "name": "Rocket 🚀 Straße", "blob": b"\x00\xffab"})
        conn.execute(text("SET time_zone = '+00:00'"))
    uid = str(uuid.uuid4())
    with legacy.begin() as conn:
        conn.execute(text("UPDATE gadgets SET active = 0, note = 'x' WHERE id = :id"), {"id": BIG})
        conn.execute(text("INSERT INTO tokens (uid, label) VALUES (:u, 'a')"), {"u": uid})
    bound = GADGETS.bind(legacy)
    with legacy.connect() as conn:
        ins, upd = capture.read_changes(conn, "gadgets", 0)
        (tok,) = capture.read_changes(conn, "tokens", 0)
    row = selected(legacy, "gadgets", "id", BIG)
    assert (ins.pk, upd.pk) == (str(BIG), str(BIG))
    assert ins.new_row["stamped"] == "2026-01-02T03:04:05.250000+00:00"  # 08:04:05 at +05:00
    assert ins.new_row["blob_col"] == "00FF6162" and ins.new_row["active"] == 1
    assert ins.new_row["made_at"] == "2026-01-02 03:04:05"
    assert upd.new_row["touched_at"] != upd.old_row["touched_at"]  # ON UPDATE CURRENT_TIMESTAMP is in the row
    assert bound.json_row(upd.new_row) == bound.json_row(row)  # the same data, read either way
    assert bound.state_from_row(upd.new_row) == bound.state_from_row(row)
    assert bound.state_from_row(ins.new_row)["name"] == "Rocket 🚀 Straße"
    assert bound.timestamp_of(ins.new_row, "made_at") == "2026-01-02T03:04:05.000000+00:00"
    assert (tok.pk, tok.new_row) == (uid, {"uid": uid, "label": "a"})
    with legacy.connect() as conn:  # the session hook's row: the same JSON as the trigger's
        expr = capture_backend_for(conn).row_json_expr(conn, "gadgets", bound.table_columns, "t")
        hooked = conn.execute(text(f"SELECT {expr} FROM gadgets t WHERE t.id = :k"), {"k": BIG}).scalar()
    assert json.loads(hooked) == upd.new_row


def test_a_key_changed_only_in_case_is_a_delete_and_an_insert(legacy):
    """The collation takes 'abc' and 'ABC' for one key; the changelog keeps the exact text, as the streams do."""
    capture.install(legacy, [TOKENS])
    with legacy.begin() as conn:
        conn.execute(text("INSERT INTO tokens (uid, label) VALUES ('abc', 'a')"))
        conn.execute(text("UPDATE tokens SET uid = 'ABC' WHERE uid = 'abc'"))
        conn.execute(text("UPDATE tokens SET label = 'b' WHERE uid = 'abc'"))  # found: the collation ignores case
    with legacy.connect() as conn:
        found = [(c.op, c.pk) for c in capture.read_changes(conn, "tokens", 0)]
    assert found == [("I", "abc"), ("D", "abc"), ("I", "ABC"), ("U", "ABC")]


def test_install_again_keeps_the_triggers_and_a_changed_table_gets_them_replaced(legacy):
    capture.install(legacy, [GADGETS])
    backend = capture_backend_for(legacy)
    with legacy.connect() as conn:
        assert backend.trigger_ddl(conn, "gadgets", "id", GADGETS.bind(legacy).table_columns) == []
        created = conn.execute(text("SELECT TRIGGER_NAME, CREATED FROM information_schema.TRIGGERS "
                                    "WHERE TRIGGER_SCHEMA = DATABASE()")).all()
    capture.install(legacy, [GADGETS])
    with legacy.connect() as conn:
        assert conn.execute(text("SELECT TRIGGER_NAME, CREATED FROM information_schema.TRIGGERS "
                                 "WHERE TRIGGER_SCHEMA = DATABASE()")).all() == created
    with legacy.begin() as conn:
        conn.execute(text("ALTER TABLE gadgets ADD COLUMN colour VARCHAR(20) NULL"))
    capture.install(legacy, [GADGETS])
    with legacy.begin() as conn:
        conn.execute(text("INSERT INTO gadgets (id, name, active, made_at, colour) "
                          "VALUES (1, 'g', 1, '2026-01-01 00:00:00', 'red')"))
    with legacy.connect() as conn:
        assert capture.read_changes(conn, "gadgets", 0)[-1].new_row["colour"] == "red"


def test_mysqls_drop_and_create_under_a_table_lock_replaces_the_triggers(legacy):
    """MySQL has no CREATE OR REPLACE TRIGGER: the replacement runs with the table locked (tried here on MariaDB)."""
    capture.install(legacy, [GADGETS])
    with legacy.begin() as conn:
        conn.execute(text("ALTER TABLE gadgets ADD COLUMN colour VARCHAR(20) NULL"))
    backend = MySQLCapture()
    columns = GADGETS.bind(legacy).table_columns
    with legacy.connect() as conn:
        conn.dialect.is_mariadb = False  # this connection's dialect only: the engine is disposed after the test
        try:
            statements = backend.trigger_ddl(conn, "gadgets", "id", columns)
            backend.run(conn, statements)
        finally:
            conn.dialect.is_mariadb = True
    assert statements[0].startswith("LOCK TABLES `gadgets` WRITE") and statements[-1] == "UNLOCK TABLES"
    with legacy.begin() as conn:
        conn.execute(text("INSERT INTO gadgets (id, name, active, made_at, colour) "
                          "VALUES (1, 'g', 1, '2026-01-01 00:00:00', 'blue')"))
    with legacy.connect() as conn:
        assert capture.read_changes(conn, "gadgets", 0)[-1].new_row["colour"] == "blue"
        assert backend.trigger_ddl(conn, "gadgets", "id", columns) == []


def test_the_origin_marker_is_gone_after_commit_rollback_and_for_other_connections(legacy):
    capture.install(legacy, [TOKENS])
    with legacy.begin() as conn, capture.migrator_writes(conn):
        conn.execute(text("INSERT INTO tokens (uid, label) VALUES ('m1', 'mine')"))
        with legacy.begin() as other:  # another connection, meanwhile: the legacy app's
            other.execute(text("INSERT INTO tokens (uid, label) VALUES ('l1', 'theirs')"))
    with pytest.raises(RuntimeError), legacy.begin() as conn:
        capture.capture_backend_for(conn).set_origin(conn, "crashing")
        raise RuntimeError("the migrator fails inside its transaction")
    with legacy.begin() as conn:
        conn.execute(text("INSERT INTO tokens (uid, label) VALUES ('l2', 'legacy again')"))
        assert conn.execute(text("SELECT count(*) FROM migrator_origin")).scalar() == 0
    with legacy.connect() as conn:
        found = {c.pk: c.origin for c in capture.read_changes(conn, "tokens", 0)}
    assert found == {"m1": "migrator", "l1": "legacy", "l2": "legacy"}


def test_truncate_bypasses_the_triggers_on_mysql(legacy):
    """Documented limit (docs/architecture.md): no trigger fires for TRUNCATE, and none can refuse it."""
    capture.install(legacy, [TOKENS])
    with legacy.begin() as conn:
        conn.execute(text("INSERT INTO tokens (uid, label) VALUES ('t1', 'a')"))
        conn.execute(text("TRUNCATE TABLE tokens"))
    with legacy.connect() as conn:
        assert [c.op for c in capture.read_changes(conn, "tokens", 0)] == ["I"]


def test_a_lost_id_counter_is_one_clear_error_and_install_restores_it_above_the_ids_given(legacy):
    capture.install(legacy, [TOKENS])
    with legacy.begin() as conn:
        conn.execute(text("INSERT INTO tokens (uid, label) VALUES ('a', 'a'), ('b', 'b')"))
    with legacy.connect() as conn:
        assert [c.id for c in capture.read_changes(conn, "tokens", 0)] == [1, 2]
    with legacy.begin() as conn:
        conn.execute(text("DROP TABLE migrator_changelog_id_seq"))
        conn.execute(text("INSERT INTO tokens (uid, label) VALUES ('c', 'c')"))
    with pytest.raises(capture.CaptureError, match="id counter .* is missing: run `migrator capture install`"):
        capture.number_committed(legacy)
    capture.install(legacy, [TOKENS])
    with legacy.connect() as conn:
        assert [(c.pk, c.id) for c in capture.read_changes(conn, "tokens", 0)] == [("a", 1), ("b", 2), ("c", 3)]
