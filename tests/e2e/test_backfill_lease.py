"""Two `migrator backfill --resume` processes at once: the second refuses with one line naming the
first (host, pid, since when); once the first is SIGKILLed, its lease expires after --lease-ttl
and a resume proceeds."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

from sqlalchemy import text

from es_app.store import make_engine
from migrator.capture import changelog as capture
from migrator.mapping import USERS
from migrator.seed import seed_users

TTL = "3"


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from migrator.cli import main; sys.exit(main())", *args]


def _lease_pid(engine) -> int | None:
    with engine.connect() as conn:
        return conn.execute(text("SELECT pid FROM migrator_leases WHERE owner <> ''")).scalar()


def test_a_second_run_refuses_and_a_killed_runs_lease_expires(new_database_url, tmp_path):
    url = new_database_url("lease")
    engine = make_engine(url)
    seed_users(engine, 300, seed=3, pool_size=50)
    capture.install(engine, [USERS])
    pause = tmp_path / "pause"
    pause.touch()
    urls = ("--es-url", url, "--legacy-url", url)
    env = {**os.environ, "COLUMNS": "200"}
    first = subprocess.Popen(_cli("backfill", "--pause-file", str(pause), "--lease-ttl", TTL, *urls), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while _lease_pid(engine) != first.pid and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _lease_pid(engine) == first.pid, first.stderr.read() if first.poll() is not None else "no lease"

        second = subprocess.run(_cli("backfill", "--resume", *urls), capture_output=True, text=True, env=env,
                                timeout=120)
        assert second.returncode != 0
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in second.stderr, second.stderr
        assert (f"the backfill of users is already running on host {socket.gethostname()} (pid {first.pid}) since"
                in lines[0])

        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        third = subprocess.run(_cli("backfill", "--resume", *urls), capture_output=True, text=True, env=env,
                               timeout=120)
        if third.returncode != 0:  # the dead run's lease has not expired yet: refused, naming it
            assert f"(pid {first.pid})" in third.stderr and len(third.stderr.strip().splitlines()) == 1
            time.sleep(float(TTL) + 0.5)
        pause.unlink()
        resumed = subprocess.run(_cli("backfill", "--resume", *urls), capture_output=True, text=True, env=env,
                                 timeout=300)
        assert resumed.returncode == 0, resumed.stderr
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT rows_imported, status FROM migrator_backfill_runs")).one() == (300, "done")
        assert conn.execute(text("SELECT count(*) FROM migrator_leases WHERE owner <> ''")).scalar() == 0
    engine.dispose()
