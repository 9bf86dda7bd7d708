"""Legacy seed: rows/s of `migrator seed` (factory-boy rows, bulk insert) on SQLite and PostgreSQL.

Run: `python -m bench.legacy_seed [--users N] [--workers W] [--quick] [--backend sqlite] [--legacy-backend mysql]
[--markdown]` (`--legacy-backend mysql`: into MySQL/MariaDB instead, executemany of multi-row INSERTs).
Each backend gets a fresh database at schema head; rows/s covers building the rows
(factory-boy + Faker in W processes) and inserting them (executemany / COPY, a commit per chunk);
insert-only rows/s is the same rows over the time the inserting process spent in the database
(email checks, insert, commit) — the ceiling if building were free.
"""

from __future__ import annotations

from typing import Sequence

from .common import add_legacy_backend, fmt, legacy_database, machine_line, parse, parser, print_table

FULL_USERS = 1_000_000
QUICK_USERS = 20_000


def run(backend: str, users: int, workers: int, legacy_backend: str = "same") -> list[str]:
    """Returns one table row: backend, users, workers, seconds, rows/s, insert-only rows/s, rows afterwards."""
    from legacy_app.db import make_engine
    from migrator.seed import seed_users

    with legacy_database(legacy_backend, backend, "bench_seed") as url:
        engine = make_engine(url)
        try:
            report = seed_users(engine, users, workers=workers)
        finally:
            engine.dispose()
    return ["mariadb" if legacy_backend == "mysql" else backend, fmt(users), str(workers), fmt(report.seconds, 1), fmt(report.rows_per_s),
            fmt(report.insert_rows_per_s), fmt(report.total_rows)]


def main(argv: Sequence[str] | None = None) -> int:
    from migrator.seed import default_workers

    p = parser("Legacy seed: rows/s of `migrator seed`.")
    p.add_argument("--users", type=int, default=None, help=f"rows to seed (default {FULL_USERS:,}; "
                                                            f"--quick: {QUICK_USERS:,})")
    p.add_argument("--workers", type=int, default=None, help="processes building rows (default: CPUs, max 4)")
    add_legacy_backend(p)
    args = parse(p, argv)
    users = args.users or (QUICK_USERS if args.quick else FULL_USERS)
    workers = default_workers() if args.workers is None else args.workers
    backends = args.backends if args.legacy_backend == "same" else args.backends[:1]  # the legacy database only
    rows = [run(backend, users, workers, args.legacy_backend) for backend in backends]
    print_table("Legacy seed (migrator seed)",
                ["backend", "users", "workers", "seconds", "rows/s", "insert-only rows/s", "rows after"],
                rows, markdown=args.markdown, caption=machine_line())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
