"""The legacy service's load–mutate–save and its read seam, on SQLite, PostgreSQL and MySQL/MariaDB."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import event, select

from legacy_app.db import Database
from legacy_app.models import User
from legacy_app.reads import LegacyTableReads, ReadMode, reads_for
from legacy_app.service import EmailTaken, UserNotFound, UserService

T0 = datetime(2020, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


@pytest.fixture
def database(new_legacy_and_es_urls):
    db = Database.connect(new_legacy_and_es_urls("legacy")[0])
    yield db
    db.dispose()


@pytest.fixture
def statements(database):
    seen: list[str] = []

    def record(_conn, _cursor, statement, _params, _context, _many):  # noqa: ANN001
        seen.append(" ".join(statement.split()).upper())

    event.listen(database.engine, "before_cursor_execute", record)
    yield seen
    event.remove(database.engine, "before_cursor_execute", record)


def test_change_name_is_load_mutate_save(database, statements):
    clock = Clock()
    users = UserService(database, clock)
    created = users.create(email="ann@example.org", full_name="Ann", phone="+1 555")
    assert created.created_at == created.updated_at == T0 + timedelta(minutes=1)
    statements.clear()

    renamed = users.change_name(created.id, "Ann Example")

    dml = [s for s in statements if s.startswith(("SELECT", "UPDATE", "INSERT", "DELETE"))]
    assert len(dml) == 2 and dml[0].startswith("SELECT") and dml[1].startswith("UPDATE USERS SET")
    assert "FULL_NAME=" in dml[1] and "UPDATED_AT=" in dml[1] and "EMAIL=" not in dml[1]
    assert renamed.full_name == "Ann Example"
    assert renamed.updated_at == T0 + timedelta(minutes=2)
    assert renamed.created_at == created.created_at
    with database.read_session() as session:  # closed: an open read holds MySQL's metadata lock
        stored = session.get(User, created.id)
    assert (stored.full_name, stored.updated_at, stored.phone) == ("Ann Example", renamed.updated_at, "+1 555")
    assert stored.updated_at.tzinfo is not None and stored.updated_at.utcoffset() == timedelta(0)


def test_update_sets_only_changed_fields_and_skips_a_no_op(database, statements):
    users = UserService(database, Clock())
    u = users.create(email="b@example.org", full_name="B", is_active=True)
    statements.clear()
    same = users.update(u.id, {"full_name": "B", "is_active": True})
    assert same == u
    assert not [s for s in statements if s.startswith("UPDATE")]

    changed = users.update(u.id, {"is_active": False, "phone": "+44 20"})
    assert (changed.is_active, changed.phone, changed.full_name) == (False, "+44 20", "B")
    assert changed.updated_at > u.updated_at
    with pytest.raises(ValueError, match="not editable: id"):
        users.update(u.id, {"id": 7})


def test_errors_leave_rows_untouched(database):
    users = UserService(database, Clock())
    a = users.create(email="a@example.org", full_name="A")
    b = users.create(email="b@example.org", full_name="B")
    with pytest.raises(EmailTaken):
        users.create(email="a@example.org", full_name="A again")
    with pytest.raises(EmailTaken):
        users.update(b.id, {"email": "a@example.org", "full_name": "B2"})
    with pytest.raises(UserNotFound):
        users.change_name(999, "X")
    with pytest.raises(UserNotFound):
        users.delete(999)
    reads = LegacyTableReads(database)
    assert reads.get(a.id) == a and reads.get(b.id) == b
    assert reads.search().total == 2
    users.delete(a.id)
    assert reads.get(a.id) is None


def test_concurrent_load_mutate_save_from_threads(database):
    """Four threads renaming the same rows: every save lands, none fails on a lock."""
    users = UserService(database)
    ids = [users.create(email=f"c{i}@example.org", full_name=f"C{i}").id for i in range(3)]
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for n in range(15):
                users.change_name(ids[n % 3], f"w{worker}-{n}")
                users.update(ids[(n + 1) % 3], {"phone": f"+{worker}{n}"})
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with database.read_session() as s:
        rows = s.scalars(select(User).order_by(User.id)).all()
    assert len(rows) == 3
    assert all(r.full_name.startswith("w") and r.updated_at >= r.created_at for r in rows)


def test_read_seam_get_and_search(database):
    users = UserService(database, Clock())
    for i, name in enumerate(["Émile Zola", "émile roux", "Ann 50%_off", "Bob"]):
        users.create(email=f"r{i}@Example.org", full_name=name)
    reads = reads_for(database)
    assert reads.mode is ReadMode.LEGACY
    assert [r.full_name for r in reads.search("ÉMILE").items] == ["Émile Zola", "émile roux"]
    assert reads.search("example.ORG", limit=3).total == 4
    assert [r.full_name for r in reads.search("example.org", limit=3, offset=3).items] == ["Bob"]
    assert [r.full_name for r in reads.search("50%_").items] == ["Ann 50%_off"]
    assert reads.search("0%x").total == 0
    assert reads.get(1).full_name == "Émile Zola" and reads.get(1).created_at.tzinfo is not None
    with pytest.raises(ValueError):
        reads.search(limit=0)


def test_a_save_racing_a_delete_is_user_not_found_not_a_crash(database, legacy_backend):
    if legacy_backend == "sqlite":
        pytest.skip("SQLite writers take the database lock before the load, so the race cannot happen")
    victim = UserService(database).create(email="racer@example.org", full_name="Racer")
    other = UserService(database)

    def clock_that_lets_a_delete_in() -> datetime:  # runs between the load and the save
        other.delete(victim.id)
        return datetime.now(timezone.utc)

    racing = UserService(database, clock=clock_that_lets_a_delete_in)
    with pytest.raises(UserNotFound):
        racing.change_name(victim.id, "Too Late")
    with database.read_session() as session:
        assert session.get(User, victim.id) is None


@pytest.mark.mysql
def test_a_save_that_a_trigger_install_makes_a_deadlock_victim_runs_again(mysql_databases):
    """MariaDB: a load-then-save holds the table's shared metadata lock and upgrades it at the save; a CREATE
    TRIGGER queued in between makes the save a metadata-lock deadlock's victim (1213). The service runs the unit
    of work again: the write lands once, the trigger is in place, nothing surfaces as an error."""
    url = mysql_databases.new()
    db = Database.connect(url)
    try:
        victim = UserService(db).create(email="mdl@example.org", full_name="Before")
        ddl_done = threading.Event()
        errors: list[BaseException] = []

        def create_trigger() -> None:
            try:
                with db.engine.connect() as conn:
                    conn.exec_driver_sql("CREATE OR REPLACE TRIGGER t_mdl AFTER UPDATE ON users FOR EACH ROW "
                                         "SET @x = 1")
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            finally:
                ddl_done.set()

        calls = []

        def clock() -> datetime:  # runs between the load and the save: the DDL queues for the table then
            calls.append(1)
            if len(calls) == 1:
                threading.Thread(target=create_trigger).start()
                time.sleep(0.5)
            return datetime.now(timezone.utc)

        renamed = UserService(db, clock=clock).change_name(victim.id, "After")
        assert ddl_done.wait(30) and not errors, errors
        assert renamed.full_name == "After" and len(calls) == 2  # the first attempt was the victim, then again
        with db.read_session() as session:
            assert session.get(User, victim.id).full_name == "After"
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = "
                                        "DATABASE() AND TRIGGER_NAME = 't_mdl'").scalar() == 1
    finally:
        db.dispose()
        mysql_databases.drop(url)
