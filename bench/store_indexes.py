"""What each b-tree of the events table costs an append, on SQLite (issue 16): the database's own work.

    python -m bench.store_indexes [--quick] [--events N] [--rounds R] [--markdown]

The store's append statements, run on the bare sqlite3 connection (no Python of the store),
against scratch copies of the events table that differ only in their indexes:

- `as shipped`: rowid (position), unique (stream_id, version), unique event_id, (category, position),
  (event_type, position): five b-trees; event ids time-ordered (version 7, as the store makes them);
- `as shipped, random v4 ids`: the same table with the random event ids the store made before;
- `no event_id index`: the unique index on the event id left out;
- `no event_id, no type index`: ... and the filtered feed's (event_type, position) index too;
- `rowid + stream/version only`: what `eventsourcing` keeps (its own rows are smaller still);
- `eventsourcing's table`: its `stored_events` (4 columns, primary key (originator_id, version)),
  with the statements its SQLite recorder issues (BEGIN, executemany INSERT, COMMIT).

Each table first holds `--events` events (default 200,000; --quick 20,000) of 2,000-event streams,
since a random index costs more as it grows; then, best of `--rounds`: 300 one-event appends to
one stream, 30 appends of 100 events to a new stream, 30 batches of 100 new streams x 1 event,
their rows built before the clock starts (so the figures are SQLite's work and the driver's).
Durability as the store's engine sets it: WAL, synchronous=NORMAL. SQLite only.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.common import fmt, machine_line, parser, print_table
from es_app.store.types import new_event_id

_SHIPPED = ("CREATE TABLE events (position INTEGER NOT NULL PRIMARY KEY, stream_id VARCHAR(255) NOT NULL, "
            "category VARCHAR(100) NOT NULL, version INTEGER NOT NULL, event_id VARCHAR(36) NOT NULL, "
            "event_type VARCHAR(200) NOT NULL, schema_version INTEGER NOT NULL, data JSON NOT NULL, "
            "metadata JSON NOT NULL, recorded_at DATETIME NOT NULL, "
            "CONSTRAINT uq_events_stream_version UNIQUE (stream_id, version){event_id})")
_CATEGORY = "CREATE INDEX ix_events_category_position ON events (category, position)"
_TYPE = "CREATE INDEX ix_events_type_position ON events (event_type, position)"
_RANDOM_IDS = "as shipped, random v4 ids"
VARIANTS: dict[str, list[str]] = {
    "as shipped": [_SHIPPED.format(event_id=", UNIQUE (event_id)"), _CATEGORY, _TYPE],
    _RANDOM_IDS: [_SHIPPED.format(event_id=", UNIQUE (event_id)"), _CATEGORY, _TYPE],
    "no event_id index": [_SHIPPED.format(event_id=""), _CATEGORY, _TYPE],
    "no event_id, no type index": [_SHIPPED.format(event_id=""), _CATEGORY],
    "rowid + stream/version only": [_SHIPPED.format(event_id="")],
}
ES_TABLE = ("CREATE TABLE stored_events (originator_id TEXT, originator_version INTEGER, topic TEXT, state BLOB, "
            "PRIMARY KEY (originator_id, originator_version))")

COLUMNS = "stream_id, category, version, event_id, event_type, schema_version, data, metadata, recorded_at"
INSERT_ONE = f"INSERT INTO events ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
INSERT_POSITIONED = f"INSERT INTO events (position, {COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


def _insert_returning(n: int) -> str:
    row = "(" + ", ".join(["?"] * 9) + ")"
    return f"INSERT INTO events ({COLUMNS}) VALUES {', '.join([row] * n)} RETURNING stream_id, version, position"


def _row(stream: str, version: int, event_id: str) -> tuple:
    """Returns an event row shaped like the store's (a rename with the API's metadata)."""
    return (stream, "user", version, event_id, "UserNameChanged", 1,
            f'{{"name":"Name {version}"}}',
            '{"occurred_at":"2026-12-07T02:00:00.000000+00:00","actor":"bench","correlation_id":"'
            f'{uuid.uuid4()}","command":"ChangeUser"}}', "2026-12-07 02:00:00.000000")


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


class Ours:
    """The store's statements (sqlite.py) on a table variant."""

    def __init__(self, path: Path, ddl: list[str], ids: Callable[[], str] = new_event_id):
        self.conn = _connect(path)
        self.ids = ids
        for statement in ddl:
            self.conn.execute(statement)

    def fill(self, events: int) -> None:
        self.conn.execute("BEGIN")
        self.conn.executemany(INSERT_ONE, (_row(f"user-fill-{i // 2000}", i % 2000 + 1, self.ids())
                                           for i in range(events)))
        self.conn.execute("COMMIT")

    def append(self, stream: str, rows: list[tuple]) -> None:
        cur = self.conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        cur.execute("SELECT max(version) FROM events WHERE stream_id = ?", (stream,)).fetchone()
        if len(rows) == 1:
            cur.execute(INSERT_ONE, rows[0])
        else:
            cur.execute(_insert_returning(len(rows)), [v for r in rows for v in r]).fetchall()
        cur.execute("COMMIT")

    def append_across(self, streams: Sequence[str], rows: list[tuple]) -> None:
        cur = self.conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        marks = ", ".join("?" * len(streams))
        cur.execute(f"SELECT stream_id, max(version) FROM events WHERE stream_id IN ({marks}) GROUP BY stream_id",
                    list(streams)).fetchall()
        head = cur.execute("SELECT max(position) FROM events").fetchone()[0] or 0
        cur.executemany(INSERT_POSITIONED, [(head + i, *r) for i, r in enumerate(rows, start=1)])
        cur.execute("COMMIT")

    def rows(self, stream: str, first: int, n: int) -> list[tuple]:
        return [_row(stream, first + i, self.ids()) for i in range(n)]


class Theirs:
    """eventsourcing's SQLite recorder statements on its own table."""

    def __init__(self, path: Path):
        self.conn = _connect(path)
        self.conn.execute(ES_TABLE)
        self.versions: dict[str, int] = {}

    def fill(self, events: int) -> None:
        self.conn.execute("BEGIN")
        self.conn.executemany("INSERT INTO stored_events VALUES (?,?,?,?)",
                              ((uuid.uuid4().hex if i % 2000 == 0 else f"fill{i // 2000}", i % 2000 + 1,
                                "UserNameChanged", b'{"name":"x"}') for i in range(events)))
        self.conn.execute("COMMIT")

    def append(self, stream: str, rows: list[tuple]) -> None:
        cur = self.conn.cursor()
        cur.execute("BEGIN")
        cur.executemany("INSERT INTO stored_events VALUES (?,?,?,?)", rows)
        cur.execute("COMMIT")

    def append_across(self, streams: Sequence[str], rows: list[tuple]) -> None:
        self.append("", rows)

    @staticmethod
    def rows(stream: str, first: int, n: int) -> list[tuple]:
        return [(stream, first + i, "UserNameChanged", f'{{"name":"Name {first + i}","meta":{{"actor":"bench"}}}}'
                 .encode()) for i in range(n)]


WORKS = ("append 1 event", "append 100 events to 1 stream", "append_batch: 100 streams x 1 event")


def _work(side: Ours | Theirs, which: int) -> float:
    """Returns the µs per append of one of WORKS (rows built before the clock starts)."""
    if which == 0:
        stream = f"user-{uuid.uuid4()}"
        calls = [(side.append, (stream, side.rows(stream, v, 1))) for v in range(1, 301)]
    elif which == 1:
        streams = [f"user-{uuid.uuid4()}" for _ in range(30)]
        calls = [(side.append, (s, side.rows(s, 1, 100))) for s in streams]
    else:
        batches = [[f"user-{uuid.uuid4()}" for _ in range(100)] for _ in range(30)]
        calls = [(side.append_across, (b, [r for s in b for r in side.rows(s, 1, 1)])) for b in batches]
    t0 = time.perf_counter()
    for fn, call_args in calls:
        fn(*call_args)  # type: ignore[operator]
    return (time.perf_counter() - t0) / len(calls) * 1e6


def main(argv: Sequence[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=None, help="events in each table first (default 200,000)")
    p.add_argument("--rounds", type=int, default=3, help="rounds, sides alternating; the best counts")
    args = p.parse_args(argv)
    if args.backends and args.backends != ["sqlite"]:
        print("bench.store_indexes runs on SQLite only")
        return 0
    events = args.events or (20_000 if args.quick else 200_000)
    with tempfile.TemporaryDirectory(prefix="bench-indexes-") as tmp:
        sides: dict[str, Ours | Theirs] = {name: Ours(Path(tmp) / f"v{i}.sqlite", ddl,
                                                      (lambda: str(uuid.uuid4())) if name == _RANDOM_IDS
                                                      else new_event_id)
                                          for i, (name, ddl) in enumerate(VARIANTS.items())}
        sides["eventsourcing's table"] = Theirs(Path(tmp) / "es.sqlite")
        for side in sides.values():
            side.fill(events)
        best = {name: [float("inf")] * len(WORKS) for name in sides}
        for _ in range(args.rounds):
            for which in range(len(WORKS)):
                for name, side in sides.items():
                    best[name][which] = min(best[name][which], _work(side, which))
        for side in sides.values():
            side.conn.close()
    theirs = best["eventsourcing's table"]
    rows = [[name, *[f"{fmt(us)} ({theirs[i] / us:.2f}x)" for i, us in enumerate(figures)]]
            for name, figures in best.items()]
    print_table(f"SQLite's own work per append, µs (speed vs eventsourcing's table), tables holding {events:,} events",
                ["events table", *WORKS], rows, markdown=args.markdown, caption=machine_line())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
