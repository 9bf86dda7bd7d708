"""Writes switched and rolled back under concurrent traffic (real threads), on SQLite and PostgreSQL: no lost write,
no duplicate event, verify clean; the relay's follow loop runs the reverse projection only while it has work."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from migrator.phases.machine import advance, load, rollback
from migrator.relay.follow import follow
from migrator.relay.runner import Relay
from migrator.switchover.reverse import background_catch_up, drain, projections_for, waiting_count

from .switchover_helpers import make_world

THREADS = 4
BEFORE = 6  # writes per thread before the rollback is asked for
AFTER = 6  # writes per thread once it is done


@pytest.fixture
def world(new_legacy_and_es_urls):
    """On every legacy backend (MySQL: a MariaDB legacy database beside an SQLite event store)."""
    w = make_world(lambda name: new_legacy_and_es_urls(name)[0 if name == "legacy" else 1])
    advance(w.store, load(w.store), "writes_switched", lambda phase, state: [], "test")
    yield w
    w.legacy.dispose()


def test_rollback_from_switched_writes_under_traffic_loses_nothing_and_duplicates_nothing(world):
    es_writes, legacy_writes = world.writes(), world.legacy_writes()
    projections = projections_for([world.users], world.legacy, world.store)
    made: Counter[int] = Counter()  # writes per key: each one makes exactly one event on its stream
    last_name: dict[int, str] = {}
    lock = threading.Lock()
    asked, rolled_back = threading.Event(), threading.Event()
    done_before = threading.Barrier(THREADS + 1)
    errors: list[BaseException] = []

    def write(thread: int, step: int, key: int | None) -> int:
        writes = es_writes if load(world.store).writes == "new" else legacy_writes  # the live routes' choice
        name = f"T{thread} step {step}"
        if key is None:
            key = writes.create(email=f"t{thread}@example.org", full_name=name).id
        else:
            writes.update(key, {"full_name": name})
        with lock:
            made[key] += 1
            last_name[key] = name
        return key

    def worker(thread: int) -> None:
        try:
            key = None
            for step in range(BEFORE):
                key = write(thread, step, key)
            done_before.wait()
            rolled_back.wait()
            for step in range(BEFORE, BEFORE + AFTER):
                key = write(thread, step, key)
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)
            done_before.abort()

    def other_consumer() -> None:  # writes the legacy table directly all along (captured, relayed)
        try:
            for step in range(BEFORE + AFTER):
                legacy_writes.update(3, {"full_name": f"direct {step}"})
                with lock:
                    made[3] += 1
                    last_name[3] = f"direct {step}"
                if step == BEFORE:
                    asked.wait()
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    threads.append(threading.Thread(target=other_consumer))
    for t in threads:
        t.start()
    try:
        done_before.wait()
    except threading.BrokenBarrierError:
        asked.set()
        rolled_back.set()
        for t in threads:
            t.join()
        raise AssertionError([repr(e) for e in errors]) from None
    for step in range(3):  # the event-sourced API writes too (another path than the legacy app)
        world.es.user_service.execute("user-2", lambda u, s=step: u.change_name(f"api {s}"))
        made[2] += 1
        last_name[2] = f"api {step}"
    asked.set()
    after = rollback(world.store, load(world.store), None, "test", drain=lambda: drain(projections))
    rolled_back.set()
    for t in threads:
        t.join()
    assert errors == []
    assert (after.phase, after.writes) == ("reads_switched", "legacy")

    Relay(world.users, world.legacy, world.store).drain()
    background_catch_up(projections)  # what the relay's rounds do after a rollback: the keys that wait
    with world.legacy.connect() as conn:
        assert waiting_count(conn) == 0
    per_stream = world.events_per_stream()
    for key, count in made.items():
        imported = 1 if key <= 3 else 0  # rows 1-3 came in through the relay's import
        assert per_stream[f"user-{key}"] == count + imported, key
        assert world.row(key)["full_name"] == last_name[key], key
    assert len(made) == THREADS + 2
    assert world.verify().clean


def test_the_follow_loop_runs_the_reverse_projection_while_writes_are_switched(world):
    world.es.user_service.execute("user-1", lambda u: u.change_name("Switched"))
    relays = [Relay(world.users, world.legacy, world.store)]
    rounds = []
    stop = threading.Event()

    def one_round(totals) -> None:
        rounds.append(totals)

    world.insert(9)  # something to relay, so the round is reported; then stop after it
    loop = threading.Thread(target=follow, args=(relays, world.legacy),
                            kwargs={"stop": stop, "poll_interval": 0.05, "on_round": lambda t: (one_round(t), stop.set())})
    loop.start()
    loop.join()
    assert rounds and world.row(1)["full_name"] == "Switched"

    rollback(world.store, load(world.store), None, "test")  # writes back to the legacy app, nothing waits
    world.es.user_service.execute("user-1", lambda u: u.change_name("Not reversed"))
    assert background_catch_up(projections_for([world.users], world.legacy, world.store)) == []
    assert world.row(1)["full_name"] == "Switched"
