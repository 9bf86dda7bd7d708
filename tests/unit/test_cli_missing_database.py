"""A command pointed at an SQLite file that does not exist says so in one line and creates nothing."""

from __future__ import annotations

import pytest

from migrator.cli import main


@pytest.mark.parametrize("argv", [["projections", "status"], ["backfill"]])
def test_a_missing_sqlite_database_is_one_line_and_not_created(tmp_path, capsys, argv):
    missing = tmp_path / "nowhere" / "es.db"
    code = main(["--es-url", f"sqlite:///{missing}", *argv])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert err == f"error: the es database {missing} does not exist: run `migrator init`"
    assert not missing.exists()
