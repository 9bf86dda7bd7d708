"""The relay as a Celery task in a real `celery -A migrator.worker` process: run by the beat, or woken by commits.

PostgreSQL + Redis; broker keys isolated by a unique prefix and removed afterwards.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import text

from es_app.store import make_engine
from migrator.capture import changelog as capture
from migrator.mapping import USERS
from migrator.capture.offsets import get_offset, offset_name
from tests.conftest import REDIS_URL, require_redis

from .celery_worker import clean_redis, new_prefix, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

BIN = Path(sys.executable).parent
T = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def env(postgres_databases, tmp_path):
    require_redis()
    prefix = new_prefix()
    values = {**os.environ, "ES_DATABASE_URL": postgres_databases.new(), "LEGACY_DATABASE_URL": postgres_databases.new(),
              "BROKER_URL": REDIS_URL, "BROKER_KEY_PREFIX": prefix, "PYTHONUNBUFFERED": "1", "CI": ""}
    yield values
    clean_redis(prefix)


@pytest.fixture
def spawn(tmp_path):
    procs: list[subprocess.Popen] = []

    def start(argv: list[str], env: dict[str, str], name: str) -> subprocess.Popen:
        proc = subprocess.Popen(argv, env=env, stdout=(tmp_path / f"{name}.log").open("w"), stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=tmp_path)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def worker_argv(tmp_path: Path, beat: bool) -> list[str]:
    return [str(BIN / "celery"), "-A", "migrator.worker", "worker", "-Q", "relay,projections,notifications",
            "--pool=solo", "--without-mingle", "--without-gossip", "--without-heartbeat", "--loglevel=INFO",
            "-n", f"relay-{uuid.uuid4().hex[:8]}@%h", *(["-B", "-s", str(tmp_path / "beat")] if beat else [])]


def legacy_writes(legacy, first: int, n: int) -> None:
    with legacy.begin() as conn:
        conn.execute(text("INSERT INTO users (id, email, full_name, is_active, created_at, updated_at) "
                          "VALUES (:i, :e, :n, :a, :t, :t)"),
                     [{"i": i, "e": f"u{i}@x.org", "n": f"User {i}", "a": True, "t": T} for i in range(first, first + n)])
        conn.execute(text("UPDATE users SET full_name = 'Renamed ' || id WHERE id >= :f AND id % 2 = 0"), {"f": first})


def relayed_and_projected(legacy, es, keys) -> bool:
    with legacy.connect() as conn:
        last = capture.latest_change_id(conn)
        names = {r[0]: r[1] for r in conn.execute(text("SELECT id, full_name FROM users"))}
    with es.connect() as conn:
        if get_offset(conn, offset_name("users")) < last:
            return False
        view = {r[0]: r[1] for r in conn.execute(text("SELECT legacy_key, name FROM users_view"))}
    return all(view.get(str(k)) == names[k] for k in keys)


def test_the_beat_runs_the_relay_and_the_worker_projects(env, spawn, tmp_path):
    legacy, es = make_engine(env["LEGACY_DATABASE_URL"]), make_engine(env["ES_DATABASE_URL"])
    capture.install(legacy, [USERS])
    legacy_writes(legacy, 1, 20)
    worker = spawn(worker_argv(tmp_path, beat=True), {**env, "RELAY_INTERVAL_S": "0.5"}, "worker")
    wait_until(lambda: relayed_and_projected(legacy, es, range(1, 21)), "the beat's relay and the projections",
               timeout=90)
    legacy_writes(legacy, 21, 10)  # later commits are picked up by the next beat tick
    wait_until(lambda: relayed_and_projected(legacy, es, range(1, 31)), "the next relay run", timeout=90)
    assert worker.poll() is None
    legacy.dispose()
    es.dispose()


def test_legacy_commits_wake_the_relay_workers(env, spawn, tmp_path):
    legacy, es = make_engine(env["LEGACY_DATABASE_URL"]), make_engine(env["ES_DATABASE_URL"])
    capture.install(legacy, [USERS])
    spawn(worker_argv(tmp_path, beat=False), env, "worker")  # no beat: only wake-ups run the relay
    waker = spawn([str(BIN / "migrator"), "relay", "--follow", "--wake-workers", "--poll-interval", "3600"],
                  env, "waker")
    log = tmp_path / "waker.log"
    wait_until(lambda: "waking the relay workers" in log.read_text(), "the waker to listen", timeout=60)
    legacy_writes(legacy, 1, 15)  # the commit's NOTIFY is the only thing that can start a relay run
    wait_until(lambda: relayed_and_projected(legacy, es, range(1, 16)), "a relay run woken by the commit", timeout=90)
    os.killpg(waker.pid, signal.SIGTERM)
    assert waker.wait(30) == 0
    legacy.dispose()
    es.dispose()
