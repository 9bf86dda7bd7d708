"""The CLI's check of an SQLite file must not drop this process's SQLite locks: closing any descriptor of
the file releases every POSIX lock the process holds on it, after which another process closing its
last connection deletes the WAL under this process's open connection, and this process's later commits
are lost to everyone else (seen when a bench set the reads mode in-process beside a served app)."""

from __future__ import annotations

import subprocess
import sys

from sqlalchemy import text

from es_app.store import make_engine
from migrator.cli.common import check_database_url


def other_process(path: str, sql: str) -> str:
    code = ("import sqlite3, sys\n"
            "c = sqlite3.connect(sys.argv[1]); c.execute('PRAGMA journal_mode=WAL')\n"
            "r = c.execute(sys.argv[2]).fetchall(); c.commit(); c.close(); print(r)\n")
    return subprocess.run([sys.executable, "-c", code, path, sql], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_a_commit_made_after_the_file_check_is_seen_by_other_processes(tmp_path):
    path = tmp_path / "db.sqlite"
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (v TEXT)"))
            conn.execute(text("INSERT INTO t VALUES ('first')"))
        check_database_url(url, "es")  # with connections of this process open on the file
        other_process(str(path), "INSERT INTO t VALUES ('theirs')")  # closes the last connection it knows of
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES ('mine')"))
        assert other_process(str(path), "SELECT v FROM t ORDER BY rowid") == "[('first',), ('theirs',), ('mine',)]"
    finally:
        engine.dispose()


def test_a_file_that_is_not_sqlite_is_still_refused(tmp_path):
    import pytest

    from migrator.cli.common import CliError

    bad = tmp_path / "notes.txt"
    bad.write_text("hello, this is not a database file at all, but long enough to have a header")
    with pytest.raises(CliError, match="is not an SQLite database file"):
        check_database_url(f"sqlite:///{bad}", "es")
