"""`migrator decommission` from a MySQL/MariaDB legacy database (event store: SQLite beside it).

MySQL's DDL commits implicitly, so the drop cannot be one transaction there: the tables go first (their
capture triggers with them), then the changelog, then the history. A failing first DROP TABLE drops
nothing; a failure after it says what was dropped, never leaves a table without its triggers, and
`migrator capture remove --drop-changelog` finishes the rest.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import inspect, text

from es_app.bootstrap import engine_for
from es_app.store import EventStore, make_engine
from migrator import schema
from migrator.capture import changelog as capture
from migrator.capture import history
from migrator.capture.backends import mysql as mysql_capture
from migrator.cli import main
from migrator.decommission import drop as drop_module
from migrator.decommission import read_rows, restore
from migrator.phases import load

T = datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)

pytestmark = pytest.mark.mysql


@pytest.fixture
def urls(mysql_databases, tmp_path, monkeypatch):
    """(legacy URL on MariaDB, event store URL in an SQLite file), both at schema head."""
    from es_app.settings import get_settings

    monkeypatch.setenv("WRITES_SWITCHED_MIN_S", "0")
    get_settings.cache_clear()
    legacy = mysql_databases.new()
    es = f"sqlite:///{tmp_path / 'es.db'}"
    engine = make_engine(es)
    schema.upgrade_all({"es": engine})
    engine.dispose()
    yield legacy, es
    from es_app.bootstrap import dispose_engines

    dispose_engines()
    get_settings.cache_clear()
    mysql_databases.drop(legacy)


def cli(capsys, urls: tuple[str, str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([*argv, "--es-url", urls[1], "--legacy-url", urls[0]])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def step(capsys, urls: tuple[str, str], *argv: str) -> str:
    code, out, err = cli(capsys, urls, *argv)
    assert code == 0, err
    return out


def migrated(capsys, urls: tuple[str, str], n: int = 25) -> None:
    """A migration walked (forced) to writes_switched from MariaDB, with a clean --full verify behind it."""
    step(capsys, urls, "capture", "install")
    with engine_for(urls[0]).begin() as conn:  # captured: the relay has changes to deliver too
        conn.execute(text("INSERT INTO users (id, email, full_name, is_active, phone, created_at, updated_at) "
                          "VALUES (:id, :email, :name, TRUE, :phone, :t, :t)"),
                     [{"id": i, "email": f"u{i}@example.org", "name": f"User {i} é 😀", "t": T.replace(tzinfo=None),
                       "phone": None if i % 2 else f"+41 {i}"} for i in range(1, n + 1)])
    step(capsys, urls, "relay")
    step(capsys, urls, "backfill")
    step(capsys, urls, "projections", "run")
    step(capsys, urls, "verify", "--full", "--wait", "1", "--format", "json")
    step(capsys, urls, "advance", "--to", "writes_switched", "--force", "--reason", "drill")
    step(capsys, urls, "projections", "run")


def legacy_state(legacy_url: str) -> tuple[bool, bool, bool, list[str]]:
    """Returns (users table, any capture trigger on it, changelog) present, and the history's actions."""
    engine = engine_for(legacy_url)
    with engine.connect() as conn:
        triggers = conn.execute(text("SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = "
                                     "DATABASE() AND EVENT_OBJECT_TABLE = 'users'")).scalar()
        actions = list(conn.execute(text(f"SELECT action FROM {history.HISTORY} ORDER BY seq")).scalars())
        return inspect(conn).has_table("users"), bool(triggers), capture.changelog_exists(conn), actions


def rows(legacy_url: str) -> list[tuple]:
    with engine_for(legacy_url).connect() as conn:
        return [tuple(r) for r in conn.execute(text("SELECT * FROM users ORDER BY id"))]


def test_decommission_archives_and_drops_table_triggers_and_changelog(capsys, urls, tmp_path):
    migrated(capsys, urls)
    before = rows(urls[0])
    archive = tmp_path / "archive"
    out = step(capsys, urls, "decommission", "--archive", str(archive), "--confirm", "--actor", "ana")
    assert out.splitlines()[-1] == "migration users: writes_switched → decommissioned"
    table, triggers, changelog, actions = legacy_state(urls[0])
    assert (table, triggers, changelog) == (False, False, False)
    assert actions[-2:] == ["removed", "changelog_dropped"]
    assert load(EventStore(engine_for(urls[1]))).phase == "decommissioned"
    archived = list(read_rows(archive, "users"))
    assert len(archived) == 25 and archived[0]["full_name"] == "User 1 é 😀"
    assert archived[1]["created_at"].startswith("2026-03-04")

    assert restore(engine_for(urls[0]), archive) == {"users": 25}  # docs/decommission.md's recipe, on MySQL
    assert rows(urls[0]) == before


def test_a_failing_first_drop_drops_nothing(capsys, urls, tmp_path, monkeypatch):
    migrated(capsys, urls)
    before = rows(urls[0])
    monkeypatch.setattr(drop_module, "DropTable", lambda table: text("DROP TABLE no_such_table_to_drop"))
    code, out, err = cli(capsys, urls, "decommission", "--archive", str(tmp_path / "archive"), "--confirm")
    assert code == 1 and not out and err.startswith("error: the drop failed and was rolled back: "), err
    assert legacy_state(urls[0])[:3] == (True, True, True) and rows(urls[0]) == before
    assert legacy_state(urls[0])[3][-1] == "installed"  # no removal recorded for what was not removed
    assert load(EventStore(engine_for(urls[1]))).phase == "writes_switched"


def test_a_failure_after_the_table_is_dropped_says_what_was_and_capture_remove_finishes(capsys, urls, tmp_path,
                                                                                        monkeypatch):
    migrated(capsys, urls)
    real_run = mysql_capture.MySQLCapture.run

    def changelog_drop_fails(self, conn, statements):
        if any("migrator_changelog" in s for s in statements):
            statements = ["DROP TABLE no_such_changelog_to_drop"]
        return real_run(self, conn, statements)

    monkeypatch.setattr(mysql_capture.MySQLCapture, "run", changelog_drop_fails)
    code, _, err = cli(capsys, urls, "decommission", "--archive", str(tmp_path / "archive"), "--confirm")
    assert code == 1 and len(err.splitlines()) == 1
    assert err.startswith("error: the drop failed after dropping the table users and its triggers "), err
    assert "run `migrator capture remove --drop-changelog`" in err
    table, triggers, changelog, _ = legacy_state(urls[0])
    assert (table, triggers, changelog) == (False, False, True)  # never a table left without its triggers
    assert load(EventStore(engine_for(urls[1]))).phase == "writes_switched"

    monkeypatch.undo()
    step(capsys, urls, "capture", "remove", "--drop-changelog")
    assert legacy_state(urls[0])[:3] == (False, False, False)
    assert legacy_state(urls[0])[3][-2:] == ["removed", "changelog_dropped"]  # the history has it all
