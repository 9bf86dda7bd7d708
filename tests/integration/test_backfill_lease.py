"""One backfill run per table at a time: a lease in the event-store database (both backends).

Another process is played here by another owner token; tests/e2e/test_backfill_lease.py runs
real processes."""

from __future__ import annotations

import os
import socket

import pytest
from sqlalchemy import select, update

from es_app.store import write_transaction
from migrator.backfill import leases
from migrator.backfill.run import BackfillError

from .backfill_helpers import insert_users, keys, make_backfill


@pytest.fixture
def other_process(monkeypatch):
    """Makes the lease calls made inside the block look like those of another process."""
    real = leases._owner

    class Other:
        def __enter__(self):
            monkeypatch.setattr(leases, "_owner", lambda: "elsewhere:4242:other")

        def __exit__(self, *exc):
            monkeypatch.setattr(leases, "_owner", real)

    return Other()


def lease_row(engine):
    with engine.connect() as conn:
        return conn.execute(select(leases.leases)).mappings().one_or_none()


def expire(engine):
    with write_transaction(engine) as conn:
        conn.execute(update(leases.leases).values(expires_at=leases._now()))


def test_a_second_run_refuses_with_one_line_naming_the_first(db, other_process):
    _, engine = db
    insert_users(engine, keys(10))
    first = make_backfill(engine, batch_size=3)
    first.start()
    first.step()
    row = lease_row(engine)
    assert (row["host"], row["pid"]) == (socket.gethostname(), os.getpid())
    [held] = leases.current(engine)
    assert (held.name, held.host, held.pid) == ("the backfill of users", socket.gethostname(), os.getpid())
    with other_process, pytest.raises(BackfillError) as info:
        make_backfill(engine, batch_size=3).start(resume=True)
    message = str(info.value)
    assert message.startswith(f"the backfill of users is already running on host {socket.gethostname()} "
                              f"(pid {os.getpid()}) since ")
    assert "\n" not in message
    assert first.run_to_end().rows_done == 10  # the first goes on, and gives the lease back at its end
    assert lease_row(engine) is None


def test_an_expired_lease_is_taken_over_and_the_old_run_stops_at_its_next_chunk(db, other_process):
    _, engine = db
    insert_users(engine, keys(10))
    dead = make_backfill(engine, batch_size=3, lease_ttl=30)
    dead.start()
    dead.step()  # then it hangs (or was killed): no renewal
    expire(engine)
    assert leases.current(engine) == []
    with other_process:
        taker = make_backfill(engine, batch_size=3)
        taker.start(resume=True)
        assert lease_row(engine)["owner"] == "elsewhere:4242:other"
    done_before = taker.stored_run().rows_done
    with pytest.raises(BackfillError, match="another run took over this run's lease"):
        dead.step()  # its chunk rolls back
    assert taker.stored_run().rows_done == done_before
    with other_process:
        assert taker.run_to_end().rows_done == 10


def test_a_run_in_the_same_process_takes_over_at_once_and_a_finished_run_holds_nothing(db):
    _, engine = db
    insert_users(engine, keys(4))
    crashed = make_backfill(engine, batch_size=3)
    crashed.start()
    crashed.step()
    again = make_backfill(engine, batch_size=3)  # as after a crash inside this process
    again.start(resume=True)
    again.run_to_end()
    assert lease_row(engine) is None
    assert make_backfill(engine).start(resume=True).finished
    assert lease_row(engine) is None


def test_a_paused_run_keeps_its_lease(db, other_process, tmp_path):
    _, engine = db
    insert_users(engine, keys(4))
    pause = tmp_path / "pause"
    pause.touch()
    from .backfill_helpers import FakeClock

    clock = FakeClock()
    b = make_backfill(engine, batch_size=3, pause_file=pause, clock=clock, lease_ttl=5)
    b.start()
    expire(engine)
    renewed = []  # while paused (before any chunk), the lease was renewed

    def paused_once() -> None:
        renewed.append(leases._aware(lease_row(engine)["expires_at"]) > leases._now())
        pause.unlink()

    clock.hooks.append(paused_once)
    b.step()
    assert renewed == [True]
    with other_process, pytest.raises(BackfillError, match="already running"):
        make_backfill(engine).start(resume=True)
