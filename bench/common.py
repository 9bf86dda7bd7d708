"""Helpers shared by every bench module: options, fresh databases, timing, tables.

A bench module exposes `main(argv: list[str] | None = None) -> int` and builds its
options with `parser(...)`, so `python -m bench` can pass the same flags to all.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import date
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence
from urllib.parse import urlparse

PG_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
BACKENDS = ("sqlite", "postgres")
LEGACY_BACKENDS = ("same", "mysql")  # where the legacy table lives: beside the event store's backend, or MariaDB


# -- options -------------------------------------------------------------------

def parser(description: str) -> argparse.ArgumentParser:
    """Returns an argument parser with the flags every bench understands."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run, not a measurement")
    p.add_argument("--backend", action="append", choices=BACKENDS, dest="backends",
                   help="run only on this backend (repeatable; default: sqlite and postgres)")
    p.add_argument("--markdown", action="store_true", help="print tables as Markdown (for docs/benchmarks.md)")
    return p


def parse(p: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Returns parsed options; `backends` defaults to every backend that is reachable."""
    args = p.parse_args(argv)
    if not args.backends:
        args.backends = ["sqlite"] + (["postgres"] if postgres_reachable() else [])
        if "postgres" not in args.backends:
            print(f"note: PostgreSQL at {PG_URL} is unreachable, running SQLite only", file=sys.stderr)
    return args


# -- databases -----------------------------------------------------------------

def postgres_reachable(url: str = PG_URL) -> bool:
    """Returns True when a TCP connection to the PostgreSQL server in `url` succeeds."""
    parsed = urlparse(url.replace("+psycopg", ""))
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 5432), timeout=2):
            return True
    except OSError:
        return False


def _with_db(url: str, dbname: str) -> str:
    return f"{url.rpartition('/')[0]}/{dbname}"


@contextlib.contextmanager
def empty_database(backend: str, prefix: str = "bench") -> Iterator[str]:
    """Yields the URL of a new, empty database (SQLite file or PostgreSQL database); drops it after."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix=f"{prefix}-") as tmp:
            yield f"sqlite:///{Path(tmp) / 'db.sqlite'}"
        return
    from sqlalchemy import create_engine, text

    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield _with_db(PG_URL, name)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextlib.contextmanager
def es_database(backend: str, prefix: str = "bench") -> Iterator[str]:
    """Yields the URL of a fresh database with every schema (event store, read model, legacy) at head."""
    from es_app.store import make_engine
    from migrator import schema

    with empty_database(backend, prefix) as url:
        engine = make_engine(url)
        try:
            schema.upgrade_all({"es": engine, "legacy": engine})
        finally:
            engine.dispose()
        yield url


def add_legacy_backend(p: argparse.ArgumentParser) -> None:
    """Adds `--legacy-backend same|mysql` (the benches that read a legacy table: backfill, verify)."""
    p.add_argument("--legacy-backend", choices=LEGACY_BACKENDS, default="same",
                   help="the legacy database: the event store's backend (default), or MySQL/MariaDB "
                        f"at TEST_MYSQL_URL ({MYSQL_URL}) beside an event store of each --backend")


def backend_label(backend: str, legacy_backend: str) -> str:
    """Returns the `backend` column of a bench table: the event store's backend, and the legacy one when it differs."""
    return backend if legacy_backend == "same" else f"{backend}, legacy mariadb"


@contextlib.contextmanager
def mysql_database(prefix: str = "bench") -> Iterator[str]:
    """Yields the URL of a new utf8mb4 MySQL/MariaDB database with the legacy schema at head; drops it after."""
    from sqlalchemy import create_engine, text

    from es_app.store import make_engine
    from migrator import schema

    admin = create_engine(MYSQL_URL, isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
        url = _with_db(MYSQL_URL, name)
        engine = make_engine(url)
        try:
            schema.upgrade_all({"legacy": engine})
        finally:
            engine.dispose()
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin.dispose()


def legacy_database(legacy_backend: str, backend: str, prefix: str = "bench") -> contextlib.AbstractContextManager[str]:
    """Returns the context manager of a fresh legacy database: `es_database(backend)` for "same", else MariaDB's."""
    return es_database(backend, prefix) if legacy_backend == "same" else mysql_database(prefix)


def postgres_parts(url: str) -> dict[str, str]:
    """Returns host, port, user, password and dbname of a PostgreSQL URL."""
    p = urlparse(url.replace("+psycopg", ""))
    return {"host": p.hostname or "127.0.0.1", "port": str(p.port or 5432), "user": p.username or "postgres",
            "password": p.password or "", "dbname": p.path.lstrip("/")}


# -- timing --------------------------------------------------------------------

@dataclasses.dataclass
class Timing:
    """Returns throughput and latency figures of `ops` operations that moved `items` items."""

    seconds: float
    ops: int
    items: int
    latencies: list[float] = dataclasses.field(default_factory=list)  # seconds per op
    cpu_s: float | None = None  # this process's CPU over the timed part (every thread), when measured
    server_cpu_s: float | None = None  # the database server's backends' over it (`ServerCpu`), when known

    def cpu_us_per_item(self, seconds: float | None) -> float | None:
        """Returns `seconds` (cpu_s or server_cpu_s) in microseconds per item; None when unknown."""
        return None if seconds is None or not self.items else seconds * 1e6 / self.items

    @property
    def per_second(self) -> float:
        return self.items / self.seconds if self.seconds else float("inf")

    @property
    def ms_per_op(self) -> float:
        return self.seconds * 1000 / self.ops if self.ops else 0.0

    def percentile_ms(self, q: float) -> float | None:
        return percentile(self.latencies, q) * 1000 if self.latencies else None


def percentile(values: Sequence[float], q: float) -> float:
    """Returns the q-th percentile (0..100) of `values` by nearest rank; 0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def median_ms(fn: Callable[[], Any], repeat: int, warmup: int = 2) -> float:
    """Returns the median wall time of `fn()` in milliseconds over `repeat` runs after `warmup` runs."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1000


class CpuUse:
    """Measures, over a `with` block, this process's CPU (every thread) and the database server's
    backends' (`server`; None where unknown); `timed` puts both on a Timing of that block."""

    def __init__(self, server: ServerCpu | None = None):
        self.server = server
        self.cpu_s: float | None = None
        self.server_cpu_s: float | None = None

    def __enter__(self) -> CpuUse:
        self._server0 = self.server.read() if self.server else None
        self._cpu0 = time.process_time()
        return self

    def __exit__(self, *_: object) -> None:
        self.cpu_s = time.process_time() - self._cpu0
        after = self.server.read() if self.server else None
        if self._server0 is not None and after is not None:
            self.server_cpu_s = max(cpu_delta(self._server0, after), 0.0)

    def timed(self, timing: Timing, share: float = 1.0) -> Timing:
        """Returns `timing` with this block's CPU figures, times `share` (the timed part's share of the block)."""
        timing.cpu_s = None if self.cpu_s is None else self.cpu_s * share
        timing.server_cpu_s = None if self.server_cpu_s is None else self.server_cpu_s * share
        return timing


def run_ops(op: Callable[[int], Any], n: int, items_per_op: int = 1, server: ServerCpu | None = None) -> Timing:
    """Returns the timing of `op(i)` for i in range(n), called one after another, with its CPU
    (and the database server's, from `server`)."""
    latencies = []
    with CpuUse(server) as cpu:
        start = time.perf_counter()
        for i in range(n):
            t0 = time.perf_counter()
            op(i)
            latencies.append(time.perf_counter() - t0)
        seconds = time.perf_counter() - start
    return cpu.timed(Timing(seconds, n, n * items_per_op, latencies))


def run_threads(op: Callable[[int, int], Any], threads: int, per_thread: int,
                items_per_op: int = 1, server: ServerCpu | None = None) -> Timing:
    """Returns the timing of `threads` threads each calling `op(thread, i)` `per_thread` times.

    The threads start together (a barrier); the wall time runs from the start to the
    last thread's end. An exception in any thread is re-raised here.
    """
    barrier = threading.Barrier(threads + 1)
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []

    def worker(t: int) -> None:
        barrier.wait()
        try:
            for i in range(per_thread):
                t0 = time.perf_counter()
                op(t, i)
                latencies[t].append(time.perf_counter() - t0)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            errors.append(exc)

    workers = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(threads)]
    for w in workers:
        w.start()
    with CpuUse(server) as cpu:
        barrier.wait()
        start = time.perf_counter()
        for w in workers:
            w.join()
        seconds = time.perf_counter() - start
    if errors:
        raise errors[0]
    flat = [x for lat in latencies for x in lat]
    return cpu.timed(Timing(seconds, len(flat), len(flat) * items_per_op, flat))


def cpu_seconds(pid: int) -> float | None:
    """Returns the CPU seconds (user + system, every thread) a process used so far; None where /proc is not."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_of(pids: Sequence[int]) -> dict[int, float]:
    """Returns each live process's CPU seconds so far."""
    return {pid: s for pid in pids if (s := cpu_seconds(pid)) is not None}


def run_seconds(pid: int) -> float | None:
    """Returns the CPU seconds a single-threaded process (a PostgreSQL backend) ran so far, to the
    nanosecond where /proc has schedstat (the ticks of `cpu_seconds` miss short bursts)."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return cpu_seconds(pid)


class ServerCpu:
    """Reads the CPU seconds used so far by the PostgreSQL backends serving one database, on a server on
    this host (whose processes /proc shows); `read` is None for any other database. The server's shared
    background work (WAL writer, checkpointer) is nobody's; connections named `leave_out` are not counted."""

    def __init__(self, database_url: str, leave_out: str | None = None):
        self.url, self.dbname = database_url, None
        parsed = urlparse(database_url.replace("+psycopg", ""))
        if parsed.scheme == "postgresql" and (parsed.hostname or "localhost") in ("localhost", "127.0.0.1", "::1"):
            self.dbname = parsed.path.lstrip("/")
        self.leave_out = leave_out
        self._admin: Any = None  # a psycopg connection on the bench's admin database, opened on first use

    def read(self) -> dict[int, float] | None:
        if self.dbname is None:
            return None
        import psycopg

        if self._admin is None:  # its own backend serves another database: not counted
            self._admin = psycopg.connect(PG_URL.replace("postgresql+psycopg", "postgresql"), autocommit=True)
        rows = self._admin.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s "
                                   "AND application_name IS DISTINCT FROM %s", (self.dbname, self.leave_out)).fetchall()
        return {pid: s for (pid,) in rows if (s := run_seconds(pid)) is not None}

    def close(self) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """Returns the CPU seconds used between two reads (a process that began in between counts whole;
    one that ended in between is lost: the pools keep their connections)."""
    return sum(s - before.get(pid, 0.0) for pid, s in after.items())


def ratio(ours: float | None, theirs: float | None) -> str:
    """Returns ours/theirs formatted like `1.23x`, or `-` when either side is missing."""
    if not ours or not theirs:
        return "-"
    return f"{ours / theirs:.2f}x"


def fmt(value: float | None, digits: int = 0) -> str:
    """Returns a number with thousands separators, or `-` for None."""
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


# -- tables --------------------------------------------------------------------

def machine_line() -> str:
    """Returns a one-line description of this machine and run (cores, OS, Python, date)."""
    import platform
    import sqlite3

    return (f"{os.cpu_count()} cores, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, run {date.today().isoformat()}")


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]],
                *, markdown: bool = False, caption: str | None = None) -> None:
    """Prints a table with rich (or as Markdown with `markdown=True`)."""
    cells = [[str(c) for c in row] for row in rows]
    if markdown:
        print(f"\n**{title}**\n")
        print("| " + " | ".join(columns) + " |")
        print("|" + "|".join("---" if i == 0 else "---:" for i in range(len(columns))) + "|")
        for row in cells:
            print("| " + " | ".join(row) + " |")
        if caption:
            print(f"\n{caption}")
        sys.stdout.flush()
        return
    from rich.console import Console
    from rich.table import Table

    console = Console() if sys.stdout.isatty() else Console(width=200)
    table = Table(title=title, caption=caption)
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i == 0 else "right")
    for row in cells:
        table.add_row(*row)
    console.print(table)
