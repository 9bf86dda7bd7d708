"""`capture_backend_for`: one capture backend class per database, picked by the engine's dialect name."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from sqlalchemy import create_engine

from migrator.capture import CaptureError, capture_backend_for
from migrator.capture.backends import UnsupportedCaptureBackend
from migrator.capture.backends.mysql import MySQLCapture, trigger_names
from migrator.capture.backends.postgres import PostgresCapture
from migrator.capture.backends.sqlite import SQLiteCapture


def test_sqlite_engine_gets_the_sqlite_backend() -> None:
    backend = capture_backend_for(create_engine("sqlite://"))
    assert isinstance(backend, SQLiteCapture)
    assert backend.name == "sqlite"


def test_postgresql_engine_gets_the_postgres_backend() -> None:
    engine = create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/test")  # never connects
    backend = capture_backend_for(engine)
    assert isinstance(backend, PostgresCapture)
    assert backend.name == "postgresql"
    assert capture_backend_for(engine) is backend  # one instance per backend


def test_mysql_engine_gets_the_mysql_backend() -> None:
    backend = capture_backend_for(create_engine("mysql+pymysql://root@127.0.0.1:3306/test"))  # never connects
    assert isinstance(backend, MySQLCapture)
    assert backend.name == "mysql"


def test_unsupported_backend_is_one_clear_capture_error() -> None:
    oracle = SimpleNamespace(dialect=SimpleNamespace(name="oracle"))
    with pytest.raises(UnsupportedCaptureBackend) as caught:
        capture_backend_for(oracle)  # type: ignore[arg-type]
    assert str(caught.value) == "capture supports sqlite, postgresql and mysql, not oracle"
    assert isinstance(caught.value, CaptureError)  # `migrator relay` / `backfill` print it as one line


def test_mysql_creates_the_id_counter_and_its_row_before_the_changelog() -> None:
    # MySQL's DDL commits statement by statement: a reader finding the changelog must find its counter's row
    ddl = MySQLCapture().changelog_ddl()
    changelog = next(i for i, s in enumerate(ddl) if "CREATE TABLE IF NOT EXISTS migrator_changelog (" in s)
    row = next(i for i, s in enumerate(ddl) if s.startswith("INSERT INTO migrator_changelog_id_seq"))
    assert row < changelog


def test_each_backend_names_the_same_tables_and_its_own_triggers() -> None:
    sqlite, postgres, mysql = SQLiteCapture(), PostgresCapture(), MySQLCapture()
    for backend in (sqlite, postgres, mysql):
        assert any("CREATE TABLE IF NOT EXISTS migrator_changelog (" in s for s in backend.changelog_ddl())
        assert "CREATE TABLE IF NOT EXISTS migrator_capture_history (" in backend.history_ddl()[0]
        assert backend.drop_changelog_ddl()[0] == "DROP TABLE IF EXISTS migrator_changelog"
    assert sqlite.drop_trigger_ddl("users") == [f'DROP TRIGGER IF EXISTS "migrator_capture_users_{s}"'
                                                 for s in ("ins", "upd", "key", "del")]
    assert postgres.drop_trigger_ddl("users") == ['DROP TRIGGER IF EXISTS migrator_capture ON "users"',
                                                   'DROP TRIGGER IF EXISTS migrator_capture_truncate ON "users"']
    assert mysql.drop_trigger_ddl("users") == [f"DROP TRIGGER IF EXISTS `migrator_capture_users_{s}`"
                                                for s in ("ins", "upd", "del")]


def test_mysql_trigger_names_stay_within_64_characters_and_apart() -> None:
    long_a, long_b = "t" * 64, "t" * 63 + "u"
    names = trigger_names(long_a) + trigger_names(long_b)
    assert all(len(n) <= 64 for n in names) and len(set(names)) == 6


def test_mysql_numbering_gives_ids_in_entry_order_by_primary_key_only() -> None:
    from migrator.capture.backends.mysql import RUNS_MAX, _numbering

    assert _numbering([5, 6, 7, 10, 11], 100) == [
        "UPDATE migrator_changelog SET id = COALESCE(id, entry + 96) WHERE entry IN (5, 6, 7)",  # 101..103
        "UPDATE migrator_changelog SET id = COALESCE(id, entry + 94) WHERE entry IN (10, 11)"]  # 104, 105
    scattered = list(range(1, 4 * (RUNS_MAX + 1), 4))  # more runs than RUNS_MAX: one CASE
    (case,) = _numbering(scattered, 0)
    assert case.startswith("UPDATE migrator_changelog SET id = COALESCE(id, CASE entry WHEN 1 THEN 1 WHEN 5 THEN 2 ")
    assert case.endswith(f"WHERE entry IN ({', '.join(map(str, scattered))})") and " id IS NULL" not in case
