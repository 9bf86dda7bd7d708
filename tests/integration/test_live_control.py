"""Live control of a running backfill and a following relay through the migration's state: pause stops
progress, resume lets it finish, throttle changes the rate, all without a restart."""

from __future__ import annotations

import threading
import time

from sqlalchemy import text

from es_app.store import EventStore
from migrator.backfill.run import Backfill, BackfillOptions
from migrator.backfill.throttle import PauseGate
from migrator.capture.offsets import get_offset, offset_name
from migrator.mapping import USERS
from migrator.phases import LiveControl, load, pause, resume, throttle
from migrator.relay.follow import follow
from migrator.relay.runner import Relay, backlog

from .backfill_helpers import insert_users

POLL = 0.05


def wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def backfill_thread(engine, store: EventStore, reasons: list[str]) -> tuple[Backfill, threading.Thread, list]:
    live = LiveControl(store, poll_s=POLL)
    b = Backfill(USERS.bind(engine), engine, store, options=BackfillOptions(batch_size=10, poll_s=POLL),
                 gate=PauseGate(live=live))
    b.on_pause = reasons.append  # type: ignore[method-assign]
    b.start()
    done: list = []
    thread = threading.Thread(target=lambda: done.append(b.run_to_end()), daemon=True)
    thread.start()
    return b, thread, done


def rows_done(store: EventStore) -> int:
    from migrator.backfill.runs import load_run

    with store.engine.connect() as conn:
        run = load_run(conn, "users")
    return 0 if run is None else run.rows_done


def test_a_running_backfill_waits_while_paused_and_finishes_once_resumed(db):
    _, engine = db
    insert_users(engine, list(range(1, 121)))
    store = EventStore(engine)
    pause(store, load(store), "checking replicas", "ana")
    reasons: list[str] = []
    _, thread, done = backfill_thread(engine, store, reasons)
    wait_for(lambda: len(reasons) >= 3)
    time.sleep(0.3)
    assert rows_done(store) == 0 and not done
    assert reasons[0] == "migration paused: checking replicas (by ana)"
    resume(store, load(store), "ana")
    thread.join(20)
    assert done and done[0].status == "done" and done[0].rows_done == 120


def test_a_running_backfill_follows_the_throttle(db):
    _, engine = db
    insert_users(engine, list(range(1, 201)))
    store = EventStore(engine)
    throttle(store, load(store), 20, "ana")  # 200 rows would take 10 s
    _, thread, done = backfill_thread(engine, store, [])
    time.sleep(0.7)
    assert 0 < rows_done(store) <= 40  # about 20 rows per second, in chunks of at most 20
    started = time.monotonic()
    throttle(store, load(store), 0, "ana")  # the cap goes: the rest runs at full speed
    thread.join(20)
    assert done and done[0].rows_done == 200 and time.monotonic() - started < 8


def test_a_following_relay_pauses_resumes_and_is_throttled(db):
    _, engine = db
    store = EventStore(engine)
    relay = Relay(USERS, engine, store, batch_size=50)
    pause(store, load(store), "maintenance", "bo")
    insert_users(engine, list(range(1, 31)))
    stop, notes = threading.Event(), []
    thread = threading.Thread(target=follow, args=([relay], engine), daemon=True,
                              kwargs={"stop": stop, "poll_interval": POLL, "live": LiveControl(store, poll_s=POLL),
                                      "on_pause": notes.append})
    thread.start()
    try:
        wait_for(lambda: notes == ["migration paused: maintenance (by bo)"])
        time.sleep(0.3)
        assert relay.position() == 0 and backlog(engine, engine, [USERS]) == 30

        throttle(store, load(store), 10, "bo")
        resume(store, load(store), "bo")
        wait_for(lambda: relay.position() > 0)
        time.sleep(1.0)
        with engine.connect() as conn:
            relayed = get_offset(conn, offset_name("users"))
        assert 0 < relayed < 30  # 10 changes per second, batches of at most 10
        assert notes[-1] is None  # told once that the pause ended
        throttle(store, load(store), 0, "bo")
        wait_for(lambda: backlog(engine, engine, [USERS]) == 0, timeout=10)
        with engine.begin() as conn:
            conn.execute(text("UPDATE users SET full_name = 'Renamed' WHERE id = 1"))
        wait_for(lambda: backlog(engine, engine, [USERS]) == 0, timeout=10)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


def test_live_control_looks_at_the_stream_at_most_once_per_poll(db, monkeypatch):
    _, engine = db
    store = EventStore(engine)
    now = [0.0]
    live = LiveControl(store, poll_s=1.0, clock=lambda: now[0])
    loads: list[int] = []
    real_load = load
    monkeypatch.setattr("migrator.phases.control.load", lambda s, name: loads.append(1) or real_load(s, name))
    pause(store, load(store), "backup", "ana")
    assert live.pause_reason() is None  # within the poll interval: the state seen last
    now[0] = 1.0
    assert live.pause_reason() == "migration paused: backup (by ana)" and len(loads) == 1
    now[0] = 2.5
    assert live.max_rate() is None and len(loads) == 1  # the stream did not move: not read again
    throttle(store, load(store), 7, "bo")
    now[0] = 3.5
    assert live.max_rate() == 7 and live.throttle_note() == "throttled to 7/s (by bo)" and len(loads) == 2


def test_the_celery_relay_task_skips_while_paused_and_relays_max_rate_times_interval(db, monkeypatch):
    from es_app.settings import get_settings
    from migrator.relay.tasks import relay as relay_task

    url, engine = db
    monkeypatch.setenv("RELAY_INTERVAL_S", "2")
    monkeypatch.setattr("migrator.relay.tasks.publish_appended", lambda *a, **k: None)
    get_settings.cache_clear()
    store = EventStore(engine)
    insert_users(engine, list(range(1, 31)))
    pause(store, load(store), "maintenance", "bo")
    assert relay_task(url, url) == 0 and backlog(engine, engine, [USERS]) == 30
    resume(store, load(store), "bo")
    throttle(store, load(store), 5, "bo")  # 5/s x 2 s: ten changes per run
    assert relay_task(url, url) == 10 and backlog(engine, engine, [USERS]) == 20
    throttle(store, load(store), 0, "bo")
    assert relay_task(url, url) == 20 and backlog(engine, engine, [USERS]) == 0
    get_settings.cache_clear()


def test_the_backlog_at_a_check_counts_only_changes_waiting_at_the_check(db):
    from migrator.relay.runner import backlog_at_check

    _, engine = db
    store = EventStore(engine)
    relay = Relay(USERS, engine, store, batch_size=50)
    insert_users(engine, list(range(1, 11)))
    assert backlog_at_check(engine, engine, USERS, 0.0) == 10  # nobody relays: all still wait

    def relay_then_write_more() -> None:
        time.sleep(0.2)
        relay.drain()
        insert_users(engine, list(range(11, 16)))  # arrive after the check began: not counted

    worker = threading.Thread(target=relay_then_write_more)
    worker.start()
    assert backlog_at_check(engine, engine, USERS, 20.0) == 0
    worker.join()
    assert backlog(engine, engine, [USERS]) == 5
    assert backlog_at_check(engine, engine, USERS, 0.0) == backlog(engine, engine, [USERS])
