"""`migrator seed` from the command line: success on both backends, one-line errors otherwise."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from legacy_app.db import Database
from legacy_app.models import User
from migrator.cli import main
from tests.conftest import PG_URL, require_postgres


def _one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    assert err[0].startswith("error: ")
    return err[0]


def test_seed_cli_adds_users(new_database_url, capsys):
    url = new_database_url("legacy")
    assert main(["seed", "--users", "250", "--chunk-size", "100", "--workers", "0", "--seed", "1",
                 "--legacy-url", url]) == 0
    out = capsys.readouterr().out
    assert "added 250 users" in out and "250 users in" in out
    db = Database.connect(url)
    try:
        with db.read_session() as s:
            assert s.scalar(select(func.count(func.distinct(User.email)))) == 250
    finally:
        db.dispose()


def test_missing_sqlite_database_is_one_line_and_creates_nothing(tmp_path, capsys):
    path = tmp_path / "nowhere" / "legacy.db"
    assert main(["seed", "--users", "5", "--legacy-url", f"sqlite:///{path}"]) == 1
    line = _one_error_line(capsys)
    assert "does not exist" in line and "migrator init" in line
    assert not path.exists() and not path.parent.exists()


def test_uninitialised_schema_is_one_line(tmp_path, capsys):
    path = tmp_path / "empty.db"
    path.touch()
    assert main(["--legacy-url", f"sqlite:///{path}", "seed", "--users", "5"]) == 1
    assert "no `users` table: run `migrator init`" in _one_error_line(capsys)


@pytest.mark.postgres
def test_postgres_errors_are_one_line(capsys):
    require_postgres()
    base = PG_URL.rpartition("/")[0]
    assert main(["seed", "--users", "5", "--legacy-url", f"{base}/no_such_db_for_seed"]) == 1
    assert "cannot open the legacy database" in _one_error_line(capsys)
    # the server's maintenance database has no legacy schema (and the seed must not create one)
    assert main(["seed", "--users", "5", "--legacy-url", f"{base}/postgres"]) == 1
    assert "no `users` table: run `migrator init`" in _one_error_line(capsys)


@pytest.mark.parametrize("args, message", [
    (["--users", "0"], "--users must be at least 1"),
    (["--users", "-3"], "--users must be at least 1"),
    (["--users", "5", "--chunk-size", "0"], "--chunk-size must be at least 1"),
    (["--users", "5", "--workers", "-1"], "--workers must be 0 or more"),
])
def test_bad_numbers_are_one_line(tmp_path, capsys, args, message):
    assert main(["seed", *args, "--legacy-url", f"sqlite:///{tmp_path / 'x.db'}"]) == 2
    assert message in _one_error_line(capsys)
    assert not (tmp_path / "x.db").exists()
