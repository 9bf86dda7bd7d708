"""`migrator pause / resume / throttle` reach a `migrator relay --follow` and a `migrator backfill` already
running in their own processes (no restart, no signal)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import text

from es_app.store import make_engine
from migrator.backfill.runs import load_run
from migrator.capture import changelog as capture
from migrator.capture.offsets import get_offset, offset_name
from migrator.cli import main
from migrator.mapping import USERS

MIGRATOR = str(Path(sys.executable).parent / "migrator")
T = datetime(2026, 1, 1, tzinfo=timezone.utc)


def insert(legacy, ids) -> None:
    with legacy.begin() as conn:
        conn.execute(text("INSERT INTO users (id, email, full_name, is_active, phone, created_at, updated_at) "
                          "VALUES (:id, :email, :name, TRUE, NULL, :t, :t)"),
                     [{"id": i, "email": f"u{i}@example.org", "name": f"User {i}", "t": T} for i in ids])


def wait_for(predicate, timeout=60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def offset(es) -> int:
    with es.connect() as conn:
        return get_offset(conn, offset_name("users"))


def test_a_following_relay_process_obeys_pause_and_resume(urls, capsys):
    legacy_url, es_url = urls
    legacy, es = make_engine(legacy_url), make_engine(es_url)
    capture.install(legacy, [USERS])
    assert main(["pause", "--reason", "maintenance", "--actor", "ana", "--es-url", es_url]) == 0
    proc = subprocess.Popen([MIGRATOR, "relay", "--follow", "--poll-interval", "0.1", "--no-project",
                             "--es-url", es_url, "--legacy-url", legacy_url],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "CI": "", "COLUMNS": "200", "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("following users")  # it runs, the migration paused
        paused = proc.stdout.readline()
        insert(legacy, range(1, 41))
        time.sleep(1.5)  # more than one look at the migration, many polls of the changelog
        assert proc.poll() is None and offset(es) == 0
        assert main(["resume", "--actor", "ana", "--es-url", es_url]) == 0
        assert wait_for(lambda: offset(es) == 40), "the relay did not go on after resume"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert paused.strip() == "paused: migration paused: maintenance (by ana)"
    assert out.splitlines()[0] == "resumed"
    legacy.dispose()
    es.dispose()


def test_a_running_backfill_process_follows_the_throttle(urls, capsys):
    legacy_url, es_url = urls
    legacy, es = make_engine(legacy_url), make_engine(es_url)
    capture.install(legacy, [USERS])
    insert(legacy, range(1, 301))
    assert main(["throttle", "--max-rate", "20", "--es-url", es_url]) == 0  # 300 rows would take 15 s
    proc = subprocess.Popen([MIGRATOR, "backfill", "--batch-size", "100", "--no-project",
                             "--es-url", es_url, "--legacy-url", legacy_url],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "CI": ""})

    def run():
        with es.connect() as conn:
            return load_run(conn, "users")

    try:
        assert wait_for(lambda: run() is not None and run().rows_done > 0)
        time.sleep(1.0)
        assert 0 < run().rows_done <= 60 and run().status == "running"
        assert main(["throttle", "--max-rate", "0", "--es-url", es_url]) == 0
        assert proc.wait(timeout=30) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert run().status == "done" and run().rows_done == 300
    legacy.dispose()
    es.dispose()
