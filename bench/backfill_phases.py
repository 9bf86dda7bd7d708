"""`python -m bench.backfill_phases [--rows N] [--batch-size B] [--backend B] [--quick] [--markdown]`

Where an inline backfill's time goes, in µs per row: the run of `bench.backfill` (SQL-generated
legacy rows, `migrator backfill`'s inline projection) with the store's and the users read
model's steps timed one by one, beside the raw bulk insert of the same event rows. *rest of the
append* is building the rows and the recorded events; *other* is what no step covers (the
projections' checkpoints and dead-letter checks, the run's checkpoint, the commit). Nothing is
read ahead (`read_process=False`; on PostgreSQL the read-ahead thread still runs, so there
reading and building overlap the rest and the steps add up to more than the total).
"""

from __future__ import annotations

import collections
import time
from typing import Any, Callable

from .backfill import raw_insert, seed_captured, written_rows
from .common import es_database, fmt, machine_line, parse, parser, print_table

STEPS = (
    ("read legacy chunk", "migrator.backfill.reader:ChunkReader.read_after"),
    ("build import events", "migrator.backfill.reader:ChunkReader.plan"),
    ("encode them (JSON, read back)", "migrator.backfill.reader:encode_events"),
    ("append lock + stream versions", "es_app.store.sqlite:SqliteEventStore._lock_and_read_versions "
                                      "es_app.store.postgres:PostgresEventStore._lock_and_read_versions"),
    ("insert events", "es_app.store.event_store:EventStore._insert_rows"),
    ("append (all)", "es_app.store.event_store:EventStore.append_batch_recorded"),
    ("read model: look up rows", "es_app.projections.users:UsersBatch.__init__"),
    ("read model: fold (User aggregate)", "es_app.projections.users:UsersBatch.apply"),
    ("read model: write rows", "es_app.projections.users:UsersBatch.flush"),
)


def _timed(seconds: collections.Counter, label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            seconds[label] += time.perf_counter() - started

    return timed


def measure(legacy_url: str, es_url: str, batch_size: int) -> tuple[int, float, dict[str, float]]:
    """Returns (rows, seconds, seconds per step) of one inline backfill with its steps timed."""
    import importlib

    from es_app.bootstrap import build, engine_for
    from es_app.settings import Settings
    from migrator.backfill.run import Backfill, BackfillOptions, projector_for
    from migrator.mapping import USERS

    seconds: collections.Counter = collections.Counter()
    originals = []
    for label, targets in STEPS:
        for target in targets.split():  # one per backend where the backends differ
            module, _, attr = target.partition(":")
            owner_name, _, name = attr.rpartition(".")  # a class's method, or a function of the module
            owner = importlib.import_module(module)
            owner = getattr(owner, owner_name) if owner_name else owner
            originals.append((owner, name, getattr(owner, name)))
            setattr(owner, name, _timed(seconds, label, getattr(owner, name)))
    try:
        es = build(Settings(es_database_url=es_url, legacy_database_url=legacy_url))
        legacy = engine_for(legacy_url)
        b = Backfill(USERS.bind(legacy), legacy, es.store, project=projector_for(es),
                     options=BackfillOptions(batch_size=batch_size, read_process=False))  # steps timed here
        b.start()
        started = time.perf_counter()
        run = b.run_to_end()
        total = time.perf_counter() - started
        es.engine.dispose()
    finally:
        for owner, name, fn in originals:
            setattr(owner, name, fn)
    return run.rows_done, total, dict(seconds)


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000, help="legacy rows to backfill (default 1,000,000)")
    p.add_argument("--batch-size", type=int, default=5000, help="rows per backfill chunk (default 5000)")
    args = parse(p, argv)
    n = 20_000 if args.quick else args.rows
    columns, per_backend = ["step"], {}
    for backend in args.backends:
        with es_database(backend, "bfp_legacy") as legacy_url, es_database(backend, "bfp_es") as es_url, \
                es_database(backend, "bfp_raw") as raw_url:
            from es_app.bootstrap import engine_for

            seed_captured(legacy_url, n)
            rows, total, steps = measure(legacy_url, es_url, args.batch_size)
            raw = raw_insert(raw_url, written_rows(es_url, args.batch_size, ("events",)))
            for url in (legacy_url, es_url, raw_url):
                engine_for(url).dispose()
        us = {label: s / rows * 1e6 for label, s in steps.items()}
        inner = sum(us.get(label, 0.0) for label in ("append lock + stream versions", "insert events"))
        us["rest of the append"] = us.pop("append (all)", 0.0) - inner
        us["other"] = total / rows * 1e6 - sum(us.values())
        us["total"] = total / rows * 1e6
        us["raw insert of the same rows (for scale)"] = raw / rows * 1e6
        per_backend[backend] = us
        columns.append(f"{backend} µs/row")
    labels = [label for label, _ in STEPS if label != "append (all)"]
    labels[5:5] = ["rest of the append"]
    labels += ["other", "total", "raw insert of the same rows (for scale)"]
    table = [[label, *(fmt(per_backend[b].get(label, 0.0), 1) for b in args.backends)] for label in labels]
    print_table(f"Backfill (inline), where the time goes: {fmt(n)} rows, chunks of {args.batch_size}", columns,
                table, markdown=args.markdown, caption=machine_line())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
