"""`migrator relay` through the CLI entry point: drain, project, report; bad input is one error line."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from es_app.bootstrap import engine_for
from es_app.store import make_engine
from tests.e2e.cli_run import run

T = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def any_legacy_urls(new_legacy_and_es_urls):
    """Returns (legacy URL, event-store URL), the legacy database on every legacy backend."""
    pair = new_legacy_and_es_urls("relay")
    yield pair
    for url in pair:
        engine_for(url).dispose()  # the CLI's cached engines: give their connections back


def test_relay_drains_projects_and_reports(capsys, any_legacy_urls):
    legacy_url, es_url = any_legacy_urls
    opts = ("--legacy-url", legacy_url, "--es-url", es_url)
    assert run(capsys, "capture", "install", "--legacy-url", legacy_url)[0] == 0
    legacy = make_engine(legacy_url)
    with legacy.begin() as conn:
        conn.execute(text("INSERT INTO users (id, email, full_name, is_active, created_at, updated_at) "
                          "VALUES (:i, :e, :n, :a, :t, :t)"),
                     [{"i": i, "e": f"U{i}@X.org", "n": f" User {i}", "a": i % 2 == 0, "t": T} for i in range(1, 31)])
        conn.execute(text("UPDATE users SET full_name = 'Renamed' WHERE id <= 5"))
        conn.execute(text("DELETE FROM users WHERE id = 30"))
    legacy.dispose()
    code, out, err = run(capsys, "relay", "--batch-size", "8", *opts)
    assert code == 0, err
    assert "relay summary" in out and "36" in out and "projections applied" in out
    es = make_engine(es_url)
    with es.connect() as conn:
        view = {r.legacy_key: r for r in conn.execute(text("SELECT * FROM users_view"))}
    es.dispose()
    assert len(view) == 30 and view["30"].deleted and not view["29"].deleted
    assert (view["1"].name, view["7"].name, view["7"].email, view["2"].active) == ("Renamed", "User 7", "u7@x.org", True)
    code, out, _ = run(capsys, "relay", *opts)  # nothing left: a no-op
    assert code == 0 and "projections applied" not in out


@pytest.mark.parametrize("argv, message", [
    (["relay"], "change capture is not installed in the legacy database: run `migrator capture install`"),
    (["relay", "--table", "orders"], "no mapping for this table"),
    (["relay", "--batch-size", "0"], "Invalid value for '--batch-size'"),
])
def test_bad_input_is_one_error_line(capsys, urls, argv, message):
    legacy_url, es_url = urls
    code, _, err = run(capsys, *argv, "--legacy-url", legacy_url, "--es-url", es_url)
    assert code != 0 and message in err
