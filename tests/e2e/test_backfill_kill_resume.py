"""Kill-and-resume of `migrator backfill`: a real process, SIGKILLed at several points (once with
its reader process, which must then end by itself), then `--resume` finishes with every row
imported exactly once and the read model complete."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import text

from es_app.bootstrap import engine_for
from es_app.store import EventStore, make_engine
from migrator import schema
from migrator.capture import changelog as capture
from migrator.cli import main
from migrator.mapping import USERS
from migrator.seed import seed_users
from tests.integration.backfill_helpers import differences, import_counts

ROWS = {"sqlite": 6_000, "postgres": 6_000}  # enough that a kill at 55% lands before the end
LEASE_TTL = 1.0  # a killed run's lease lives this long (see migrator.backfill.leases); the next run waits it out


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from migrator.cli import main; sys.exit(main())", *args]


def _rows_done(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT coalesce(max(rows_done), 0) FROM migrator_backfill_runs")).scalar()


def _children(pid: int) -> list[int]:
    """Returns the pids of the live processes whose parent is `pid` (Linux /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry))
    return found


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _all_gone(pids: list[int], timeout_s: float = 30) -> bool:
    deadline = time.monotonic() + timeout_s
    while not all(_gone(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return all(_gone(p) for p in pids)


def _kill_once_started(url: str, engine, after_rows: int, *flags: str, legacy_url: str | None = None) -> int:
    """Starts a backfill, SIGKILLs it once its checkpoint passed `after_rows`. Returns rows done then.
    A reader process left behind must end by itself. `url` is the event store's (and by default the legacy
    database's), `engine` the event store's."""
    proc = subprocess.Popen(_cli("backfill", "--batch-size", "200", "--resume", "--lease-ttl", str(LEASE_TTL),
                                 *flags, "--es-url", url, "--legacy-url", legacy_url or url),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "COLUMNS": "120"})
    children: list[int] = []
    try:
        while proc.poll() is None and _rows_done(engine) <= after_rows:
            time.sleep(0.02)
        time.sleep(random.uniform(0, 0.05))  # land anywhere: mid-read, mid-append, mid-projection
        assert proc.poll() is None, f"the backfill ended before it could be killed: {proc.stderr.read()}"
        children = _children(proc.pid)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    if "--read-process" in flags:
        assert children, "the backfill ran without its reader process"
    assert _all_gone(children), "a reader process outlived the killed backfill"
    time.sleep(LEASE_TTL + 0.2)  # its lease expires
    return _rows_done(engine)


def test_sigkilled_backfill_resumes_with_no_duplicates_and_no_gaps(new_database_url, backend, capsys):
    url = new_database_url("killbf")
    engine = make_engine(url)
    rows = ROWS[backend]
    seed_users(engine, rows, seed=7, pool_size=100)
    capture.install(engine, [USERS])
    done = 0
    for fraction, flags in ((0.15, ("--read-process",)), (0.55, ("--no-read-process",))):
        done = _kill_once_started(url, engine, max(done, int(rows * fraction)), *flags)
        assert 0 < done < rows
    assert main(["backfill", "--es-url", url, "--legacy-url", url]) == 1  # unfinished: say what to pass
    err = capsys.readouterr().err
    engine_for(url).dispose()
    assert "--resume" in err and "--restart" in err and len(err.strip().splitlines()) == 1
    finish = subprocess.run(_cli("backfill", "--resume", "--es-url", url, "--legacy-url", url),
                            capture_output=True, text=True, timeout=300)
    assert finish.returncode == 0, finish.stderr
    store = EventStore(engine)
    counts = import_counts(store, USERS.bind(engine))
    assert len(counts) == rows and set(counts.values()) == {1}
    assert differences(engine, store, USERS.bind(engine)) == []
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM events")).scalar() == rows
        assert conn.execute(text("SELECT rows_done, rows_imported, status FROM migrator_backfill_runs")).one() == (
            rows, rows, "done")
        assert conn.execute(text("SELECT count(*) FROM users_view")).scalar() == rows
    engine.dispose()


@pytest.mark.mysql
def test_sigkilled_backfill_from_mariadb_resumes_with_no_duplicates_and_no_gaps(mysql_databases, tmp_path):
    legacy_url, es_url = mysql_databases.new(), f"sqlite:///{tmp_path / 'es.db'}"
    legacy, es = make_engine(legacy_url), make_engine(es_url)
    schema.upgrade_all({"es": es})
    rows = 6_000
    seed_users(legacy, rows, seed=7, pool_size=100)
    capture.install(legacy, [USERS])
    done = 0
    for fraction, flags in ((0.15, ("--read-process",)), (0.55, ("--no-read-process",))):
        done = _kill_once_started(es_url, es, max(done, int(rows * fraction)), *flags, legacy_url=legacy_url)
        assert 0 < done < rows
    finish = subprocess.run(_cli("backfill", "--resume", "--es-url", es_url, "--legacy-url", legacy_url),
                            capture_output=True, text=True, timeout=300)
    assert finish.returncode == 0, finish.stderr
    store = EventStore(es)
    counts = import_counts(store, USERS.bind(legacy))
    assert len(counts) == rows and set(counts.values()) == {1}
    assert differences(legacy, store, USERS.bind(legacy)) == []
    with es.connect() as conn:
        assert conn.execute(text("SELECT rows_done, rows_imported, status FROM migrator_backfill_runs")).one() == (
            rows, rows, "done")
        assert conn.execute(text("SELECT count(*) FROM users_view")).scalar() == rows
    legacy.dispose()
    es.dispose()


def test_ctrl_c_stops_the_backfill_and_its_reader_with_exit_130_and_no_traceback(new_database_url, backend):
    url = new_database_url("intbf")
    engine = make_engine(url)
    seed_users(engine, ROWS[backend], seed=8, pool_size=100)
    capture.install(engine, [USERS])
    proc = subprocess.Popen(_cli("backfill", "--batch-size", "100", "--read-process", "--es-url", url,
                                 "--legacy-url", url),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as a terminal has it
    try:
        while proc.poll() is None and _rows_done(engine) <= 500:
            time.sleep(0.02)
        children = _children(proc.pid)
        os.killpg(proc.pid, signal.SIGINT)  # ^C reaches the whole foreground group
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err, err
    assert children and _all_gone(children)
    assert 0 < _rows_done(engine) < ROWS[backend]  # what was stored stays, for --resume
    engine.dispose()
