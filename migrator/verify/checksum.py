"""Legacy table vs read model by checksums computed inside each database, both at once, drilling down.

Keys are spread over buckets by the hash of their text (`sqlforms.key_hash`, the same on every
backend). Each side computes, in its own database and in its own thread, the count and digest sums
of every bucket; only the buckets whose checksums differ are split further (a bucket of modulus M
becomes FANOUT buckets of modulus M * FANOUT: the same keys, finer), until the rows of the
differing buckets are few enough (ROWS_THRESHOLD; or most buckets differ, when splitting cannot
narrow anything down) to compare row by row in Python through the mapping's coercers and
normalizers, streaming both sides in bucket order (memory holds one bucket).
What differs in Python is a *candidate*: the engine compares it three ways, with its stream.

Fields whose normalizer has no SQL form are left out of the checksum and compared by `stream_fields`:
keyset pages of the legacy table, in key order, with the read-model rows of the same keys.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, text

from ..mapping import CompiledMapping
from .readmodel import ReadModelTable
from .sqlforms import Forms, Source, forms_for

ROWS_PER_BUCKET = 1024  # the first level's buckets hold about this many rows
FANOUT = 32  # a differing bucket is split into this many
ROWS_THRESHOLD = 20_000  # differing buckets holding at most this many rows are compared row by row
MAX_MODULUS = 1 << 32  # key hashes have 32 bits: no finer split exists
PAGE = 1000  # keys per page when streaming
_KINDS = {"text": "text", "int": "int", "bool": "bool"}  # coercers whose values an SQL form reads

Checksums = dict[int, tuple[int, int]]  # bucket -> (rows, digest sum)
NOT_AN_INTEGER = -(1 << 62)  # the bucket of read-model rows whose key is not an integer's canonical text
RANGED_LIMIT = 10**17  # integer keys beyond it (an UNSIGNED BIGINT above 2^63) are bucketed by hash: the read
# model's `integer_of` reads at most 18 digits
MAX_ENUMERATED = 4096  # ranges of at most this many integer keys are read through the indexes


@dataclasses.dataclass(frozen=True)
class Level:
    """How rows are bucketed: by ranges of `n` integer keys (`ranged`), or by their key hash modulo `n`."""

    ranged: bool
    n: int
    parent: Level | None = None  # the level whose differing buckets this one splits


@dataclasses.dataclass(frozen=True)
class Side:
    """One side of the comparison: a table in a database, its live rows, its key and its compared fields."""

    engine: Engine
    forms: Forms
    table: str  # quoted
    where: str  # the live rows
    key: str  # SQL of the key as the table holds it
    key_text: str  # SQL of the key's text (what buckets it)
    sources: tuple[Source, ...]
    key_of: Callable[[Any], Any]  # the key's value as the table hands it over -> the legacy key
    function: str  # the name of the row-digest function (SQLite)
    int_key: str | None = None  # SQL of the key as an integer (NULL when it is not one), for integer keys
    # the condition (SQL and parameters) of the rows whose integer key is in [lo, hi], through an index
    in_range: Callable[[int, int], tuple[str, dict[str, Any]]] | None = None

    def bucket(self, level: Level) -> str:
        """Returns the SQL of a row's bucket at `level`."""
        if level.ranged:
            assert self.int_key is not None
            return f"COALESCE({self.forms.int_div(self.int_key, level.n)}, {NOT_AN_INTEGER})"
        return f"{self.forms.key_hash(self.key_text)} % {int(level.n)}"

    def connect(self) -> Connection:
        conn = self.engine.connect()
        self.forms.prepare(conn, self.sources, self.function)
        return conn

    def _inner(self, extra: Sequence[str], level: Level, within: Sequence[int] | None, where: str = "") -> str:
        """Returns the SELECT of the live rows (in the buckets `within` of `level`'s parent) with their bucket at
        `level` and `extra`."""
        cols = ", ".join([f"{self.bucket(level)} AS verify_b", *extra])
        where = f"{self.where}{where}"
        if within is not None:
            where += f" AND {self.bucket(level.parent or level)} IN ({', '.join(str(int(b)) for b in within)})"
        return f"SELECT {cols} FROM {self.table} WHERE {where}"

    def count(self) -> int:
        """Returns the number of live rows."""
        with self.engine.connect() as conn:
            return int(conn.execute(text(f"SELECT count(*) FROM {self.table} WHERE {self.where}")).scalar() or 0)

    def checksums(self, level: Level, parent: Sequence[int] | None) -> Checksums:
        """Returns {bucket: (count, digest sum)} of the live rows at `level` (within the parent level's buckets)."""
        fields = [f"{self.forms.field_sql(s)} AS verify_f{i}" for i, s in enumerate(self.sources)]
        digest = self.forms.row_hash([f"f.verify_f{i}" for i in range(len(self.sources))], self.function)
        inner = self._inner(fields, level, parent)
        rows = f"SELECT f.verify_b, {digest} AS verify_h FROM ({inner}{self.forms.fence}) f"
        sql = f"SELECT s.verify_b, {self.forms.sums('s.verify_h')} FROM ({rows}) s GROUP BY 1"
        with self.connect() as conn:
            return {int(r[0]): self.forms.checksum(r[1:])
                    for r in conn.execute(text(sql), self.forms.params()) if r[0] is not None}

    def rows(self, level: Level, buckets: Sequence[int] | None, where: str = "",
             params: Mapping[str, Any] | None = None) -> Iterator[tuple[int, Any, tuple[Any, ...]]]:
        """Yields (bucket, legacy key, compared values) of the live rows in `buckets` of `level` (or those `where`
        selects), in bucket order."""
        params = params or {}
        cols = [f"{self.key} AS verify_key", *(f"{s.column} AS verify_c{i}" for i, s in enumerate(self.sources))]
        names = ", ".join(["verify_b", "verify_key", *(f"verify_c{i}" for i in range(len(self.sources)))])
        inner = self._inner(cols, dataclasses.replace(level, parent=None), buckets, where)
        sql = text(f"SELECT {names} FROM ({inner}) s ORDER BY 1").bindparams(
            *(bindparam(k, expanding=True) for k, v in params.items() if isinstance(v, list)))
        converters = [s.convert for s in self.sources]
        with self.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=PAGE).execute(sql, dict(params))
            for r in result:
                yield int(r[0]), self.key_of(r[1]), tuple(_safe(c, v) for c, v in zip(converters, r[2:], strict=True))


def _safe(convert: Callable[[Any], Any], value: Any) -> Any:
    try:
        return convert(value)
    except (ValueError, TypeError, ArithmeticError):
        return _Unreadable(value)


@dataclasses.dataclass(frozen=True)
class _Unreadable:
    """A value the mapping cannot read: equal to nothing but itself."""

    value: Any


@dataclasses.dataclass(frozen=True)
class Sides:
    """The two sides of one mapped table with a read model, and the fields left to streaming."""

    legacy: Side
    new: Side
    streamed: tuple[str, ...]


def sides_for(mapping: CompiledMapping, read_model: ReadModelTable, legacy: Engine, es: Engine) -> Sides:
    """Returns the legacy and read-model sides of a mapping; fields without an SQL form on a side are streamed."""
    lforms, nforms = forms_for(legacy.dialect.name, es.dialect.name), forms_for(es.dialect.name, legacy.dialect.name)
    lq, nq = legacy.dialect.identifier_preparer.quote, es.dialect.identifier_preparer.quote
    by_field = {c.field: c for c in mapping.columns}
    legacy_sources, new_sources, streamed = [], [], []
    for f in read_model.fields:
        c = by_field[f]
        ls = Source(f, lq(c.column), _field_value(mapping, c.column), _KINDS.get(mapping.coerce.get(c.column, "")),
                    tuple(c.normalize))
        ns = Source(f, nq(f), _rm_value(read_model, f), "bool" if f in read_model.booleans else "text")
        if lforms.field_sql(ls) is None or nforms.field_sql(ns) is None:
            streamed.append(f)
        else:
            legacy_sources.append(ls)
            new_sources.append(ns)
    key = lq(mapping.key)
    prefix = f"{mapping.stream_prefix}-"
    literal = "'" + prefix.replace("'", "''") + "'"
    rid, rkey = nq(read_model.id_column), nq(read_model.key_column)
    stripped = f"substr({rid}, {len(prefix) + 1})"
    key_text = f"COALESCE({rkey}, {stripped})"
    integer = mapping.coerce.get(mapping.key) == "int"

    def legacy_range(lo: int, hi: int) -> tuple[str, dict[str, Any]]:
        return f"{key} >= :verify_lo AND {key} <= :verify_hi", {"verify_lo": lo, "verify_hi": hi}

    def new_range(lo: int, hi: int) -> tuple[str, dict[str, Any]]:
        return f"{rid} IN :verify_ids", {"verify_ids": [f"{prefix}{k}" for k in range(lo, hi + 1)]}

    legacy_side = Side(legacy, lforms, lq(mapping.table), "1 = 1", key, lforms.cast_text(key), tuple(legacy_sources),
                       lambda v: mapping.key_of({mapping.key: v}), "verify_legacy_digest",
                       key if integer else None, legacy_range)
    new_side = Side(es, nforms, nq(read_model.table),
                    f"substr({rid}, 1, {len(prefix)}) = {literal} AND NOT {nq(read_model.deleted_column)}",
                    key_text, key_text, tuple(new_sources), lambda v: mapping.key_of({mapping.key: v}),
                    "verify_new_digest", nforms.integer_of(key_text) if integer else None, new_range)
    return Sides(legacy_side, new_side, tuple(streamed))


def _field_value(mapping: CompiledMapping, column: str) -> Callable[[Any], Any]:
    return lambda v: mapping.field_value(column, v)


def _rm_value(read_model: ReadModelTable, field: str) -> Callable[[Any], Any]:
    return lambda v: read_model.convert(field, v)


@dataclasses.dataclass
class ChecksumResult:
    """What the checksum comparison of one table found."""

    rows_legacy: int = 0
    rows_new: int = 0
    only_new: int = 0  # keys with a live read-model row and no legacy row (among the rows compared in Python)
    candidates: list[Any] = dataclasses.field(default_factory=list)
    levels: int = 0
    rows_compared_in_python: int = 0

    @property
    def keys_compared(self) -> int:
        return self.rows_legacy + self.only_new


def compare_checksums(sides: Sides, *, rows_per_bucket: int = ROWS_PER_BUCKET,
                      threshold: int = ROWS_THRESHOLD) -> ChecksumResult:
    """Returns the counts of both sides and the keys whose rows differ (in the checksummed fields)."""
    out = ChecksumResult()
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="verify-checksum") as pool:
        def both(level: Level, parent: Sequence[int] | None) -> tuple[Checksums, Checksums]:
            left = pool.submit(sides.legacy.checksums, level, parent)
            right = pool.submit(sides.new.checksums, level, parent)
            return left.result(), right.result()

        # the first level has about rows_per_bucket rows per bucket; each next one splits the differing buckets
        level = _first_level(sides, rows_per_bucket)
        legacy_sums, new_sums = both(level, None)
        out.rows_legacy = sum(v[0] for v in legacy_sums.values())
        out.rows_new = sum(v[0] for v in new_sums.values())
        differing = _differing(legacy_sums, new_sums)
        while differing and (level.n > 1 if level.ranged else level.n < MAX_MODULUS):
            rows = max(sum(legacy_sums.get(b, (0,))[0] for b in differing),
                       sum(new_sums.get(b, (0,))[0] for b in differing))
            if (rows <= threshold and (not level.ranged or level.n <= MAX_ENUMERATED)) \
                    or len(differing) * 2 > len(legacy_sums.keys() | new_sums.keys()):
                break  # few rows left, or most buckets differ (splitting finds nothing finer): row by row
            n = max(1, level.n // FANOUT) if level.ranged else min(MAX_MODULUS, level.n * FANOUT)
            level = Level(level.ranged, n, level)
            legacy_sums, new_sums = both(level, differing)
            differing = _differing(legacy_sums, new_sums)
            out.levels += 1
    if differing:
        _compare_rows(sides, level, differing, out)
    return out


def _first_level(sides: Sides, rows_per_bucket: int) -> Level:
    """Returns ranges of integer keys when both sides have them (the indexes then find a range's rows) and they
    lie within RANGED_LIMIT, else key hashes modulo about (rows / rows_per_bucket)."""
    legacy = sides.legacy
    if legacy.int_key is not None and sides.new.int_key is not None:
        with legacy.engine.connect() as conn:
            lo, hi, n = conn.execute(text(f"SELECT min({legacy.key}), max({legacy.key}), count(*) "
                                          f"FROM {legacy.table}")).one()
        if n and isinstance(lo, int) and isinstance(hi, int) and lo > -RANGED_LIMIT and hi < RANGED_LIMIT:
            return Level(True, max(1, -(-(hi - lo + 1) * rows_per_bucket // n)))
    return Level(False, max(1, min(MAX_MODULUS, legacy.count() // rows_per_bucket)))


def _differing(a: Checksums, b: Checksums) -> list[int]:
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def _compare_rows(sides: Sides, level: Level, buckets: Sequence[int], out: ChecksumResult) -> None:
    """Compares the rows of `buckets` in Python, one bucket at a time; adds the keys that differ.

    Ranges of integer keys are read through the indexes (the legacy primary key, the read model's stream id),
    other buckets by a scan of each side in bucket order."""
    if level.ranged and level.n * len(buckets) <= MAX_ENUMERATED * 16 and NOT_AN_INTEGER not in buckets:
        ranges = [_key_range(b, level.n) for b in buckets]
        left, right = sides.legacy.in_range, sides.new.in_range
        assert left is not None and right is not None
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="verify-rows") as pool:
            legacy = pool.submit(lambda: list(sides.legacy.rows(level, None, *_any_range(left, ranges))))
            new = pool.submit(lambda: list(sides.new.rows(level, None, *_any_range(right, ranges))))
            _compare_buckets(legacy.result(), new.result(), out)  # at most MAX_ENUMERATED * 16 keys
        return
    _compare_buckets(sides.legacy.rows(level, buckets), sides.new.rows(level, buckets), out)


def _any_range(in_range: Callable[[int, int], tuple[str, dict[str, Any]]], ranges: Sequence[tuple[int, int]]
               ) -> tuple[str, dict[str, Any]]:
    """Returns the SQL and parameters of the rows in any of `ranges`."""
    sql, params = [], {}
    for i, (lo, hi) in enumerate(ranges):
        one, values = in_range(lo, hi)
        for name, value in values.items():
            one = one.replace(f":{name}", f":{name}_{i}")
            params[f"{name}_{i}"] = value
        sql.append(one)
    return " AND (" + " OR ".join(f"({x})" for x in sql) + ")", params


def _key_range(bucket: int, width: int) -> tuple[int, int]:
    """Returns the integer keys [lo, hi] of a bucket (`key / width`, truncated toward zero as SQL divides)."""
    if bucket > 0:
        return bucket * width, bucket * width + width - 1
    if bucket < 0:
        return bucket * width - width + 1, bucket * width
    return -width + 1, width - 1


def _compare_buckets(legacy_rows: Iterable[tuple[int, Any, tuple[Any, ...]]],
                     new_rows: Iterable[tuple[int, Any, tuple[Any, ...]]], out: ChecksumResult) -> None:
    legacy = itertools.groupby(legacy_rows, key=lambda r: r[0])
    new = itertools.groupby(new_rows, key=lambda r: r[0])
    for left, right in _merge(legacy, new):
        out.rows_compared_in_python += len(left) + len(right)
        for key, values in left.items():
            if right.get(key, _MISSING) != values:
                out.candidates.append(key)
        for key in right:
            if key not in left:
                out.only_new += 1
                out.candidates.append(key)


_MISSING = object()


def _merge(a: Iterable[tuple[int, Iterable[Any]]], b: Iterable[tuple[int, Iterable[Any]]]
           ) -> Iterator[tuple[dict[Any, Any], dict[Any, Any]]]:
    """Yields ({key: values} of side a, the same of side b) per bucket, both grouped streams in bucket order."""
    ia, ib = iter(a), iter(b)
    na, nb = next(ia, None), next(ib, None)
    while na is not None or nb is not None:
        if nb is None or (na is not None and na[0] < nb[0]):
            assert na is not None
            yield {k: v for _, k, v in na[1]}, {}
            na = next(ia, None)
        elif na is None or nb[0] < na[0]:
            yield {}, {k: v for _, k, v in nb[1]}
            nb = next(ib, None)
        else:
            yield {k: v for _, k, v in na[1]}, {k: v for _, k, v in nb[1]}
            na, nb = next(ia, None), next(ib, None)


def stream_fields(mapping: CompiledMapping, read_model: ReadModelTable, legacy: Engine, es: Engine,
                  fields: Sequence[str]) -> Iterator[Any]:
    """Yields the legacy keys whose `fields` differ from the read model's: keyset pages of the legacy table in
    key order, each with the read-model rows of the same streams (keys missing on a side are the checksum's)."""
    by_field = {c.field: c.column for c in mapping.columns}
    lq = legacy.dialect.identifier_preparer.quote
    cols = ", ".join(lq(c) for c in [mapping.key, *(by_field[f] for f in fields)])
    table, key = lq(mapping.table), lq(mapping.key)
    last: Any = None
    while True:
        where = "" if last is None else f"WHERE {key} > :last"
        with legacy.connect() as conn:
            page = list(conn.execute(text(f"SELECT {cols} FROM {table} {where} ORDER BY {key} LIMIT {PAGE}"),
                                     {"last": last}))
        if not page:
            return
        last = page[-1][0]
        keys = [mapping.key_of({mapping.key: r[0]}) for r in page]
        with es.connect() as conn:
            seen = read_model.rows(conn, [mapping.stream_id(k) for k in keys])
        for k, r in zip(keys, page, strict=True):
            state = seen.get(mapping.stream_id(k), (None, 0))[0]
            if state is None:
                continue  # absent or deleted: the checksum's counts find it
            if any(_safe(_field_value(mapping, by_field[f]), r[i + 1]) != state[f] for i, f in enumerate(fields)):
                yield k
