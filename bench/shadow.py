"""`python -m bench.shadow [--users N] [--reads N] [--threads T] [--rate R] [--backend B] [--quick] [--markdown]`

Legacy API read latency (p50/p99) in the three reads modes under the same load: `legacy` (the
legacy table), `shadow` (legacy serves; the sampled reads are also read from the read model in the
background and compared — every user, the worst case, then 10% of them) and `new` (the read model
serves, after its read-your-writes look at the relay and projection).

The legacy app runs with live routes, started as `migrator serve legacy` in its own process, on
loopback. T client threads (httpx) send the same mix in every mode — nine gets of a random user for
one search page — under two loads: closed loop (each thread sends its next read as soon as the
previous one answered: the server saturated, what shadowing costs in throughput) and paced (R reads
per second in all, default half the legacy mode's saturated throughput; latency counted from when
each read was due: what a user of a server with headroom sees). N legacy users are captured,
backfilled, relayed and projected first, so the read model holds them all; the legacy table and the
event store share one database.
The issue's goal: shadow adds at most 10% to the legacy p50.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from bench.common import Timing, es_database, fmt, machine_line, parse, parser, print_table, run_threads

MODES = (("legacy", 100.0), ("shadow", 100.0), ("shadow", 10.0), ("new", 100.0))  # (reads mode, percent)
FULL_USERS, QUICK_USERS = 20_000, 500
FULL_READS, QUICK_READS = 20_000, 600
SEARCH_EVERY = 10


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed(url: str, users: int) -> None:
    """Creates `users` legacy users and carries them into the read model (capture, backfill, relay, projections)."""
    from es_app.bootstrap import build, engine_for
    from es_app.projections import run_projections
    from es_app.settings import Settings
    from legacy_app.db import Database
    from legacy_app.models import User
    from migrator.cli import main
    from migrator.mapping import USERS
    from migrator.relay.runner import relays_for

    database = Database.connect(url)
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    with database.write_session() as session:
        session.add_all([User(email=f"user{i}@example.org", full_name=f"User {i}", is_active=i % 7 != 0,
                              phone=None if i % 3 == 0 else f"+1 555 {i:06d}", created_at=t0 + timedelta(minutes=i),
                              updated_at=t0 + timedelta(minutes=i)) for i in range(1, users + 1)])
        session.commit()
    database.dispose()
    urls = ["--es-url", url, "--legacy-url", url]
    for argv in (["capture", "install", "--legacy-url", url], ["backfill", *urls],
                 ["advance", "--to", "backfilled", "--force", "--reason", "bench", "--actor", "bench", *urls]):
        with contextlib.redirect_stdout(io.StringIO()):
            code = main(argv)
        if code != 0:
            raise RuntimeError(f"migrator {' '.join(argv[:2])} failed")
    es = build(Settings(es_database_url=url))
    for relay in relays_for([USERS], engine_for(url), es.store):
        relay.drain()
    run_projections(es)


class Served:
    """The legacy app with live routes, as `migrator serve legacy` runs it, in its own process (so the
    client threads of this process do not share its interpreter lock)."""

    def __init__(self, url: str):
        self.url = url
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Served:
        import httpx

        env = {**os.environ, "ROUTES_POLL_S": "0.2", "ES_DATABASE_URL": self.url, "LEGACY_DATABASE_URL": self.url}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "migrator", "serve", "legacy", "--port", str(self.port), "--log-level", "warning",
             "--es-url", self.url, "--legacy-url", self.url], env=env, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"migrator serve legacy exited with {self.process.returncode}")
            try:
                httpx.get(f"{self.base}/metrics", timeout=1.0)
                return self
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError("migrator serve legacy did not answer within 60 s") from None
                time.sleep(0.1)

    def __exit__(self, *_: object) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def metric(self, line_start: str) -> float:
        import httpx

        for line in httpx.get(f"{self.base}/metrics").text.splitlines():
            if line.startswith(line_start):
                return float(line.split()[-1])
        return 0.0


def set_mode(url: str, served: Served, mode: str, percent: float) -> None:
    """Sets the reads mode and waits until the running app serves a read in it."""
    import httpx

    from es_app.bootstrap import build
    from es_app.settings import Settings
    from migrator.phases import load
    from migrator.shadow.modes import set_reads

    es = build(Settings(es_database_url=url))
    set_reads(es.store, load(es.store), mode, percent, "bench")
    source = "read_model" if mode == "new" else "legacy"
    key = f'legacy_api_reads_total{{mode="{mode}",served="{source}"}}'
    before = served.metric(key)
    while served.metric(key) <= before:
        httpx.get(f"{served.base}/users/1")
        time.sleep(0.05)
    time.sleep(0.5)  # past two polls of the routes: a percent change on the same mode is picked up too


def measure(served: Served, users: int, reads: int, threads: int) -> Timing:
    """Returns the timing of `reads` reads by `threads` client threads (the same seeded mix in every mode)."""
    import httpx

    clients = [httpx.Client(base_url=served.base) for _ in range(threads)]
    plans = [random.Random(t) for t in range(threads)]

    def one(t: int, i: int) -> None:
        rng = plans[t]
        if i % SEARCH_EVERY == SEARCH_EVERY - 1:
            r = clients[t].get("/users", params={"search": f"user {rng.randint(1, 99)}", "limit": 20})
        else:
            r = clients[t].get(f"/users/{rng.randint(1, users)}")
        if r.status_code != 200:
            raise RuntimeError(f"{r.request.url}: {r.status_code} {r.text[:200]}")

    try:
        run_threads(one, threads, max(10, reads // (threads * 10)))  # warm-up
        return run_threads(one, threads, reads // threads)
    finally:
        for c in clients:
            c.close()


def measure_paced(served: Served, users: int, reads: int, threads: int, rate: float) -> Timing:
    """Returns the timing of `reads` reads sent at `rate` reads per second in all (open loop, the same seeded
    mix): each of `threads` threads sends on its own schedule, and a read's latency runs from the time it
    was due, so a server that falls behind is charged for the wait (no coordinated omission)."""
    import httpx

    clients = [httpx.Client(base_url=served.base) for _ in range(threads)]
    plans = [random.Random(t) for t in range(threads)]
    per_thread = max(1, reads // threads)
    interval = threads / rate
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []
    start = time.perf_counter() + 0.2

    def worker(t: int) -> None:
        rng, client = plans[t], clients[t]
        try:
            for i in range(per_thread):
                due = start + (i + t / threads) * interval
                pause = due - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                if i % SEARCH_EVERY == SEARCH_EVERY - 1:
                    r = client.get("/users", params={"search": f"user {rng.randint(1, 99)}", "limit": 20})
                else:
                    r = client.get(f"/users/{rng.randint(1, users)}")
                latencies[t].append(time.perf_counter() - due)
                if r.status_code != 200:
                    raise RuntimeError(f"{r.request.url}: {r.status_code} {r.text[:200]}")
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    workers = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(threads)]
    try:
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    finally:
        for c in clients:
            c.close()
    if errors:
        raise errors[0]
    flat = [x for lat in latencies for x in lat]
    return Timing(time.perf_counter() - start, len(flat), len(flat), flat)


def run(backend: str, users: int, reads: int, threads: int, rate: float | None) -> list[list[str]]:
    """Returns the table's rows: every mode under the saturating load, then every mode at a paced rate
    (`rate`, default half the legacy mode's saturated throughput)."""
    rows: list[list[str]] = []
    with es_database(backend, "bench_shadow") as url:
        seed(url, users)
        with Served(url) as served:
            shadow_before = dict.fromkeys(("compared", "mismatched", "timeouts", "skipped"), 0.0)
            fallbacks_before = 0.0
            for load in ("saturated", "paced"):
                base_p50 = None
                for mode, percent in MODES:
                    set_mode(url, served, mode, percent)
                    if load == "saturated":
                        timing = measure(served, users, reads, threads)
                        if mode == "legacy" and rate is None:
                            rate = timing.per_second / 2
                    else:
                        timing = measure_paced(served, users, reads, threads, rate or 100.0)
                    p50, p99 = timing.percentile_ms(50), timing.percentile_ms(99)
                    base_p50 = p50 if mode == "legacy" else base_p50
                    extra = "-"
                    if mode == "shadow":
                        counts = {o: served.metric(f'legacy_api_shadow_reads_total{{outcome="{o}"}}')
                                  for o in shadow_before}
                        extra = ", ".join(f"{int(v - shadow_before[k]):,} {k}" for k, v in counts.items())
                        shadow_before = counts
                    elif mode == "new":
                        fallbacks = served.metric('legacy_api_read_fallbacks_total{read="get"}')
                        extra = f"{int(fallbacks - fallbacks_before):,} fallbacks"
                        fallbacks_before = fallbacks
                    change = "-" if mode == "legacy" or not base_p50 or p50 is None \
                        else f"{(p50 / base_p50 - 1):+.0%}"
                    shown = mode if percent == 100.0 else f"{mode} {percent:g}%"
                    shown_load = f"{threads} threads, closed loop" if load == "saturated" else f"paced {rate:,.0f}/s"
                    rows.append([backend, shown_load, shown, fmt(timing.ops), fmt(timing.per_second), fmt(p50, 2),
                                 fmt(p99, 2), change, extra])
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=None, help=f"legacy users (default {FULL_USERS:,}; quick "
                                                           f"{QUICK_USERS:,})")
    p.add_argument("--reads", type=int, default=None, help=f"reads per mode (default {FULL_READS:,}; quick "
                                                           f"{QUICK_READS:,})")
    p.add_argument("--threads", type=int, default=8, help="client threads")
    p.add_argument("--rate", type=float, default=None,
                   help="reads per second of the paced load (default: half the legacy mode's saturated throughput)")
    args = parse(p, argv)
    users = args.users or (QUICK_USERS if args.quick else FULL_USERS)
    reads = args.reads or (QUICK_READS if args.quick else FULL_READS)
    rows = []
    for backend in args.backends:
        rows += run(backend, users, reads, args.threads, args.rate)
    print_table(f"legacy API reads by reads mode: {users:,} users, {reads:,} reads per mode, {args.threads} "
                "client threads (9 gets : 1 search)",
                ["backend", "load", "reads mode", "reads", "reads/s", "p50 ms", "p99 ms", "p50 vs legacy", "notes"],
                rows,
                markdown=args.markdown, caption=f"{machine_line()}. Goal (issue 12): shadow adds at most 10% to "
                                                "the legacy p50.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
