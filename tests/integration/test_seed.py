"""`migrator seed`: realistic rows, bulk-inserted (executemany / COPY), appended with unique emails."""

from __future__ import annotations

import unicodedata
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from es_app.domain.user import normalize_email, normalize_name
from legacy_app.db import Database
from legacy_app.models import User
from legacy_app.service import UserService
from migrator.seed import seed_users

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def database(new_database_url):
    db = Database.connect(new_database_url("legacy"))
    yield db
    db.dispose()


def _rows(database: Database) -> list[User]:
    with database.read_session() as s:
        return list(s.scalars(select(User).order_by(User.id)))


def _script(name: str) -> str:
    for ch in name:
        if ch.isalpha():
            return unicodedata.name(ch).split()[0]
    return "?"


def test_seed_is_realistic(database):
    report = seed_users(database.engine, 1500, chunk_size=400, seed=7, now=NOW)
    assert (report.rows, report.total_rows) == (1500, 1500)
    rows = _rows(database)
    assert len(rows) == 1500
    assert len({r.email for r in rows}) == 1500
    missing_phone = sum(r.phone is None for r in rows) / len(rows)
    inactive = sum(not r.is_active for r in rows) / len(rows)
    assert 0.15 <= missing_phone <= 0.25, missing_phone
    assert 0.06 <= inactive <= 0.14, inactive
    # unicode names in several scripts, every one importable by the new system
    scripts = {_script(r.full_name) for r in rows}
    assert {"LATIN", "CYRILLIC", "CJK", "GREEK"} <= scripts, scripts
    assert sum(not r.full_name.isascii() for r in rows) > 150
    for r in rows:
        normalize_email(r.email)
        normalize_name(r.full_name)
        assert r.phone is None or 0 < len(r.phone) <= 40
    # uneven timestamps over years, updated never before created nor after now
    created = sorted(r.created_at for r in rows)
    assert created[-1] - created[0] > timedelta(days=4 * 365)
    assert all(r.created_at <= r.updated_at <= NOW for r in rows)
    never_updated = sum(r.updated_at == r.created_at for r in rows) / len(rows)
    assert 0.25 <= never_updated <= 0.45
    assert len({r.created_at.year for r in rows}) >= 10
    recent = sum(r.created_at.year >= 2020 for r in rows)
    assert recent > len(rows) - recent  # skewed towards recent years: uneven
    assert len({r.created_at.microsecond for r in rows}) > 1000


def test_seed_appends_and_keeps_emails_unique(database, new_database_url):
    """A row already holding the email the seed would generate gets no twin: the seed's row is renamed."""
    reference = Database.connect(new_database_url("reference"))
    try:
        UserService(reference).create(email="first@example.org", full_name="First")
        seed_users(reference.engine, 60, chunk_size=25, seed=11, now=NOW)
        expected = _rows(reference)
    finally:
        reference.dispose()
    clash = expected[1].email  # the email the seed gives its first row

    UserService(database).create(email=clash, full_name="Already Here")
    seed_users(database.engine, 60, chunk_size=25, seed=11, now=NOW)
    rows = _rows(database)
    assert len(rows) == 61 and len({r.email for r in rows}) == 61
    assert rows[0].email == clash and rows[0].full_name == "Already Here"
    local, _, domain = clash.partition("@")
    assert rows[1].email != clash and rows[1].email.startswith(local + ".") and rows[1].email.endswith(domain)
    assert rows[1].full_name == expected[1].full_name
    strip = lambda r: (r.email, r.full_name, r.phone, r.is_active, r.created_at, r.updated_at)  # noqa: E731
    assert [strip(r) for r in rows[2:]] == [strip(r) for r in expected[2:]]

    # a second seed appends after the existing rows with fresh, still unique emails
    seed_users(database.engine, 40, chunk_size=25, seed=11, now=NOW)
    with database.read_session() as s:
        assert s.scalar(select(func.count()).select_from(User)) == 101
        assert s.scalar(select(func.count(func.distinct(User.email)))) == 101


def test_rows_are_the_same_whichever_process_builds_them(tmp_path):
    from migrator import schema
    from legacy_app.db import make_engine

    results = []
    for workers in (0, 2):
        engine = make_engine(f"sqlite:///{tmp_path / f'w{workers}.db'}")
        schema.upgrade_all({"legacy": engine})
        seed_users(engine, 300, chunk_size=70, seed=3, now=NOW, pool_size=40, workers=workers)
        with engine.connect() as conn:
            results.append(conn.execute(select(User.__table__).order_by(User.id)).all())
        engine.dispose()
    assert len(results[0]) == 300 and results[0] == results[1]
