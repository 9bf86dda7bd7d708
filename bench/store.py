"""Event store bench: create and command paths, batch append, global feed, stream loads, the gap-safety lock.

Runs the same work through our store and, when it is installed, the `eventsourcing`
library, each in a fresh database of its own, and prints the speed ratio ours/theirs
(above 1.0x = we are faster). Run: `python -m bench.store [--quick] [--backend sqlite]`.

Durability is the same on both sides: SQLite in WAL mode with synchronous=NORMAL
(our engine's setting, applied to eventsourcing's connections too); PostgreSQL with
the server's settings (fsync=on, synchronous_commit=on here). Both sides keep their
gap-safety lock on PostgreSQL (ours: a transaction advisory lock; theirs: LOCK TABLE).
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from typing import Any, Callable, Iterator, Sequence

from . import store_eventsourcing
from .common import (
    CpuUse,
    ServerCpu,
    Timing,
    empty_database,
    es_database,
    fmt,
    machine_line,
    median_ms,
    parse,
    parser,
    print_table,
    ratio,
    run_ops,
    run_threads,
)

THREADS = 8


@dataclasses.dataclass(frozen=True)
class Sizes:
    commands: int  # sequential commands (and per-op appends)
    per_thread: int  # commands per thread, THREADS threads
    users: int  # streams the sequential commands rotate over (keeps streams short on both sides)
    batches: int  # appends of `batch` events
    batch: int
    feed: int  # events in the global feed read
    page: int
    big: int  # events of the long stream
    load_repeat: int
    big_repeat: int  # loads of the long stream without a snapshot


FULL = Sizes(commands=1000, per_thread=125, users=100, batches=40, batch=100, feed=20_000, page=1000,
             big=10_000, load_repeat=200, big_repeat=5)
QUICK = Sizes(commands=40, per_thread=5, users=10, batches=3, batch=100, feed=1_000, page=250,
              big=1_000, load_repeat=10, big_repeat=2)


class OurSide:
    """Does the bench's work through es_app: UserService/Repository and EventStore."""

    name = "ours"
    server: ServerCpu | None = None  # the CPU of the database server's backends (`sides`)

    def __init__(self, url: str, *, serialize_appends: bool = True):
        from es_app.domain import UPCASTERS, User, UserState
        from es_app.services import UserService
        from es_app.store import EventStore, Repository, SnapshotStore, UpcasterRegistry, make_engine

        self.engine = make_engine(url)
        self.store = EventStore(self.engine, UpcasterRegistry(UPCASTERS), serialize_appends=serialize_appends)
        snapshots = SnapshotStore(self.engine)
        self.users = Repository(self.store, snapshots, User, UserState, snapshot_every=100)
        self.unsnapped = Repository(self.store, snapshots, User, UserState, snapshot_every=10**12)
        self.service = UserService(self.users)
        self.user_cls = User

    # -- command path ----------------------------------------------------------
    def register(self, n: int) -> list[str]:
        import uuid

        return [self.service.register(f"User {i}", f"u{i}-{uuid.uuid4().hex[:8]}@example.org").stream_id
                for i in range(n)]

    def create(self, i: int) -> None:
        """Registers one user: a new stream, one event (and its email claim), one commit."""
        import uuid

        self.service.register(f"User {i}", f"c{i}-{uuid.uuid4().hex[:8]}@example.org", metadata={"actor": "bench"})

    def command(self, user_id: str, name: str) -> None:
        self.service.execute(user_id, lambda u: u.change_name(name), metadata={"actor": "bench"})

    # -- store level -----------------------------------------------------------
    def new_stream(self) -> str:
        import uuid

        return f"thing-{uuid.uuid4()}"

    def _event(self, i: int) -> Any:
        from es_app.store import NewEvent

        return NewEvent("Thing", {"name": f"Name {i}", "n": i}, {"actor": "bench"})

    def append_one(self, stream: str, version: int, i: int) -> None:
        self.store.append(stream, [self._event(i)], version)

    def append_many(self, stream: str, n: int) -> None:
        self.store.append(stream, [self._event(v) for v in range(1, n + 1)], 0)

    def append_across(self, streams: list[str]) -> None:
        from es_app.store import ExpectedVersion, write_transaction

        with write_transaction(self.engine) as conn:
            self.store.append_batch(conn, [(s, [self._event(i)], ExpectedVersion.NO_STREAM)
                                           for i, s in enumerate(streams)])

    def read_feed(self, page: int) -> int:
        """Returns how many events it read."""
        seen, after = 0, 0
        while True:
            batch = self.store.read_all(after=after, limit=page)
            seen += len(batch)
            if len(batch) < page:
                return seen
            after = batch[-1].position

    # -- loading ---------------------------------------------------------------
    def build_stream(self, n: int, *, snapshot_at: int | None = None, chunk: int = 1000) -> str:
        """Returns the id of a new user stream of `n` events, with a snapshot at version `snapshot_at`."""
        user = self.user_cls.register(self.new_stream().replace("thing", "user"), "Loaded", "loaded@example.org")
        for v in range(2, n + 1):
            user.change_name(f"Name {v}")
            if v % chunk == 0 or v == snapshot_at:
                self.unsnapped.save(user)
            if v == snapshot_at:
                self.users.snapshot(user.state.id)
        if user.pending:
            self.unsnapped.save(user)
        return user.state.id

    def load(self, stream: str) -> int:
        return self.users.load(stream).state.version

    def close(self) -> None:
        self.engine.dispose()


@contextlib.contextmanager
def sides(backend: str, compare: bool, **ours: Any) -> Iterator[tuple[OurSide, Any]]:
    """Yields (our side, eventsourcing's side or None), each on a fresh database of its own."""
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(es_database(backend, "bench_ours"))
        our = OurSide(url, **ours)
        stack.callback(our.close)
        our.server = ServerCpu(url)
        stack.callback(our.server.close)
        theirs = None
        if compare:
            if backend == "sqlite":
                stack.enter_context(store_eventsourcing.sqlite_synchronous("NORMAL"))
            url = stack.enter_context(empty_database(backend, "bench_es"))
            theirs = store_eventsourcing.EsSide(backend, url)
            stack.callback(theirs.close)
            theirs.server = ServerCpu(url)
            stack.callback(theirs.server.close)
        yield our, theirs


# -- the work --------------------------------------------------------------------

def create_path(side: Any, s: Sizes, threads: int) -> Timing:
    """Returns the timing of register commands: a new stream, one event, commit each."""
    if threads == 1:
        return run_ops(side.create, s.commands, server=side.server)
    return run_threads(lambda t, i: side.create(t * s.per_thread + i), threads, s.per_thread, server=side.server)


def command_path(side: Any, s: Sizes, threads: int) -> Timing:
    """Returns the timing of load + change_name + save commands, one event each, commit each."""
    if threads == 1:
        users = side.register(s.users)
        return run_ops(lambda i: side.command(users[i % len(users)], f"Name {i}"), s.commands, server=side.server)
    users = side.register(threads * 4)
    return run_threads(lambda t, i: side.command(users[t * 4 + i % 4], f"Name {t}-{i}"), threads, s.per_thread,
                       server=side.server)


def append_path(side: Any, s: Sizes, threads: int) -> Timing:
    """Returns the timing of one-event appends with an exact expected version, commit each."""
    streams = [side.new_stream() for _ in range(threads)]
    if threads == 1:
        return run_ops(lambda i: side.append_one(streams[0], i, i), s.commands, server=side.server)
    return run_threads(lambda t, i: side.append_one(streams[t], i, i), threads, s.per_thread, server=side.server)


def batch_append(side: Any, s: Sizes) -> Timing:
    return run_ops(lambda i: side.append_many(side.new_stream(), s.batch), s.batches, s.batch, server=side.server)


def batch_across(side: Any, s: Sizes) -> Timing:
    return run_ops(lambda i: side.append_across([side.new_stream() for _ in range(s.batch)]), s.batches, s.batch,
                   server=side.server)


def feed_read(side: Any, s: Sizes) -> Timing:
    """Returns the timing of reading the whole feed (after filling it up to `s.feed` events)."""
    have = side.read_feed(s.page)
    while have < s.feed:
        n = min(1000, s.feed - have)
        side.append_across([side.new_stream() for _ in range(n)])
        have += n
    count = side.read_feed(s.page)
    with CpuUse(side.server) as cpu:
        ms = median_ms(lambda: side.read_feed(s.page), repeat=3, warmup=1)
    return cpu.timed(Timing(ms / 1000, 1, count), share=1 / 4)  # the CPU of one of the four reads


LOADS = ("10 events", "{big} events, no snapshot", "{big} events, snapshot at {big}",
         "{big}+99 events, snapshot at {big}")


def load_streams(side: Any, s: Sizes) -> list[Any]:
    """Returns the ids of the streams of each case in LOADS, built on this side."""
    return [side.build_stream(10), side.build_stream(s.big), side.build_stream(s.big, snapshot_at=s.big),
            side.build_stream(s.big + 99, snapshot_at=s.big)]


def load_time(side: Any, stream: Any, case: int, s: Sizes) -> float:
    """Returns the median ms of loading `stream` (case `case` of LOADS)."""
    if case == 1:
        return median_ms(lambda: side.load(stream), s.big_repeat, warmup=1)
    return median_ms(lambda: side.load(stream), s.load_repeat)


def _throughput_rows(backend: str, ours: dict[str, Timing], theirs: dict[str, Timing]) -> list[list[str]]:
    rows = []
    for work, t in ours.items():
        e = theirs.get(work)
        rows.append([backend, work, fmt(t.per_second), fmt(t.percentile_ms(50), 2), fmt(t.percentile_ms(99), 2),
                     fmt(e.per_second) if e else "-", fmt(e.percentile_ms(50), 2) if e else "-",
                     fmt(e.percentile_ms(99), 2) if e else "-", ratio(t.per_second, e.per_second if e else None)])
    return rows


def _summed(total: Timing | None, t: Timing) -> Timing:
    """Returns the rounds so far as one Timing, for CPU per event over every round (CPU is steadier
    than wall time, and more rounds are more samples of the server's)."""
    if total is None:
        return Timing(t.seconds, t.ops, t.items, [], t.cpu_s, t.server_cpu_s)

    def plus(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else a + b

    return Timing(total.seconds + t.seconds, total.ops + t.ops, total.items + t.items, [],
                  plus(total.cpu_s, t.cpu_s), plus(total.server_cpu_s, t.server_cpu_s))


def _all_cpu_us(t: Timing, backend: str) -> float | None:
    """Returns the process's and the server's CPU µs per event; None when a part is unknown."""
    process, server = t.cpu_us_per_item(t.cpu_s), t.cpu_us_per_item(t.server_cpu_s)
    if process is None or (server is None and backend != "sqlite"):
        return None
    return process + (server or 0.0)


def _cpu_rows(backend: str, ours: dict[str, Timing], theirs: dict[str, Timing]) -> list[list[str]]:
    rows = []
    for work, t in ours.items():
        e = theirs.get(work)
        cells = []
        for side in (t, e):
            if side is None:
                cells += ["-", "-", "-"]
                continue
            cells += [fmt(side.cpu_us_per_item(side.cpu_s), 1), fmt(side.cpu_us_per_item(side.server_cpu_s), 1),
                      fmt(_all_cpu_us(side, backend), 1)]
        our_all, their_all = _all_cpu_us(t, backend), _all_cpu_us(e, backend) if e else None
        rows.append([backend, work, *cells, ratio(their_all, our_all)])
    return rows


def works(s: Sizes) -> list[tuple[str, Callable[[Any], Timing]]]:
    """Returns the measured pieces of work: (label, function of a side)."""
    return [
        ("create, sequential", lambda side: create_path(side, s, 1)),
        (f"create, {THREADS} threads", lambda side: create_path(side, s, THREADS)),
        ("command, sequential", lambda side: command_path(side, s, 1)),
        (f"command, {THREADS} threads", lambda side: command_path(side, s, THREADS)),
        ("append 1 event, sequential", lambda side: append_path(side, s, 1)),
        (f"append 1 event, {THREADS} threads", lambda side: append_path(side, s, THREADS)),
        (f"append {s.batch} events to 1 stream", lambda side: batch_append(side, s)),
        (f"append_batch: {s.batch} streams x 1 event", lambda side: batch_across(side, s)),
        (f"read_all, pages of {s.page}", lambda side: feed_read(side, s)),
    ]


def run_backend(backend: str, s: Sizes, compare: bool, rounds: int) -> dict[str, Any]:
    """Returns the figures of one backend: throughput timings and load times, per side.

    Each piece of work runs `rounds` times, alternating our side and eventsourcing's,
    and the best round of each side counts: on a shared machine that is the figure
    least disturbed by other work, and both sides get the same chances.
    """
    out: dict[str, Any] = {"ours": {}, "theirs": {}, "loads": {}, "cpu": {"ours": {}, "theirs": {}}}
    with sides(backend, compare) as (our, theirs):
        present = [(key, side) for key, side in (("ours", our), ("theirs", theirs)) if side is not None]
        for label, work in works(s):
            for _ in range(rounds):
                for key, side in present:
                    t = work(side)
                    best = out[key].get(label)
                    if best is None or t.per_second > best.per_second:
                        out[key][label] = t
                    out["cpu"][key][label] = _summed(out["cpu"][key].get(label), t)
        streams = {key: load_streams(side, s) for key, side in present}
        for key, _ in present:
            out["loads"][key] = [float("inf")] * len(LOADS)
        for case in range(len(LOADS)):
            for _ in range(rounds):
                for key, side in present:
                    ms = load_time(side, streams[key][case], case, s)
                    out["loads"][key][case] = min(out["loads"][key][case], ms)
    return out


def lock_cost(s: Sizes, rounds: int) -> dict[str, Timing]:
    """Returns PostgreSQL timings with the gap-safety lock on and off (8 threads), best of `rounds`."""
    out: dict[str, Timing] = {}
    with sides("postgres", False) as (locked, _), sides("postgres", False, serialize_appends=False) as (free, _):
        for label, work in ((f"command, {THREADS} threads", lambda side: command_path(side, s, THREADS)),
                            (f"append 1 event, {THREADS} threads", lambda side: append_path(side, s, THREADS))):
            for _ in range(rounds):
                for tag, side in (("lock on", locked), ("lock off", free)):
                    t = work(side)
                    key = f"{label}|{tag}"
                    if key not in out or t.per_second > out[key].per_second:
                        out[key] = t
    return out


# -- reporting -------------------------------------------------------------------

def report(results: dict[str, dict[str, Any]], locks: dict[str, Timing] | None, s: Sizes,
           markdown: bool) -> list[str]:
    """Prints the tables; returns the goals that were missed."""
    rows = []
    for backend, r in results.items():
        rows += _throughput_rows(backend, r["ours"], r["theirs"])
    print_table("Event store: throughput (events/s) and latency per operation (ms)",
                ["backend", "work", "ours ev/s", "p50", "p99", "eventsourcing ev/s", "p50", "p99", "speed ours/es"],
                rows, markdown=markdown, caption=machine_line())

    rows = []
    for backend, r in results.items():
        rows += _cpu_rows(backend, r["cpu"]["ours"], r["cpu"]["theirs"])
    print_table("Event store: CPU per event (µs) over every round above — this process, and the database "
                "server's backends serving each side (PostgreSQL on this host; SQLite runs in the process)",
                ["backend", "work", "ours process", "ours server", "ours all", "eventsourcing process",
                 "eventsourcing server", "eventsourcing all", "all CPU es/ours"], rows, markdown=markdown)

    rows = []
    for backend, r in results.items():
        ours, theirs = r["loads"]["ours"], r["loads"].get("theirs")
        for i, label in enumerate(LOADS):
            their_ms = theirs[i] if theirs else None
            rows.append([backend, label.format(big=f"{s.big:,}"), fmt(ours[i], 3), fmt(their_ms, 3),
                         ratio(their_ms, ours[i])])
    print_table("Event store: load a User (Repository.load), median ms",
                ["backend", "stream", "ours ms", "eventsourcing ms", "speed ours/es"], rows, markdown=markdown)

    if locks:
        rows = []
        for work in dict.fromkeys(k.split("|")[0] for k in locks):
            on, off = locks[f"{work}|lock on"], locks[f"{work}|lock off"]
            rows.append(["postgres", work, fmt(on.per_second), fmt(on.percentile_ms(99), 2), fmt(off.per_second),
                         fmt(off.percentile_ms(99), 2), f"{(1 - on.per_second / off.per_second) * 100:.0f}%"])
        print_table("Event store: cost of the PostgreSQL gap-safety lock (serialize_appends)",
                    ["backend", "work", "lock on ev/s", "p99", "lock off ev/s", "p99", "throughput lost"],
                    rows, markdown=markdown)
    return goals(results, s, markdown)


def goals(results: dict[str, dict[str, Any]], s: Sizes, markdown: bool) -> list[str]:
    """Prints the issue's goals as met/missed; returns the missed ones."""
    rows, missed = [], []

    def check(backend: str, goal: str, figure: str, ok: bool | None) -> None:
        verdict = "n/a" if ok is None else ("met" if ok else "MISSED")
        rows.append([backend, goal, figure, verdict])
        if ok is False:
            missed.append(f"{backend}: {goal} ({figure})")

    for backend, r in results.items():
        for work in ("command, sequential", f"command, {THREADS} threads"):
            ours, theirs = r["ours"][work], r["theirs"].get(work)
            check(backend, f"{work} >= 1.0x eventsourcing", ratio(ours.per_second, theirs.per_second if theirs else None),
                  None if theirs is None else ours.per_second >= theirs.per_second)
        small, snapped = r["loads"]["ours"][0], r["loads"]["ours"][2]
        check(backend, f"{s.big:,}-event stream with snapshot <= 2 ms", f"{snapped:.3f} ms", snapped <= 2.0)
        check(backend, "... and <= 1.5x the 10-event stream", f"{snapped / small:.2f}x", snapped <= 1.5 * small)
    print_table("Event store: goals of issue 2", ["backend", "goal", "figure", "verdict"], rows, markdown=markdown)
    rows = []
    for backend, r in results.items():
        for work, t in r["ours"].items():
            if work.startswith(("command", "read_all")):
                continue  # issue 2's goals, above
            theirs = r["theirs"].get(work)
            check(backend, f"{work} >= 1.0x eventsourcing", ratio(t.per_second, theirs.per_second if theirs else None),
                  None if theirs is None else t.per_second >= theirs.per_second)
    print_table("Event store: goals of issue 16 (every write >= 1.0x eventsourcing)",
                ["backend", "goal", "figure", "verdict"], rows, markdown=markdown)
    return missed


def main(argv: Sequence[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--no-compare", action="store_true", help="skip the eventsourcing side")
    p.add_argument("--rounds", type=int, default=None,
                   help="rounds per measurement, sides alternating; the best counts (default 3, 1 with --quick)")
    args = parse(p, argv)
    s = QUICK if args.quick else FULL
    rounds = args.rounds or (1 if args.quick else 3)
    compare = not args.no_compare and store_eventsourcing.available()
    if not compare and not args.no_compare:
        print("note: eventsourcing is not installed (pip install '.[bench]'); no ratios", file=sys.stderr)
    results = {backend: run_backend(backend, s, compare, rounds) for backend in args.backends}
    locks = lock_cost(s, rounds) if "postgres" in args.backends else None
    report(results, locks, s, args.markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
