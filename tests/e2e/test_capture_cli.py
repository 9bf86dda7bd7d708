"""`migrator capture install|remove|status` through the real CLI entry point."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from es_app.bootstrap import engine_for
from es_app.store import make_engine
from tests.accounts import MAPPING_FILE
from tests.e2e.cli_run import run


@pytest.fixture
def legacy_url(new_legacy_and_es_urls):
    url, _ = new_legacy_and_es_urls("legacy")  # on every legacy backend
    yield url
    engine_for(url).dispose()  # the CLI's cached engine: give its connections back


def test_install_status_remove_are_idempotent(capsys, legacy_url):
    for _ in range(2):
        code, out, _ = run(capsys, "--legacy-url", legacy_url, "capture", "install")
        assert code == 0 and "installed" in out and "present" in out
    code, out, _ = run(capsys, "capture", "status", "--legacy-url", legacy_url)
    assert code == 0 and "users" in out and "installed" in out
    for _ in range(2):
        code, out, _ = run(capsys, "capture", "remove", "--legacy-url", legacy_url)
        assert code == 0 and "absent" in out
    code, out, _ = run(capsys, "capture", "remove", "--drop-changelog", "--legacy-url", legacy_url)
    assert code == 0
    engine = make_engine(legacy_url)
    triggers_sql = {
        "sqlite": "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'migrator%'",
        "postgresql": "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'migrator%'",
        "mysql": "SELECT count(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() "
                 "AND TRIGGER_NAME LIKE 'migrator%'"}
    with engine.connect() as conn:
        triggers = conn.execute(text(triggers_sql[engine.dialect.name])).scalar()
    engine.dispose()
    assert triggers == 0


@pytest.mark.parametrize("argv, message", [
    (["capture", "install", "--mode", "magic"], "--mode must be one of triggers, session"),
    (["capture", "install", "--table", "orders"], "no mapping for this table"),
    (["capture", "install", "--mapping", str(MAPPING_FILE)], "table 'accounts' does not exist"),
    (["capture", "install", "--mapping", "/nonexistent/m.toml"], "No such file"),
])
def test_bad_input_is_one_error_line_and_a_non_zero_exit(capsys, legacy_url, argv, message):
    code, out, err = run(capsys, *argv, "--legacy-url", legacy_url)
    bad_usage = message == "No such file"  # a mapping file that cannot be read is refused as the options are parsed
    assert code == (2 if bad_usage else 1) and message in err and len(err.strip().splitlines()) == 1
    code, out, _ = run(capsys, "capture", "status", "--legacy-url", legacy_url)
    assert "absent" in out  # nothing half-installed


@pytest.mark.mysql
def test_a_backend_without_capture_is_one_error_line(capsys, mysql_databases, monkeypatch):
    from migrator.capture import backends

    url = mysql_databases.new()
    monkeypatch.delitem(backends._MODULES, "mysql")  # as before MySQL capture existed
    monkeypatch.setattr(backends, "_CACHE", {})
    try:
        for verb in ("install", "remove", "status"):
            code, _, err = run(capsys, "capture", verb, "--legacy-url", url)
            assert code == 1 and err.strip().splitlines() == ["error: capture supports sqlite and postgresql, not mysql"]
    finally:
        engine_for(url).dispose()
        mysql_databases.drop(url)
