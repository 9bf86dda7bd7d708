"""A small migration for the dashboard's tests: users imported, one of them changed twice, the read model of
another made wrong."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text

from es_app.bootstrap import engine_for
from es_app.settings import Settings
from migrator.cli import main

T = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
TOKEN = "s3cret-dashboard-token"


def settings_for(url: str, token: str = "") -> Settings:
    """Returns settings with both databases at `url` (and the dashboard token, when given)."""
    return Settings(es_database_url=url, legacy_database_url=url, dashboard_token=token)


def add_users(url: str, ids: range) -> None:
    with engine_for(url).begin() as conn:
        conn.execute(text("INSERT INTO users (id, email, full_name, is_active, phone, created_at, updated_at) "
                          "VALUES (:id, :email, :name, TRUE, NULL, :t, :t)"),
                     [{"id": i, "email": f"u{i}@example.org", "name": f"User {i}", "t": T} for i in ids])


def rename(url: str, key: int, name: str) -> None:
    with engine_for(url).begin() as conn:
        conn.execute(text("UPDATE users SET full_name = :n WHERE id = :id"), {"n": name, "id": key})


def run(*argv: str, url: str) -> None:
    assert main([*argv, "--es-url", url, "--legacy-url", url]) == 0, argv


def prepare(url: str) -> None:
    """Users 1-3 imported (backfill) and projected; user 1 renamed twice after (relayed); user 3's read-model
    row made wrong; the migration in `dual_write`."""
    add_users(url, range(1, 4))
    assert main(["capture", "install", "--legacy-url", url]) == 0
    run("relay", url=url)
    run("advance", "--actor", "ana", url=url)
    run("backfill", url=url)
    rename(url, 1, "Ada")
    rename(url, 1, "Ada Lovelace")
    run("relay", url=url)
    run("projections", "run", url=url)
    with engine_for(url).begin() as conn:
        conn.execute(text("UPDATE users_view SET name = 'Wrong' WHERE id = 'user-3'"))
