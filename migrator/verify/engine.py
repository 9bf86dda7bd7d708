"""`verify`: every key of every mapped table compared three ways — legacy row, read-model row, stream replay.

Per table:
1. Legacy vs new. With a read model (`checksum` method): checksums computed inside both databases at
   once, drilling down into the buckets that differ (`checksum`); fields without an SQL form are
   compared by streaming. Without one (`stream` method): every legacy key and every stream of the
   category, page by page (a stream's liveness needs its events, so each is replayed). With `since`
   (the watermarks of an earlier run), only the keys with changelog rows or events after them.
2. Replay: `sample` legacy keys chosen by the hash of the key (the same keys every run), or every key
   with `full`, are compared with the replay of their streams, in pages (`store.read_streams`).
3. Every key that differs is compared three ways (`replay.compare_keys`) into one of the mismatch kinds.
   Keys in flight (legacy changes not yet relayed, events not yet projected) are compared again for up
   to `wait` seconds while the relay and projections catch up; those still in flight become `pending`.
4. Each mismatch is explained (`explain`); the report adds the data-quality findings and open parked rows.

Nothing is stored: the caller stores the report's JSON document.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, bindparam, func, inspect, select, text

from es_app.store import EventStore

from ..capture.changelog import CHANGELOG, pending_since
from ..claims.findings import count_findings, findings
from ..mapping import CompiledMapping
from ..parking.entries import parked
from .checksum import PAGE, compare_checksums, sides_for, stream_fields
from .explain import mismatches
from .readmodel import read_model_for
from .replay import CHUNK, Compared, Outcome, Views, compare_keys, compare_page, storable_key
from .report import CHECKSUM, KINDS, PENDING, STREAM, Mismatch, TableReport, VerifyReport, zero_counts
from .sqlforms import forms_for

POLL_S = 0.25  # how often keys in flight are compared again while waiting

Progress = Callable[[str, int, int | None], None]


def verify(legacy: Engine, es: Engine, mappings: Sequence[CompiledMapping], *, sample: int = 2000, full: bool = False,
           since: Mapping[str, Any] | None = None, wait: float = 5.0, max_mismatches: int = 10_000,
           on_progress: Progress | None = None) -> VerifyReport:
    """Returns what a comparison of every mapped table's legacy rows, read model and streams found.

    `mappings` are bound to the legacy database. `since` is the "watermarks" object of an earlier run's
    report ({table: {"changelog_id", "position"}}): only the keys changed after it are verified (a table
    it does not name is verified whole). Raises ValueError for a negative `sample`, `wait` or `max_mismatches`.
    """
    if sample < 0 or wait < 0 or max_mismatches < 0:
        raise ValueError("sample, wait and max_mismatches must not be negative")
    started = datetime.now(UTC)
    store = EventStore(es)
    head = store.head_position()
    tables: list[TableReport] = []
    listed: list[Mismatch] = []
    total = 0
    for mapping in mappings:
        mark = _watermark(since, mapping.table)
        report, found, count = _verify_table(Views.of(legacy, es, store, mapping, read_model_for(mapping)), head,
                                             sample=sample, full=full, since=mark, wait=wait,
                                             room=max_mismatches - len(listed), progress=on_progress)
        tables.append(report)
        listed += found
        total += count
    options = {"tables": [m.table for m in mappings], "sample": sample, "full": full, "since_last": since is not None,
               "since_run": None, "wait_s": wait}
    return VerifyReport(started, datetime.now(UTC), options, tuple(tables), tuple(listed), total)


def _watermark(since: Mapping[str, Any] | None, table: str) -> tuple[int, int] | None:
    if since is None or table not in since:
        return None
    mark = since[table]
    try:
        return int(mark["changelog_id"]), int(mark["position"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"watermarks of table {table} need integer changelog_id and position, not {mark!r}") from None


class _Table:
    """The run of one table: what was compared so far, the keys that differ."""

    def __init__(self, views: Views, progress: Progress | None) -> None:
        self.views = views
        self.progress = progress
        self.differing: list[Outcome] = []
        self.keys_compared = 0
        self.keys_replayed = 0
        self.legacy_rows = 0
        self.live_streams = 0
        self.total: int | None = None

    def compare(self, keys: Sequence[Any], *, replayed: bool = True) -> Compared:
        found = compare_keys(self.views, keys)
        self.differing += found.outcomes
        self.keys_replayed += found.keys if replayed else 0
        self.legacy_rows += found.legacy_rows
        self.live_streams += found.live_streams
        return found

    def tick(self, done: int) -> None:
        if self.progress is not None:
            self.progress(self.views.mapping.table, done, self.total)


def _verify_table(views: Views, head: int, *, sample: int, full: bool, since: tuple[int, int] | None, wait: float,
                  room: int, progress: Progress | None) -> tuple[TableReport, list[Mismatch], int]:
    started = time.perf_counter()
    m, rm = views.mapping, views.read_model
    run = _Table(views, progress)
    watermark = {"changelog_id": views.changelog_head(), "position": head}
    streamed: tuple[str, ...] = ()
    if since is not None:
        method = STREAM
        keys = _changed_keys(views, since)
        run.total = len(keys)
        for i in range(0, len(keys), CHUNK):
            run.compare(keys[i:i + CHUNK])
            run.tick(min(i + CHUNK, len(keys)))
        rows_legacy, rows_new = _count_legacy(views), _count_new(views)
        keys_compared = len(keys)
    elif rm is not None:
        method = CHECKSUM
        sides = sides_for(m, rm, views.legacy, views.es)
        streamed = sides.streamed
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="verify-sample") as pool:
            # the replay sample does not depend on the checksums: it runs meanwhile
            sampled = pool.submit(lambda: compare_keys(views, _sample_keys(views, sample))) \
                if sample and not full else None
            result = compare_checksums(sides)
            rows_legacy, rows_new = result.rows_legacy, result.rows_new
            run.total = rows_legacy
            run.tick(0)
            candidates = list(dict.fromkeys(result.candidates))
            if streamed:
                candidates = list(dict.fromkeys([*candidates, *stream_fields(m, rm, views.legacy, views.es,
                                                                             streamed)]))
            run.compare(candidates)
            done = set(candidates)
            if full:
                _every_key(run, skip=done)
            elif sampled is not None:
                found = sampled.result()
                run.differing += [o for o in found.outcomes if o.key not in done]
                run.keys_replayed += sum(1 for k in found.seen if k not in done)
        keys_compared = result.keys_compared
        run.tick(rows_legacy)
    else:
        method = STREAM
        run.total = _count_legacy(views)
        _every_key(run, skip=set())
        rows_legacy, rows_new = run.legacy_rows, run.live_streams
        keys_compared = run.keys_replayed
    real, pending = _settle(views, run.differing, wait)
    counts = zero_counts()
    for o in real:
        counts[o.kind] += 1
    counts[PENDING] = len(pending)
    listed = mismatches(views, _ordered(real)[:max(room, 0)], pending=False)
    listed += mismatches(views, _ordered(pending)[:max(room - len(listed), 0)], pending=True)
    report = TableReport(m.table, m.category, rows_legacy, rows_new, keys_compared, run.keys_replayed, method,
                         streamed, counts, time.perf_counter() - started, *_quality(views), watermark)
    return report, listed, len(real) + len(pending)


def _ordered(outcomes: Sequence[Outcome]) -> list[Outcome]:
    order = {k: i for i, k in enumerate(KINDS)}
    return sorted(outcomes, key=lambda o: (order[o.kind], type(o.key).__name__, o.key))


def _settle(views: Views, outcomes: list[Outcome], wait: float) -> tuple[list[Outcome], list[Outcome]]:
    """Returns (the real mismatches, the keys still in flight after up to `wait` seconds of comparing them again)."""
    deadline = time.monotonic() + wait
    real: list[Outcome] = []
    current = outcomes
    while True:
        real += [o for o in current if o.pending is None]
        waiting = [o for o in current if o.pending is not None]
        left = deadline - time.monotonic()
        if not waiting or left <= 0:
            return real, waiting
        time.sleep(min(POLL_S, left))
        current = compare_keys(views, [o.key for o in waiting]).outcomes


def _every_key(run: _Table, *, skip: set[Any]) -> None:
    """Compares every legacy key (in key order, pages of legacy rows) and every stream of the category without a
    legacy row; keys in `skip` (compared already) count once."""
    after, done = None, 0
    while True:
        found, after = compare_page(run.views, after, PAGE)
        if after is None:
            break
        done += found.keys
        run.differing += [o for o in found.outcomes if o.key not in skip]
        run.keys_replayed += sum(1 for k in found.seen if k not in skip)
        run.legacy_rows += found.legacy_rows
        run.live_streams += found.live_streams
        run.tick(done)
    for page in _stream_key_pages(run.views):
        present = _legacy_keys_among(run.views, page)
        run.compare([k for k in page if k not in present and k not in skip])


def _stream_key_pages(views: Views) -> Iterator[list[Any]]:
    m = views.mapping
    after = ""
    while True:
        with views.es.connect() as conn:
            sids = views.store.stream_ids_in_category(conn, m.category, after=after, limit=PAGE)
        if not sids:
            return
        after = sids[-1]
        yield [m.key_of({m.key: m.key_from_stream(s)}) for s in sids]


def _legacy_keys_among(views: Views, keys: Sequence[Any]) -> set[Any]:
    """Returns those of `keys` that have a legacy row."""
    m = views.mapping
    q = views.legacy.dialect.identifier_preparer.quote
    wanted = [k for k in keys if storable_key(m, k)]
    if not wanted:
        return set()
    sql = text(f"SELECT {q(m.key)} FROM {q(m.table)} WHERE {q(m.key)} IN :keys").bindparams(
        bindparam("keys", expanding=True))
    with views.legacy.connect() as conn:
        return {m.key_of({m.key: v}) for v in conn.execute(sql, {"keys": wanted}).scalars()}


def _sample_keys(views: Views, n: int) -> list[Any]:
    """Returns the `n` legacy keys whose key hash is lowest: the same keys on every run."""
    m = views.mapping
    forms = forms_for(views.legacy.dialect.name)
    q = views.legacy.dialect.identifier_preparer.quote
    key = q(m.key)
    sql = f"SELECT {key} FROM {q(m.table)} ORDER BY {forms.key_hash(forms.cast_text(key))}, {key} LIMIT {int(n)}"
    with views.legacy.connect() as conn:
        forms.prepare(conn, (), "verify_legacy_digest")
        return [m.key_of({m.key: v}) for v in conn.execute(text(sql), forms.params()).scalars()]


def _changed_keys(views: Views, since: tuple[int, int]) -> list[Any]:
    """Returns the keys with a changelog row above the changelog id or an event above the position of `since`."""
    m = views.mapping
    changelog_id, position = since
    found: dict[Any, None] = {}
    if views.has_changelog:
        q = text(f"SELECT DISTINCT pk FROM {CHANGELOG} WHERE table_name = :t AND {pending_since(views.legacy)}")
        with views.legacy.connect() as conn:
            for pk in conn.execute(q, {"t": m.table, "after": changelog_id}).scalars():
                found[m.key_of({m.key: pk})] = None
    after = position
    while batch := views.store.read_all(after=after, limit=5000, category=m.category):
        for e in batch:
            found[m.key_of({m.key: m.key_from_stream(e.stream_id)})] = None
        after = batch[-1].position
    return list(found)


def _count_legacy(views: Views) -> int:
    q = views.legacy.dialect.identifier_preparer.quote
    with views.legacy.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {q(views.mapping.table)}")).scalar() or 0)


def _count_new(views: Views) -> int:
    """Returns the live read-model rows of the table, or (without a read model) its streams."""
    rm, m = views.read_model, views.mapping
    if rm is not None:
        sides = sides_for(m, rm, views.legacy, views.es)
        with sides.new.connect() as conn:
            return int(conn.execute(text(f"SELECT count(*) FROM {sides.new.table} WHERE {sides.new.where}")).scalar()
                       or 0)
    return sum(len(page) for page in _stream_key_pages(views))


def _quality(views: Views) -> tuple[dict[str, int], int]:
    """Returns the table's data-quality findings by kind and its open parked rows (empty when not tracked)."""
    table = views.mapping.table
    with views.es.connect() as conn:
        names = set(inspect(conn).get_table_names())
        found = count_findings(conn, table=table) if findings.name in names else {}
        open_rows = 0
        if parked.name in names:
            open_rows = int(conn.execute(select(func.count()).select_from(parked).where(
                parked.c.table_name == table, parked.c.resolved_at.is_(None))).scalar() or 0)
    return found, open_rows
