"""MySQL/MariaDB capture: what the triggers cost the legacy writes, and what the sequencer costs.

    python -m bench.capture_mysql [--quick] [--rows N] [--markdown]

Runs on the MariaDB/MySQL server of `TEST_MYSQL_URL` (default
`mysql+pymysql://root@127.0.0.1:3306/test`; skipped with a note when unreachable), in a
database of its own, dropped at the end; the event store is an SQLite file.
- Capture overhead: the same legacy writes without and with the triggers — one UPDATE of
  all N rows, and N/20 transactions of a one-row UPDATE each (as `bench.relay` measures them),
  best of three rounds taken in turn.
- The sequencer: one pass numbering a backlog of N committed rows; a pass with nothing to
  number (what every relay batch and reader pays); the relay draining N inserts whose ids the
  relay itself has to give first, against the same drain once they are numbered (best of two).
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from urllib.parse import urlparse

from bench.common import fmt, machine_line, parser, print_table

MYSQL_URL = os.environ.get("TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
T = datetime(2026, 1, 1, tzinfo=UTC)
INSERT = ("INSERT INTO users (id, email, full_name, is_active, phone, created_at, updated_at) "
          "VALUES (:i, :e, :n, :a, :p, :t, :t)")


def _reachable() -> bool:
    parsed = urlparse(MYSQL_URL.replace("+pymysql", ""))
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 3306), timeout=2):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _legacy() -> Iterator[object]:
    """Yields an engine on a new MySQL database holding the legacy schema; drops it after."""
    from sqlalchemy import create_engine, text

    from es_app.store import make_engine
    from migrator import schema

    admin = create_engine(MYSQL_URL, isolation_level="AUTOCOMMIT")
    name = f"bench_capture_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
    engine = make_engine(f"{MYSQL_URL.rpartition('/')[0]}/{name}")
    try:
        schema.upgrade_all({"legacy": engine})
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin.dispose()


def _insert(legacy, first: int, n: int) -> None:
    from sqlalchemy import text

    for start in range(first, first + n, 5000):
        with legacy.begin() as conn:
            conn.execute(text(INSERT), [
                {"i": i, "e": f"user{i}@example.org", "n": f"User {i}", "a": i % 5 != 0,
                 "p": None if i % 3 == 0 else f"+1 555 {i:07d}", "t": T}
                for i in range(start, min(start + 5000, first + n))])


def _rename_all(legacy, suffix: str) -> float:
    from sqlalchemy import text

    t0 = time.perf_counter()
    with legacy.begin() as conn:
        conn.execute(text("UPDATE users SET full_name = CONCAT(full_name, :s)"), {"s": suffix})
    return time.perf_counter() - t0


def _one_row_transactions(legacy, n: int) -> float:
    from sqlalchemy import text

    t0 = time.perf_counter()
    for i in range(1, n + 1):
        with legacy.begin() as conn:
            conn.execute(text("UPDATE users SET phone = :p WHERE id = :i"), {"p": f"+44 {t0:.0f}{i}", "i": i})
    return time.perf_counter() - t0


def _drain(legacy, es_url: str) -> tuple[float, int]:
    from es_app.store import EventStore, make_engine
    from migrator import schema
    from migrator.mapping import USERS
    from migrator.relay.runner import Relay

    es = make_engine(es_url)
    try:
        schema.upgrade_all({"es": es})
        totals = Relay(USERS, legacy, EventStore(es)).drain()
    finally:
        es.dispose()
    return totals.seconds, totals.read


def run(n: int, rounds: int = 3) -> tuple[list[list[str]], list[list[str]]]:
    """Returns the tables' rows; each figure is the best of `rounds`, without and with capture in turn
    (the order would otherwise favour one side: InnoDB flushes in the background after a bulk write)."""
    from migrator.capture import changelog as capture
    from migrator.mapping import USERS

    overhead, sequencer = [], []
    with _legacy() as legacy:
        _insert(legacy, 1, n)
        single = max(200, n // 20)
        plain, captured = [float("inf")] * 2, [float("inf")] * 2
        for r in range(rounds):
            capture.remove(legacy, [USERS])
            plain = [min(plain[0], _rename_all(legacy, f"a{r}")), min(plain[1], _one_row_transactions(legacy, single))]
            capture.install(legacy, [USERS])
            captured = [min(captured[0], _rename_all(legacy, f"b{r}")),
                        min(captured[1], _one_row_transactions(legacy, single))]
        for what, rows, p, c in (("one UPDATE of every row", n, plain[0], captured[0]),
                                 ("one-row UPDATE transactions", single, plain[1], captured[1])):
            overhead.append(["mysql", what, fmt(rows), fmt(rows / p), fmt(rows / c), f"{c / p:.2f}x"])
        t0 = time.perf_counter()
        numbered = capture.number_committed(legacy)
        seconds = time.perf_counter() - t0
        sequencer.append(["a pass numbering a backlog", fmt(numbered), f"{seconds:.3f}", fmt(numbered / seconds)])
        passes = 200
        t0 = time.perf_counter()
        for _ in range(passes):
            capture.number_committed(legacy)
        empty_s = (time.perf_counter() - t0) / passes
        sequencer.append(["a pass with nothing to number", "0", f"{empty_s:.4f}", "-"])
    best: dict[bool, tuple[float, int]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-capture-mysql-") as tmp:
        for r in range(rounds - 1):
            for numbered_first in (False, True):
                with _legacy() as legacy:
                    capture.install(legacy, [USERS])
                    _insert(legacy, 1, n)
                    if numbered_first:
                        capture.number_committed(legacy)
                    found = _drain(legacy, f"sqlite:///{tmp}/es-{numbered_first}-{r}.db")
                    best[numbered_first] = min(best.get(numbered_first, found), found)
    for numbered_first, what in ((False, "relay drain, numbering included"),
                                 (True, "relay drain, rows numbered before")):
        seconds, read = best[numbered_first]
        sequencer.append([what, fmt(read), f"{seconds:.2f}", fmt(read / seconds)])
    return overhead, sequencer


def main(argv: Sequence[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=None, help="rows per workload (default 20,000; --quick 2,000)")
    args = p.parse_args(argv)
    if not _reachable():
        print(f"note: MySQL/MariaDB at {MYSQL_URL} is unreachable: skipped", file=sys.stderr)
        return 0
    n = args.rows or (2_000 if args.quick else 20_000)
    overhead, sequencer = run(n)
    print_table("Capture overhead on MySQL/MariaDB: legacy writes without and with the triggers",
                ["backend", "writes", "rows", "plain rows/s", "captured rows/s", "cost"], overhead,
                markdown=args.markdown, caption=machine_line())
    print_table("The MySQL sequencer: ids given after commit",
                ["what", "rows", "seconds", "rows/s"], sequencer, markdown=args.markdown, caption=machine_line())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
