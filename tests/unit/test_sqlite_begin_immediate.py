"""begin_immediate: a writer waiting on another connection's write lock gets it as soon as it is free."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from es_app.store.engine import BUSY_TIMEOUT_S, begin_immediate


def _connect(path) -> sqlite3.Connection:  # noqa: ANN001
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_S)
    db.execute("PRAGMA journal_mode=WAL")
    return db


def test_a_waiting_writer_begins_within_milliseconds_of_the_lock_being_released(tmp_path) -> None:
    path = tmp_path / "w.db"
    holder, waiter = _connect(path), _connect(path)
    holder.execute("CREATE TABLE t (n INTEGER)")
    holder.execute("BEGIN IMMEDIATE")
    began: list[float] = []

    def wait() -> None:
        begin_immediate(waiter)
        began.append(time.monotonic())
        waiter.execute("INSERT INTO t VALUES (2)")
        waiter.execute("COMMIT")

    thread = threading.Thread(target=wait)
    thread.start()
    time.sleep(0.08)
    assert not began  # still waiting on the holder
    holder.execute("INSERT INTO t VALUES (1)")
    holder.execute("COMMIT")
    released = time.monotonic()
    thread.join(5)
    # SQLite's busy handler sleeps 1, 2, 5, 10, 15, 20, 25 ms ...: tries at 53, 78 and 103 ms, the next
    # one about 20 ms after this release; the pauses here are at most 2 ms
    assert began and began[0] - released < 0.012
    assert [n for (n,) in holder.execute("SELECT n FROM t ORDER BY n")] == [1, 2]
    assert waiter.execute("PRAGMA busy_timeout").fetchone()[0] == int(BUSY_TIMEOUT_S * 1000)  # restored


def test_it_gives_up_after_the_timeout_as_the_busy_timeout_would(tmp_path) -> None:
    path = tmp_path / "w.db"
    holder, waiter = _connect(path), _connect(path)
    holder.execute("BEGIN IMMEDIATE")
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        begin_immediate(waiter, timeout_s=0.05)
    assert 0.05 <= time.monotonic() - started < 1
    assert not waiter.in_transaction
    assert waiter.execute("PRAGMA busy_timeout").fetchone()[0] == int(BUSY_TIMEOUT_S * 1000)
    holder.execute("ROLLBACK")
    begin_immediate(waiter)
    assert waiter.in_transaction
