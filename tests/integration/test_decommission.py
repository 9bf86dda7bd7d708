"""`migrator decommission` on both backends: the guards refuse with every unmet one listed, a dry run prints
its steps and changes nothing, a confirmed run archives (manifest and file agree, rows as read before) then
drops triggers, changelog and table and records the step; a failed archive or drop leaves everything."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect, text

from es_app.bootstrap import engine_for
from es_app.store import EventStore
from migrator.capture import changelog as capture
from migrator.cli import main
from migrator.decommission import MANIFEST, json_safe, read_rows, restore
from migrator.decommission import drop as drop_module
from migrator.decommission import run as run_module
from migrator.mapping import USERS
from migrator.phases import load, stream_id
from migrator.verify.runs import store as store_verify_run

T = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


@pytest.fixture
def url(new_database_url):
    url = new_database_url("decom")  # the legacy tables and the event store in one database
    yield url
    engine_for(url).dispose()


@pytest.fixture
def settings_env(monkeypatch):
    """Sets environment variables for the settings the CLI reads (its cached settings forgotten around it)."""
    from es_app.settings import get_settings

    get_settings.cache_clear()
    yield monkeypatch.setenv
    monkeypatch.undo()
    get_settings.cache_clear()


def cli(capsys, url: str, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([*argv, "--es-url", url, "--legacy-url", url])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def add_users(url: str, ids: range) -> None:
    with engine_for(url).begin() as conn:
        conn.execute(text("INSERT INTO users (id, email, full_name, is_active, phone, created_at, updated_at) "
                          "VALUES (:id, :email, :name, TRUE, :phone, :t, :t)"),
                     [{"id": i, "email": f"u{i}@example.org", "name": f"User {i} \u00e9", "t": T,
                       "phone": None if i % 2 else f"+41 {i}"} for i in ids])


def step(capsys, url: str, *argv: str) -> None:
    code, _, err = cli(capsys, url, *argv)
    assert code == 0, err


def verify_run(url: str, *, full: bool, clean: bool, age: timedelta = timedelta(minutes=1)) -> int:
    finished = datetime.now(UTC) - age
    return store_verify_run(engine_for(url), {"started_at": (finished - timedelta(seconds=3)).isoformat(),
                                              "finished_at": finished.isoformat(), "clean": clean,
                                              "tables": [{"table": "users"}],
                                              "options": {"tables": ["users"], "full": full}})


def migrated(capsys, url: str, n: int = 25) -> int:
    """Returns the id of the clean `--full` verify run of a migration walked (forced) to writes_switched, with
    capture installed, the relay and the backfill done and the projections caught up."""
    add_users(url, range(1, n + 1))
    step(capsys, url, "capture", "install")
    step(capsys, url, "relay")
    step(capsys, url, "backfill")
    step(capsys, url, "projections", "run")
    code, out, err = cli(capsys, url, "verify", "--full", "--wait", "1", "--format", "json")
    assert code == 0, err
    step(capsys, url, "advance", "--to", "writes_switched", "--force", "--reason", "drill")
    step(capsys, url, "projections", "run")  # past the migration's own events in the feed
    return int(json.loads(out)["id"])


def legacy_state(url: str) -> tuple[bool, bool, bool]:
    """Returns (users table, capture triggers, changelog) present."""
    engine = engine_for(url)
    st = capture.status(engine, [USERS])
    return inspect(engine).has_table("users"), st.tables[0].installed, st.changelog


def table_rows(url: str) -> list[dict]:
    """Returns the users rows as the driver reads them (JSON-safe), in id order."""
    with engine_for(url).connect() as conn:
        return [{k: json_safe(v) for k, v in row._mapping.items()}
                for row in conn.execute(text("SELECT * FROM users ORDER BY id"))]


def same_values(row: dict) -> dict:
    """Returns a users row with its timestamps as UTC datetimes and its flag as a bool: what SQLite's text and
    0/1 mean, so a restored row compares with the original on either backend."""
    def when(v):
        t = datetime.fromisoformat(v)
        return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
    return {**row, "created_at": when(row["created_at"]), "updated_at": when(row["updated_at"]),
            "is_active": bool(row["is_active"])}


def test_the_guards_refuse_with_every_unmet_one_listed(url, capsys, tmp_path):
    step(capsys, url, "capture", "install")
    add_users(url, range(1, 6))  # five changes wait for the relay
    step(capsys, url, "advance", "--to", "writes_switched", "--force", "--reason", "drill")
    verify_run(url, full=False, clean=True)  # a sampled verify does not count
    archive = tmp_path / "archive"
    code, out, err = cli(capsys, url, "decommission", "--archive", str(archive), "--confirm", "--actor", "ana")
    assert code == 1 and not out
    lines = err.splitlines()
    assert lines[0] == "error: cannot decommission: full_verify_clean_recent: no --full verify run: run " \
                       "`migrator verify --full`"
    assert lines[1] == "error: cannot decommission: relay_backlog_empty: 5 changes wait for the relay"
    assert lines[2].startswith("error: cannot decommission: projections_caught_up: the projections lag ")
    assert lines[3].startswith("error: cannot decommission: writes_switched_for: reads and writes new for ")
    assert lines[3].endswith("(at least 3600s)") and len(lines) == 4
    assert not archive.exists() and legacy_state(url) == (True, True, True)
    st = load(EventStore(engine_for(url)))
    assert st.phase == "writes_switched"
    refused = [h.data["name"] for h in st.history if h.type == "GuardFailed" and h.data["phase"] == "decommissioned"]
    assert refused == ["full_verify_clean_recent", "relay_backlog_empty", "projections_caught_up",
                       "writes_switched_for"]

    verify_run(url, full=True, clean=True)
    dirty = verify_run(url, full=True, clean=False)  # a newer dirty full verify makes it unmet again
    code, _, err = cli(capsys, url, "decommission", "--archive", str(archive))
    assert code == 1 and f"full_verify_clean_recent: the latest --full verify run {dirty} is not clean" in err
    verify_run(url, full=True, clean=True, age=timedelta(hours=2))
    code, _, err = cli(capsys, url, "decommission", "--archive", str(archive))
    assert code == 1 and re.search(r"is 7,20\ds old \(at most 3600s\)", err)  # the run's own seconds count too


def test_advance_points_to_decommission_and_still_lists_the_guards(url, capsys):
    step(capsys, url, "advance", "--to", "writes_switched", "--force", "--reason", "drill")
    for argv in (["advance"], ["advance", "--to", "decommissioned", "--force", "--reason", "drill"]):
        code, out, err = cli(capsys, url, *argv)
        lines = err.splitlines()
        assert code == 1 and not out
        assert lines[0].startswith("error: cannot advance to decommissioned: full_verify_clean_recent: ")
        assert lines[-1] == ("error: the migration users reaches decommissioned only through `migrator decommission "
                             "--archive DIR` (it archives the legacy table before dropping it); see `migrator plan`")
    assert load(EventStore(engine_for(url))).phase == "writes_switched"


def test_a_dry_run_prints_every_step_and_changes_nothing(url, capsys, tmp_path, settings_env):
    settings_env("WRITES_SWITCHED_MIN_S", "0")
    run_id = migrated(capsys, url)
    archive = tmp_path / "archive"
    version = load(EventStore(engine_for(url))).version
    for extra in ([], ["--dry-run"], ["--dry-run", "--confirm"]):
        code, out, err = cli(capsys, url, "decommission", "--archive", str(archive), *extra)
        lines = out.splitlines()
        assert code == 1 and not err
        assert lines[0] == "decommission of the migration users would:"
        assert lines[1] == f"  1. archive the legacy table users (25 rows now, in id order) to {archive}/users.jsonl.gz"
        assert f"resting on --full verify run {run_id}" in lines[2]
        table = next(i for i, line in enumerate(lines) if "drop the legacy table users (its capture triggers go "
                                                               "with it): DROP TABLE users" in line)
        triggers = next(i for i, line in enumerate(lines) if "drop the capture triggers of users: DROP TRIGGER" in line)
        assert table < triggers  # the table first: never a table without its triggers (MySQL's DDL commits)
        changelog = next(i for i, line in enumerate(lines) if "drop the changelog: DROP TABLE IF EXISTS "
                                                                   "migrator_changelog" in line)
        assert triggers < changelog < len(lines) - 2 and "drop the changelog: " in lines[-3]
        assert lines[-2].endswith("record writes_switched → decommissioned in the stream migration-users")
        assert lines[-1] == "nothing was done: run again with --confirm to do it"
    assert not archive.exists() and legacy_state(url) == (True, True, True)
    assert load(EventStore(engine_for(url))).version == version


def test_confirm_archives_then_drops_and_records_the_step(url, capsys, tmp_path, settings_env):
    settings_env("WRITES_SWITCHED_MIN_S", "0")
    run_id = migrated(capsys, url)
    before = table_rows(url)
    archive = tmp_path / "nested" / "archive"
    code, out, err = cli(capsys, url, "decommission", "--archive", str(archive), "--confirm", "--actor", "ana")
    assert code == 0, err
    assert out.splitlines()[-1] == "migration users: writes_switched → decommissioned"

    manifest = json.loads((archive / MANIFEST).read_text())
    data = (archive / "users.jsonl.gz").read_bytes()
    assert manifest["migration"] == "users" and manifest["verify_run"] == run_id and manifest["created_at"]
    [entry] = manifest["tables"]
    assert (entry["table"], entry["file"], entry["rows"], entry["key"]) == ("users", "users.jsonl.gz", 25, "id")
    assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert [c["name"] for c in entry["columns"]] == list(before[0])
    archived = list(read_rows(archive, "users"))
    assert archived == before and len(archived) == entry["rows"]
    assert [list(r) for r in archived] == [list(r) for r in before]  # keys in column order
    assert sorted(p.name for p in archive.iterdir()) == [MANIFEST, "users.jsonl.gz"]  # no temporary file left

    assert legacy_state(url) == (False, False, False)
    store = EventStore(engine_for(url))
    st = load(store)
    assert (st.phase, st.reads, st.writes) == ("decommissioned", "new", "new")
    [event] = [e for e in store.read_stream(stream_id("users")) if e.type == "LegacyDecommissioned"]
    assert event.metadata["actor"] == "ana"
    assert st.history[-2].summary() == f"legacy users archived to {archive.absolute()} (25 rows) and dropped"
    assert event.data["archive"] == str(archive.absolute()) and event.data["verify_run"] == run_id
    assert event.data["tables"] == [{"table": "users", "file": "users.jsonl.gz", "rows": 25,
                                     "sha256": entry["sha256"]}]
    assert event.data["manifest_sha256"] == hashlib.sha256((archive / MANIFEST).read_bytes()).hexdigest()
    code, _, err = cli(capsys, url, "rollback")
    assert code == 1 and "there is no rolling back" in err

    assert restore(engine_for(url), archive) == {"users": 25}  # the recipe of docs/decommission.md
    assert [same_values(r) for r in table_rows(url)] == [same_values(r) for r in before]
    code, _, err = cli(capsys, url, "decommission", "--archive", str(tmp_path / "again"), "--confirm")
    assert code == 1 and err.strip() == "error: cannot decommission: the migration users is already decommissioned"


def test_an_archive_directory_with_a_manifest_is_refused(url, capsys, tmp_path, settings_env):
    settings_env("WRITES_SWITCHED_MIN_S", "0")
    migrated(capsys, url)
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / MANIFEST).write_text('{"keep": "me"}')
    code, out, err = cli(capsys, url, "decommission", "--archive", str(archive), "--confirm")
    assert code == 1 and not out and len(err.splitlines()) == 1
    assert f"{archive / MANIFEST} already exists" in err and "never overwritten" in err
    assert (archive / MANIFEST).read_text() == '{"keep": "me"}' and legacy_state(url) == (True, True, True)


def test_an_archive_that_cannot_be_written_drops_nothing(url, capsys, tmp_path, settings_env, monkeypatch):
    settings_env("WRITES_SWITCHED_MIN_S", "0")
    migrated(capsys, url)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, out, err = cli(capsys, url, "decommission", "--archive", str(blocker / "archive"), "--confirm")
    assert code == 1 and not out and len(err.splitlines()) == 1 and "cannot be written" in err

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device", "manifest.json")

    monkeypatch.setattr(run_module, "write_manifest", disk_full)  # the table file is written, the manifest fails
    archive = tmp_path / "archive"
    code, out, err = cli(capsys, url, "decommission", "--archive", str(archive), "--confirm")
    assert code == 1 and not out
    assert err.strip() == ("error: cannot write the archive in manifest.json: No space left on device; nothing was "
                           "dropped")
    assert not archive.exists()  # this run's files are gone with the directory it made
    assert legacy_state(url) == (True, True, True)
    assert load(EventStore(engine_for(url))).phase == "writes_switched"


def test_a_failed_drop_leaves_table_triggers_and_changelog(url, capsys, tmp_path, settings_env, monkeypatch):
    settings_env("WRITES_SWITCHED_MIN_S", "0")
    migrated(capsys, url)
    before = table_rows(url)

    def failing_drop(table):
        return text("DROP TABLE no_such_table_to_drop")

    monkeypatch.setattr(drop_module, "DropTable", failing_drop)  # the last statement of the drop fails
    archive = tmp_path / "archive"
    code, out, err = cli(capsys, url, "decommission", "--archive", str(archive), "--confirm")
    assert code == 1 and not out and len(err.splitlines()) == 1
    assert err.startswith("error: the drop failed and was rolled back: ")
    assert legacy_state(url) == (True, True, True) and table_rows(url) == before
    assert load(EventStore(engine_for(url))).phase == "writes_switched"
    assert list(read_rows(archive, "users")) == before  # the archive stays: it is complete and checked


def test_a_table_that_changed_since_its_archive_is_not_dropped(url, capsys, tmp_path, settings_env, monkeypatch):
    settings_env("WRITES_SWITCHED_MIN_S", "0")
    migrated(capsys, url)
    real_drop = run_module.drop

    def write_then_drop(engine, archived_rows):
        add_users(url, range(100, 101))
        return real_drop(engine, archived_rows)

    monkeypatch.setattr(run_module, "drop", write_then_drop)
    code, _, err = cli(capsys, url, "decommission", "--archive", str(tmp_path / "archive"), "--confirm")
    assert code == 1 and err.strip() == ("error: the legacy table users holds 26 rows, its archive 25: it changed "
                                         "since it was archived; archive again into a new directory")
    assert legacy_state(url) == (True, True, True)


@pytest.mark.parametrize("argv", [["decommission"], ["decommission", "--archive"],
                                  ["decommission", "--archive", "x", "--bogus"],
                                  ["decommission", "--archive", " ", "--confirm"]])
def test_bad_arguments_are_one_line_and_exit_2(argv, capsys, tmp_path):
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2 and not out and len(err.splitlines()) == 1 and err.startswith("error: ")


def test_decommission_answers_help(capsys):
    assert main(["decommission", "--help"]) == 0
    out = capsys.readouterr().out
    assert all(flag in out for flag in ("--archive", "--dry-run", "--confirm", "--actor", "--es-url"))


def test_another_captured_table_keeps_the_changelog_and_its_triggers(new_database_url, tmp_path):
    from es_app.store import make_engine
    from migrator.capture import history
    from migrator.decommission.archive import export_table
    from tests.accounts import accounts_mapping, create_accounts

    engine = make_engine(new_database_url("two"))
    create_accounts(engine)
    capture.install(engine, [accounts_mapping(), USERS])
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO accounts (code, owner_email, title, enabled, balance, secret, opened_at, "
                          "touched_at) VALUES (:c, 'o@example.org', 'T', TRUE, :b, NULL, :t, :t)"),
                     [{"c": "b-2", "b": "10.50", "t": T}, {"c": "a-1", "b": None, "t": T}])
    add_users(engine.url.render_as_string(hide_password=False), range(1, 3))
    entry = export_table(engine, "accounts", "code", tmp_path)
    rows = list(read_rows(tmp_path, "accounts"))
    assert entry.rows == 2 and [r["code"] for r in rows] == ["a-1", "b-2"]  # in key order
    assert float(rows[1]["balance"]) == 10.5 and rows[1]["secret"] is None  # SQLite: a REAL; PostgreSQL: exact
    assert datetime.fromisoformat(rows[1]["opened_at"]) == T

    done = drop_module.drop(engine, {"accounts": entry.rows})
    assert done.keep_changelog == ("users",)
    assert done.changelog == ["DELETE FROM migrator_changelog WHERE table_name IN ('accounts')"]
    st = capture.status(engine, [USERS])
    assert st.changelog and st.tables[0].installed and st.tables[0].changes == 2
    with engine.connect() as conn:
        assert not inspect(conn).has_table("accounts")
        assert conn.execute(text("SELECT count(*) FROM migrator_changelog WHERE table_name = 'accounts'")).scalar() == 0
        assert history.table_state(conn, "accounts") == "removed"
    engine.dispose()


def test_a_migration_changed_while_archiving_drops_nothing(url, capsys, tmp_path, settings_env, monkeypatch):
    from migrator.phases import pause

    settings_env("WRITES_SWITCHED_MIN_S", "0")
    migrated(capsys, url)
    real_export = run_module.export_table

    def export_while_paused(engine, table, key, directory):
        store = EventStore(engine_for(url))
        pause(store, load(store), "someone else", "bo")
        return real_export(engine, table, key, directory)

    monkeypatch.setattr(run_module, "export_table", export_while_paused)
    archive = tmp_path / "archive"
    code, _, err = cli(capsys, url, "decommission", "--archive", str(archive), "--confirm")
    assert code == 1 and err.strip() == (f"error: the migration users changed while archiving: nothing was dropped "
                                         f"(the archive stays in {archive}); see `migrator status`")
    assert legacy_state(url) == (True, True, True) and (archive / MANIFEST).exists()
    assert load(EventStore(engine_for(url))).phase == "writes_switched"
