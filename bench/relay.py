"""Relay throughput in changes/s, and what capture costs the legacy writes, on SQLite and PostgreSQL.

    python -m bench.relay [--quick] [--backend sqlite|postgres] [--changes N] [--batch-size B ...] [--markdown]

Legacy and event store live in two databases. Each workload writes N legacy changes with
capture installed, then times `Relay.drain()` from the backlog to empty:
- inserts: N new rows, each relayed as one import event;
- updates: one name change per row on streams that exist (one change event each);
- first touch: rows written before capture, each updated once (an import of the old row
  plus the change: two events per change).
Capture overhead: the same legacy writes timed without and with the triggers — one UPDATE
of all N rows, and N/20 transactions of a one-row UPDATE each (what a CRUD app does).
"""

from __future__ import annotations

import contextlib
import time
from datetime import datetime, timezone
from typing import Iterator, Sequence

from bench.common import es_database, fmt, machine_line, parse, parser, print_table

T = datetime(2026, 1, 1, tzinfo=timezone.utc)
INSERT = ("INSERT INTO users (id, email, full_name, is_active, phone, created_at, updated_at) "
          "VALUES (:i, :e, :n, :a, :p, :t, :t)")


def _rows(first: int, n: int) -> list[dict]:
    return [{"i": i, "e": f"user{i}@example.org", "n": f"User {i}", "a": i % 5 != 0,
             "p": None if i % 3 == 0 else f"+1 555 {i:07d}", "t": T} for i in range(first, first + n)]


def _insert(legacy, first: int, n: int) -> None:  # noqa: ANN001
    from sqlalchemy import text

    for start in range(first, first + n, 5000):
        with legacy.begin() as conn:
            conn.execute(text(INSERT), _rows(start, min(5000, first + n - start)))


def _rename_all(legacy, suffix: str) -> float:  # noqa: ANN001
    from sqlalchemy import text

    t0 = time.perf_counter()
    with legacy.begin() as conn:
        conn.execute(text("UPDATE users SET full_name = full_name || :s"), {"s": suffix})
    return time.perf_counter() - t0


@contextlib.contextmanager
def _databases(backend: str) -> Iterator[tuple[object, object]]:
    from es_app.store import make_engine

    with es_database(backend, "bench_relay_legacy") as legacy_url, es_database(backend, "bench_relay_es") as es_url:
        legacy, es = make_engine(legacy_url), make_engine(es_url)
        try:
            yield legacy, es
        finally:
            legacy.dispose()
            es.dispose()


def _drain(legacy, es, batch_size: int) -> tuple[float, int, int]:  # noqa: ANN001
    from es_app.store import EventStore
    from migrator.mapping import USERS
    from migrator.relay.runner import Relay

    totals = Relay(USERS, legacy, EventStore(es), batch_size=batch_size).drain()
    return totals.seconds, totals.read, totals.events


def run_backend(backend: str, n: int, batch_sizes: Sequence[int]) -> tuple[list[list[str]], list[list[str]]]:
    from migrator.capture import changelog as capture
    from migrator.mapping import USERS

    relay_rows, overhead_rows = [], []
    for size in batch_sizes:
        with _databases(backend) as (legacy, es):
            capture.install(legacy, [USERS])
            _insert(legacy, 1, n)
            for what in ("inserts", "updates"):
                if what == "updates":
                    _rename_all(legacy, " (renamed)")
                seconds, read, events = _drain(legacy, es, size)
                relay_rows.append([backend, what, fmt(size), fmt(read), fmt(events), f"{seconds:.2f}",
                                   fmt(read / seconds)])
        with _databases(backend) as (legacy, es):
            _insert(legacy, 1, n)
            capture.install(legacy, [USERS])
            _rename_all(legacy, " (first touch)")
            seconds, read, events = _drain(legacy, es, size)
            relay_rows.append([backend, "first touch", fmt(size), fmt(read), fmt(events), f"{seconds:.2f}",
                               fmt(read / seconds)])
    with _databases(backend) as (legacy, _):
        _insert(legacy, 1, n)
        single = max(200, n // 20)
        plain = [min(_rename_all(legacy, "a") for _ in range(2)), _one_row_transactions(legacy, single)]
        capture.install(legacy, [USERS])
        captured = [min(_rename_all(legacy, "b") for _ in range(2)), _one_row_transactions(legacy, single)]
        for what, rows, p, c in (("one UPDATE of every row", n, plain[0], captured[0]),
                                 ("one-row UPDATE transactions", single, plain[1], captured[1])):
            overhead_rows.append([backend, what, fmt(rows), fmt(rows / p), fmt(rows / c), f"{c / p:.2f}x"])
    return relay_rows, overhead_rows


def _one_row_transactions(legacy, n: int) -> float:  # noqa: ANN001
    """Returns the seconds of `n` transactions of one single-row UPDATE each (what a CRUD app does)."""
    from sqlalchemy import text

    t0 = time.perf_counter()
    for i in range(1, n + 1):
        with legacy.begin() as conn:
            conn.execute(text("UPDATE users SET phone = :p WHERE id = :i"), {"p": f"+44 {t0:.0f}{i}", "i": i})
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--changes", type=int, default=None, help="changes per workload (default 20,000; --quick 2,000)")
    p.add_argument("--batch-size", type=int, action="append", dest="batch_sizes",
                   help="relay batch size (repeatable; default 1000)")
    args = parse(p, argv)
    n = args.changes or (2_000 if args.quick else 20_000)
    relay_rows, overhead_rows = [], []
    for backend in args.backends:
        r, o = run_backend(backend, n, args.batch_sizes or [1000])
        relay_rows += r
        overhead_rows += o
    print_table("Relay: changelog -> events (drain from a full backlog, one process)",
                ["backend", "workload", "batch", "changes", "events", "seconds", "changes/s"], relay_rows,
                markdown=args.markdown, caption=machine_line())
    print_table("Capture overhead: legacy writes without and with the triggers",
                ["backend", "writes", "rows", "plain rows/s", "captured rows/s", "cost"],
                overhead_rows, markdown=args.markdown, caption=machine_line())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
