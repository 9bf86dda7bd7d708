"""The MySQL/MariaDB dialect adapter's operations against a real MariaDB (a legacy database only)."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, select, text

from es_app.dialect import UnsupportedBackend, dialect_for
from es_app.store import make_engine

pytestmark = pytest.mark.mysql


@pytest.fixture
def engine(mysql_databases):
    url = mysql_databases.new(schema_head=False)
    engine = make_engine(url)
    yield engine
    engine.dispose()
    mysql_databases.drop(url)


def _table(engine) -> Table:
    t = Table("kv", MetaData(), Column("k", String(20), primary_key=True), Column("v", Integer, nullable=False))
    t.create(engine)
    return t


def test_engine_is_utf8mb4_and_utc(engine):
    with engine.connect() as conn:
        assert conn.execute(text("SELECT @@session.time_zone")).scalar() == "+00:00"
        assert conn.execute(text("SELECT @@character_set_client")).scalar() == "utf8mb4"
        assert conn.execute(text("SELECT CHAR_LENGTH(:s)"), {"s": "\U0001F600x"}).scalar() == 2


def test_upsert_and_insert_ignore(engine):
    t, d = _table(engine), dialect_for(engine)
    with engine.begin() as conn:
        conn.execute(d.upsert(t, {"k": "a", "v": 1}, ["k"], ["v"]))
        conn.execute(d.upsert(t, {"k": "a", "v": 2}, ["k"], ["v"]))
        conn.execute(d.insert_ignore(t, ["k"], {"k": "a", "v": 9}))
        conn.execute(d.insert_ignore(t, ["k"], [{"k": "b", "v": 3}]))
        assert dict(conn.execute(select(t.c.k, t.c.v)).all()) == {"a": 2, "b": 3}
    with pytest.raises(UnsupportedBackend):
        d.upsert(t, {"k": "a", "v": 1}, ["k"], ["v"], only_if=lambda new: t.c.v < new.v)


def test_lock_for_transaction_is_held_until_commit(engine):
    d = dialect_for(engine)
    order: list[str] = []
    taken = threading.Event()

    def other() -> None:
        taken.wait(5)
        with engine.connect() as conn, conn.begin():
            d.lock_for_transaction(conn, 42)
            order.append("other")

    thread = threading.Thread(target=other)
    thread.start()
    with engine.connect() as conn, conn.begin():
        d.lock_for_transaction(conn, 42)
        taken.set()
        conn.execute(text("CREATE TABLE ddl_commits_implicitly (i INT)"))  # the lock survives DDL's commit
        time.sleep(0.3)
        order.append("first")
    thread.join(10)
    assert order == ["first", "other"]
    with engine.connect() as conn:  # released: another session takes it at once
        assert d.try_advisory_lock(conn, 42)
        d.advisory_unlock(conn, 42)


def test_next_key_raises_auto_increment(engine):
    d = dialect_for(engine)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE items (id INT AUTO_INCREMENT PRIMARY KEY, n INT)"))
        conn.execute(text("INSERT INTO items (n) VALUES (1), (2)"))
    counters = Table("migrator_keys", MetaData(), Column("table_name", String(200), primary_key=True),
                     Column("last_key", Integer, nullable=False))
    with engine.connect() as conn, conn.begin():
        key = d.next_key(conn, "items", "id", counters)
        conn.execute(text("INSERT INTO items (id, n) VALUES (:k, 3)"), {"k": key})
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO items (n) VALUES (4)"))
        assert key == 3
        assert conn.execute(text("SELECT id FROM items WHERE n = 4")).scalar() == 4
        assert d.next_key(conn, "items", "id", counters) == 5
