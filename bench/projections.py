"""Projection catch-up rate: seed N user events with the store's append_batch, then time the runner from 0.

    python -m bench.projections [--quick] [--backend sqlite|postgres] [--events N] [--batch-size B ...]

Measures the users read model (users_view) alone, the notifications outbox alone,
a rebuild (blue/green) and 4 shards run one after the other in this process (the
slowest one is what each of 4 machines would take). Goal on PostgreSQL: >= 20,000 events/s.

On a shared machine wall time says little, so each row also gives events per CPU
second: this process's CPU time plus, on PostgreSQL, the CPU time of the server
processes serving this database (read from /proc; the server must be local).
"""

from __future__ import annotations

import time
import uuid
from typing import Sequence

from bench.common import ServerCpu, cpu_delta, es_database, fmt, machine_line, parse, parser, print_table

EVENTS_PER_USER = 4  # registered, renamed, email changed, phone changed


def seed(container, events: int) -> int:  # noqa: ANN001
    """Returns the number of events appended: users of EVENTS_PER_USER events each, 1,000 streams a transaction."""
    from es_app.store import ExpectedVersion, NewEvent, write_transaction

    users = max(1, events // EVENTS_PER_USER)
    done = 0
    for start in range(0, users, 1000):
        items = []
        for i in range(start, min(users, start + 1000)):
            uid = f"user-{uuid.uuid4()}"
            items.append((uid, [
                NewEvent("UserRegistered", {"name": f"User {i}", "email": f"u{i}@example.org", "phone": None},
                         schema_version=2),
                NewEvent("UserNameChanged", {"name": f"User {i} Renamed"}),
                NewEvent("UserEmailChanged", {"email": f"u{i}.new@example.org"}),
                NewEvent("UserPhoneChanged", {"phone": f"+1 555 {i:06d}"}),
            ], ExpectedVersion.NO_STREAM))
        with write_transaction(container.engine) as conn:
            container.store.append_batch(conn, items)
        done += len(items) * EVENTS_PER_USER
    return done


def _analyze(container) -> None:  # noqa: ANN001
    """Gives PostgreSQL statistics of the freshly loaded events, as autovacuum would within a minute.

    Without them it plans the feed read as a sort of every remaining event, for every batch.
    """
    from sqlalchemy import text

    if container.engine.dialect.name != "sqlite":
        with container.engine.connect() as conn:
            conn.execute(text("ANALYZE events"))
            conn.commit()


def _reset(container) -> None:  # noqa: ANN001
    from es_app.projections.tables import notifications, projection_checkpoints, users_view

    with container.engine.begin() as conn:
        for table in (users_view, notifications, projection_checkpoints):
            conn.execute(table.delete())


class Run:
    """Returns wall seconds and CPU seconds (ours + the database server's) of one call."""

    def __init__(self, server: ServerCpu, fn) -> None:  # noqa: ANN001
        before, cpu0, t0 = server.read(), time.process_time(), time.perf_counter()
        fn()
        self.seconds = time.perf_counter() - t0
        cpu, after = time.process_time() - cpu0, server.read()
        if server.dbname is None:  # SQLite runs in this process; a server elsewhere is unknown
            self.cpu = None if server.url.startswith("postgresql") else cpu
        else:
            self.cpu = cpu + max(cpu_delta(before or {}, after or {}), 0.0)

    def row(self, backend: str, what: str, batch: str, n: int) -> list[str]:
        return [backend, what, batch, fmt(n), f"{self.seconds:.2f}", fmt(n / self.seconds),
                fmt(n / self.cpu) if self.cpu else "-"]


def run_backend(backend: str, events: int, batch_sizes: Sequence[int]) -> list[list[str]]:
    from es_app.bootstrap import build
    from es_app.projections import run_projections
    from es_app.projections.rebuild import rebuild_users
    from es_app.settings import Settings

    rows = []
    with es_database(backend, prefix="bench_proj") as url:
        es, server = build(Settings(es_database_url=url)), ServerCpu(url)
        seeded = Run(server, lambda: seed(es, events))
        n = es.store.head_position()
        _analyze(es)
        rows.append(seeded.row(backend, "seed (append_batch)", "-", n))
        for size in batch_sizes:
            _reset(es)
            rows.append(Run(server, lambda: run_projections(es, names=["users"], batch_size=size))
                        .row(backend, "users_view catch-up", fmt(size), n))
        size = batch_sizes[-1]
        rows.append(Run(server, lambda: run_projections(es, names=["notifications"], batch_size=size))
                    .row(backend, "notifications outbox", fmt(size), n))
        rows.append(Run(server, lambda: rebuild_users(es, batch_size=size)).row(backend, "rebuild (blue/green)",
                                                                           fmt(size), n))
        _reset(es)
        shards = [Run(server, lambda s=s: run_projections(es, shard=s, shards=4, names=["users"], batch_size=size))
                  for s in range(4)]
        rows.append(max(shards, key=lambda r: r.seconds).row(backend, "1 of 4 shards (slowest)", fmt(size), n))
        es.engine.dispose()
        server.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=None, help="events to seed (default 200,000; --quick 8,000)")
    p.add_argument("--batch-size", type=int, action="append", dest="batch_sizes",
                   help="runner batch size (repeatable; default 500 and 2000)")
    args = parse(p, argv)
    events = args.events or (8_000 if args.quick else 200_000)
    batch_sizes = args.batch_sizes or [500, 2000]
    rows = []
    for backend in args.backends:
        rows.extend(run_backend(backend, events, batch_sizes))
    print_table("Projection catch-up (from position 0, one process)",
                ["backend", "what", "batch", "events", "seconds", "events/s", "events/CPU-s"], rows,
                markdown=args.markdown, caption=machine_line())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
