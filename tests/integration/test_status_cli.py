"""`migrator status`: one overview per mapped table (capture, relay, backfill, projections, findings)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from sqlalchemy import text

from es_app.bootstrap import engine_for
from migrator.cli import main
from migrator.parking.entries import RELAY, ToPark, park

T = datetime(2026, 3, 4, 5, 6, 7, tzinfo=timezone.utc)
KEYS = ["tables", "capture", "relay", "backfill", "projections", "findings", "parked", "capture_gaps", "runs",
        "phase", "next", "guards", "backlog", "lag", "last_verify", "shadow", "paused", "migration"]


@pytest.fixture
def url(new_database_url):
    url = new_database_url("status")  # the legacy tables and the event store in one database
    yield url
    engine_for(url).dispose()


def add_users(url: str, emails: dict[int, str]) -> None:
    with engine_for(url).begin() as conn:
        for key, email in emails.items():
            conn.execute(text("INSERT INTO users (id, email, full_name, is_active, phone, created_at, updated_at) "
                              "VALUES (:id, :email, :name, TRUE, NULL, :t, :t)"),
                         {"id": key, "email": email, "name": f"User {key}", "t": T})


def status_json(capsys, url: str, *extra: str) -> dict:
    capsys.readouterr()
    assert main(["status", "--json", "--es-url", url, "--legacy-url", url, *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_status_follows_the_migration_and_counts_findings(url, capsys):
    add_users(url, {1: "a@example.org", 2: "b@example.org", 3: "A@example.org"})
    before = status_json(capsys, url)
    assert list(before) == KEYS and before["tables"] == ["users"]
    assert before["capture"]["installed"] is False and before["relay"]["users"] == {"offset": 0, "backlog": None}
    assert before["backfill"]["users"]["status"] == "never"
    assert before["findings"] == {"total": 0, "counts": {"users": {}}, "items": None}

    assert main(["capture", "install", "--legacy-url", url]) == 0
    add_users(url, {4: "d@example.org"})
    assert main(["backfill", "--es-url", url, "--legacy-url", url]) == 0
    mid = status_json(capsys, url)
    assert mid["capture"]["tables"]["users"] == {"installed": True, "changes": 1, "last_id": 1}
    assert mid["relay"]["users"] == {"offset": 0, "backlog": 1}
    b = mid["backfill"]["users"]
    assert (b["status"], b["rows_done"], b["rows_imported"], b["last_key"]) == ("done", 4, 4, 4)
    users = next(p for p in mid["projections"] if p["name"] == "users")
    assert users["lag"] == 0 and users["head"] == 4
    assert mid["findings"] == {"total": 1, "counts": {"users": {"duplicate_email": 1}}, "items": None}

    assert main(["relay", "--es-url", url, "--legacy-url", url]) == 0
    after = status_json(capsys, url, "--findings")
    assert after["relay"]["users"] == {"offset": 1, "backlog": 0}
    (item,) = after["findings"]["items"]
    assert list(item) == ["id", "kind", "table_name", "key", "other_key", "value", "detail", "found_at"]
    assert (item["kind"], item["key"], item["other_key"], item["value"]) == ("duplicate_email", "3", "1",
                                                                            "a@example.org")

    assert main(["status", "--es-url", url, "--legacy-url", url]) == 0
    out = capsys.readouterr().out
    for title in ("capture", "relay", "backfill", "projections", "data-quality findings", "duplicate_email"):
        assert title in out
    assert "migrator status --findings" in out and "a@example.org" not in out
    assert main(["status", "--findings", "--es-url", url, "--legacy-url", url]) == 0
    assert "a@example.org" in capsys.readouterr().out


def test_a_missing_database_is_one_error_line(tmp_path, url, capsys):
    missing = f"sqlite:///{tmp_path / 'nope.db'}"
    for args in (["--es-url", missing, "--legacy-url", url], ["--es-url", url, "--legacy-url", missing]):
        capsys.readouterr()
        assert main(["status", *args]) == 1
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(err) == 1 and err[0].startswith("error: ") and "nope.db" in err[0], err
    assert not (tmp_path / "nope.db").exists()


def test_status_counts_parked_rows_and_reports_capture_gaps(url, capsys):
    add_users(url, {1: "a@example.org", 2: "b@example.org"})
    assert main(["capture", "install", "--legacy-url", url]) == 0
    assert main(["backfill", "--es-url", url, "--legacy-url", url]) == 0
    before = status_json(capsys, url)
    assert before["parked"]["users"]["waiting"] == 0 and before["capture_gaps"] == [] and before["runs"] == []
    assert main(["capture", "remove", "--legacy-url", url]) == 0
    with engine_for(url).begin() as conn:  # written while capture is off
        conn.execute(text("UPDATE users SET full_name = 'Unseen' WHERE id = 1"))
    assert main(["capture", "install", "--legacy-url", url]) == 0
    assert main(["relay", "--es-url", url, "--legacy-url", url]) == 0
    with engine_for(url).begin() as conn:  # what the relay does with a change the store cannot hold
        park(conn, "users", RELAY, [ToPark("2", "users key 2: cannot be stored", {"id": 2}, 99)])
    after = status_json(capsys, url)
    assert after["parked"]["users"] == {"keys": 1, "backfill": 0, "relay": 1, "waiting": 1, "resolved": 0}
    assert [g["reason"] for g in after["capture_gaps"]] == ["capture_off"]
    assert "migrator relay --resync" in after["capture_gaps"][0]["warning"]
    capsys.readouterr()
    assert main(["status", "--es-url", url, "--legacy-url", url]) == 0
    out = capsys.readouterr().out
    assert "capture gap on users" in out and "parked" in out
