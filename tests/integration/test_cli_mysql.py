"""`migrator init`, `seed` and `status` with a MySQL/MariaDB legacy database (`mysql://` and `mariadb://` URLs),
the event store in an SQLite file beside it; errors are one line."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, inspect, select

from es_app.bootstrap import dispose_engines
from legacy_app.db import Database
from legacy_app.models import User
from migrator.cli import main
from tests.conftest import MYSQL_URL

pytestmark = pytest.mark.mysql


@pytest.fixture
def empty(mysql_databases):
    """A fresh empty MariaDB database, its URL written `mysql://` (no driver named)."""
    url = mysql_databases.new(schema_head=False)
    yield url.replace("mysql+pymysql://", "mysql://", 1)
    dispose_engines()
    mysql_databases.drop(url)


def _one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    assert err[0].startswith("error: ")
    return err[0]


def test_init_seed_status_on_mariadb(empty, tmp_path, capsys):
    es = f"sqlite:///{tmp_path / 'es.db'}"
    assert main(["init", "--legacy-url", empty, "--es-url", es]) == 0
    assert "legacy_0001_users" in capsys.readouterr().out
    assert main(["init", "--legacy-url", empty.replace("mysql://", "mariadb://", 1), "--es-url", es]) == 0  # again
    for seed, workers in ((1, "0"), (2, "2")):  # appends; emails unique also to the case-insensitive index
        assert main(["seed", "--users", "1500", "--chunk-size", "400", "--workers", workers, "--seed", str(seed),
                     "--legacy-url", empty]) == 0
    assert "3,000 users in" in capsys.readouterr().out
    db = Database.connect(empty)
    try:
        with db.read_session() as s:
            assert s.scalar(select(func.count(func.distinct(func.lower(User.email))))) == 3000
            stamps = s.execute(select(User.created_at, User.updated_at).limit(50)).all()
        assert all(c.utcoffset().total_seconds() == 0 and c <= u for c, u in stamps)
        with db.engine.connect() as conn:
            kinds = {c["name"]: c["type"] for c in inspect(conn).get_columns("users")}
        assert getattr(kinds["created_at"], "fsp", None) == 6 and str(kinds["is_active"]).startswith("TINYINT")
    finally:
        db.dispose()
    capsys.readouterr()
    assert main(["status", "--json", "--legacy-url", empty, "--es-url", es]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["capture"]["backend"] == "mysql" and doc["capture"]["installed"] is False
    assert doc["phase"] == "legacy"


def test_mariadb_errors_are_one_line(empty, capsys):
    base = MYSQL_URL.rpartition("/")[0].replace("mysql+pymysql://", "mysql://", 1)
    assert main(["seed", "--users", "5", "--legacy-url", f"{base}/no_such_db_for_seed"]) == 1
    assert "cannot open the legacy database" in _one_error_line(capsys)
    assert main(["seed", "--users", "5", "--legacy-url", empty]) == 1  # a database without the legacy schema
    assert "no `users` table: run `migrator init`" in _one_error_line(capsys)
    assert main(["init", "--es-url", empty, "--legacy-url", empty]) == 2  # MySQL is a legacy database only
    line = _one_error_line(capsys)
    assert "is not supported for the es database" in line


def test_init_on_a_missing_mariadb_database_creates_nothing(tmp_path, capsys, monkeypatch, mysql_databases):
    monkeypatch.chdir(tmp_path)
    base = MYSQL_URL.rpartition("/")[0]
    es = tmp_path / "var" / "es.db"
    assert main(["init", "--legacy-url", f"{base}/no_such_db_for_init", "--es-url", f"sqlite:///{es}"]) == 1
    line = _one_error_line(capsys)
    assert "cannot open the legacy database" in line and "Unknown database" in line
    assert not es.exists() and not es.parent.exists()  # nothing half-made
