"""Capture gaps through the CLI: `capture status` and `relay` warn until `relay --resync` repairs and resolves."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text

from es_app.store import make_engine
from tests.e2e.cli_run import run

T = datetime(2026, 1, 1, tzinfo=UTC)


def legacy_write(url, sql, rows=None):
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text(sql), rows or {})
    engine.dispose()


def test_a_gap_is_warned_by_status_and_relay_until_resync_resolves_it(capsys, urls):
    legacy_url, es_url = urls
    opts = ("--legacy-url", legacy_url, "--es-url", es_url)
    assert run(capsys, "capture", "install", "--legacy-url", legacy_url)[0] == 0
    legacy_write(legacy_url, "INSERT INTO users (id, email, full_name, is_active, created_at, updated_at) "
                             "VALUES (:i, :e, :n, true, :t, :t)",
                 [{"i": i, "e": f"u{i}@x.org", "n": f"User {i}", "t": T} for i in range(1, 21)])
    code, out, err = run(capsys, "relay", *opts)
    assert code == 0 and "warning" not in err
    assert run(capsys, "capture", "remove", "--drop-changelog", "--legacy-url", legacy_url)[0] == 0
    legacy_write(legacy_url, "UPDATE users SET full_name = 'Unseen' WHERE id <= 3")
    legacy_write(legacy_url, "DELETE FROM users WHERE id = 20")
    assert run(capsys, "capture", "install", "--legacy-url", legacy_url)[0] == 0
    legacy_write(legacy_url, "UPDATE users SET full_name = 'Seen' WHERE id = 10")

    code, out, err = run(capsys, "capture", "status", *opts)
    assert code == 0 and "capture gap on users: the changelog was recreated" in err
    assert "migrator relay --resync --table users" in err
    for _ in range(2):  # every run warns until the gap is resolved
        code, out, err = run(capsys, "relay", *opts)
        assert code == 0 and err.count("capture gap on users") == 1

    code, out, err = run(capsys, "relay", "--resync", *opts)
    assert code == 0 and "resync summary" in out and "capture gap" not in err
    es = make_engine(es_url)
    with es.connect() as conn:
        view = {r.legacy_key: r for r in conn.execute(text("SELECT * FROM users_view"))}
    es.dispose()
    assert (view["1"].name, view["10"].name, view["20"].deleted) == ("Unseen", "Seen", True)
    code, out, err = run(capsys, "capture", "status", *opts)
    assert code == 0 and "capture gaps: none" in out and "capture gap on" not in err
