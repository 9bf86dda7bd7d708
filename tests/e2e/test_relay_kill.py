"""Kill-and-resume: `migrator relay --follow` in a real process, SIGKILLed mid-run while the legacy app writes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import text

from es_app.store import EventStore, make_engine
from migrator.capture import changelog as capture
from migrator.capture.offsets import get_offset, offset_name
from migrator.mapping import USERS
from migrator.relay.runner import Relay
from migrator.verify import compare

MIGRATOR = str(Path(sys.executable).parent / "migrator")
T = datetime(2026, 1, 1, tzinfo=timezone.utc)
ROWS = 600


def start_relay(es_url: str, legacy_url: str) -> subprocess.Popen:
    """Starts `migrator relay --follow` with small batches, so a kill lands between and inside batches."""
    return subprocess.Popen([MIGRATOR, "relay", "--follow", "--batch-size", "25", "--poll-interval", "0.1",
                             "--no-project", "--es-url", es_url, "--legacy-url", legacy_url],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "CI": ""})


def offset(es) -> int:
    with es.connect() as conn:
        return get_offset(conn, offset_name("users"))


def wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def stream_events(store: EventStore):
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT stream_id, version, event_id, event_type, data FROM events "
                                 "ORDER BY stream_id, version")).all()
    return [(r.stream_id, r.version, r.event_id, r.event_type, str(r.data)) for r in rows]


def test_sigkill_and_resume_relays_every_change_exactly_once(new_database_url):
    legacy_url, es_url, reference_url = (new_database_url(n) for n in ("legacy", "es", "reference"))
    legacy, es = make_engine(legacy_url), make_engine(es_url)
    capture.install(legacy, [USERS])
    with legacy.begin() as conn:
        conn.execute(text("INSERT INTO users (id, email, full_name, is_active, created_at, updated_at) "
                          "VALUES (:i, :e, :n, :a, :t, :t)"),
                     [{"i": i, "e": f"u{i}@x.org", "n": f"User {i}", "a": True, "t": T} for i in range(1, ROWS + 1)])
    stop = threading.Event()

    def legacy_app_writes():  # keeps writing while the relay is killed and restarted
        n = 0
        while not stop.is_set():
            n += 1
            with legacy.begin() as conn:
                conn.execute(text("UPDATE users SET full_name = :n WHERE id = :i"), {"n": f"Edit {n}", "i": n % ROWS + 1})
                if n % 7 == 0:
                    conn.execute(text("DELETE FROM users WHERE id = :i"), {"i": n % ROWS + 1})
            time.sleep(0.002)

    writer = threading.Thread(target=legacy_app_writes)
    writer.start()
    kills = 0
    try:
        for target in (100, 400):
            proc = start_relay(es_url, legacy_url)
            try:
                assert wait_for(lambda: offset(es) >= target), proc.stderr.read1().decode() if proc.poll() else "slow"
            finally:
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
            assert proc.returncode == -signal.SIGKILL
            kills += 1
    finally:
        stop.set()
        writer.join(30)
    assert kills == 2
    # resume once more in a real process: drain the backlog and exit
    with legacy.connect() as conn:
        last = capture.latest_change_id(conn)
    done = subprocess.run([MIGRATOR, "relay", "--no-project", "--es-url", es_url, "--legacy-url", legacy_url],
                          capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()
    assert offset(es) == last
    # the killed-and-resumed relay wrote exactly what one uninterrupted relay writes
    reference = EventStore(make_engine(reference_url))
    Relay(USERS, legacy, reference).drain()
    store = EventStore(es)
    assert stream_events(store) == stream_events(reference)
    mapping = USERS.bind(legacy)
    with legacy.connect() as conn:
        rows = {r["id"]: r for r in conn.execute(text("SELECT * FROM users")).mappings()}
    assert 0 < len(rows) < ROWS  # some were deleted
    assert compare(legacy, store, mapping, range(1, ROWS + 1)).lines() == []
    for engine in (legacy, es, reference.engine):
        engine.dispose()
