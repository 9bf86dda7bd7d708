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
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import Connection, Engine, text

from ..mapping import TableMapping
from .readmodel import ReadModelTable
from .sqlforms import Forms, Source, forms_for

ROWS_PER_BUCKET = 1024  # the first level's buckets hold about this many rows
FANOUT = 32  # a differing bucket is split into this many
ROWS_THRESHOLD = 20_000  # differing buckets holding at most this many rows are compared row by row
MAX_MODULUS = 1 << 32  # key hashes have 32 bits: no finer split exists
PAGE = 1000  # keys per page when streaming
_KINDS = {"text": "text", "int": "int", "bool": "bool"}  # coercers whose values an SQL form reads

Checksums = dict[int, tuple[int, int]]  # bucket -> (rows, digest sum)


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

    def connect(self) -> Connection:
        conn = self.engine.connect()
        self.forms.prepare(conn, self.sources, self.function)
        return conn

    def _inner(self, extra: Sequence[str], within: tuple[int, Sequence[int]] | None) -> str:
        """Returns the SELECT of the live rows (in the buckets `within`) with their key hash and `extra`."""
        kh = self.forms.key_hash(self.key_text)
        cols = ", ".join([f"{kh} AS verify_kh", *extra])
        where = self.where
        if within is not None:
            modulus, buckets = within
            where += f" AND {kh} % {int(modulus)} IN ({', '.join(str(int(b)) for b in buckets)})"
        return f"SELECT {cols} FROM {self.table} WHERE {where}"

    def count(self) -> int:
        """Returns the number of live rows."""
        with self.engine.connect() as conn:
            return int(conn.execute(text(f"SELECT count(*) FROM {self.table} WHERE {self.where}")).scalar() or 0)

    def checksums(self, modulus: int, parent: tuple[int, Sequence[int]] | None) -> Checksums:
        """Returns {bucket: (count, digest sum)} of the live rows at `modulus` (within `parent`'s buckets)."""
        fields = [f"{self.forms.field_sql(s)} AS verify_f{i}" for i, s in enumerate(self.sources)]
        digest = self.forms.row_hash([f"f.verify_f{i}" for i in range(len(self.sources))], self.function)
        rows = f"SELECT f.verify_kh, {digest} AS verify_h FROM ({self._inner(fields, parent)}{self.forms.fence}) f"
        sql = f"SELECT s.verify_kh % {int(modulus)} AS b, {self.forms.sums('s.verify_h')} FROM ({rows}) s GROUP BY 1"
        with self.connect() as conn:
            return {int(r[0]): self.forms.checksum(r[1:])
                    for r in conn.execute(text(sql), self.forms.params()) if r[0] is not None}

    def rows(self, modulus: int, buckets: Sequence[int]) -> Iterator[tuple[int, Any, tuple[Any, ...]]]:
        """Yields (bucket, legacy key, compared values) of the live rows in `buckets`, in bucket order."""
        cols = [f"{self.key} AS verify_key", *(f"{s.column} AS verify_c{i}" for i, s in enumerate(self.sources))]
        names = ", ".join(["verify_key", *(f"verify_c{i}" for i in range(len(self.sources)))])
        inner = self._inner(cols, (modulus, buckets))
        sql = f"SELECT s.verify_kh % {int(modulus)} AS b, {names} FROM ({inner}) s ORDER BY 1"
        converters = [s.convert for s in self.sources]
        with self.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=PAGE).execute(text(sql))
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


def sides_for(mapping: TableMapping, read_model: ReadModelTable, legacy: Engine, es: Engine) -> Sides:
    """Returns the legacy and read-model sides of a mapping; fields without an SQL form on a side are streamed."""
    lforms, nforms = forms_for(legacy.dialect.name), forms_for(es.dialect.name)
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
    legacy_side = Side(legacy, lforms, lq(mapping.table), "1 = 1", key, lforms.cast_text(key), tuple(legacy_sources),
                       lambda v: mapping.key_of({mapping.key: v}), "verify_legacy_digest")
    new_side = Side(es, nforms, nq(read_model.table),
                    f"substr({rid}, 1, {len(prefix)}) = {literal} AND NOT {nq(read_model.deleted_column)}",
                    f"COALESCE({rkey}, {stripped})", f"COALESCE({rkey}, {stripped})", tuple(new_sources),
                    lambda v: mapping.key_of({mapping.key: v}), "verify_new_digest")
    return Sides(legacy_side, new_side, tuple(streamed))


def _field_value(mapping: TableMapping, column: str) -> Callable[[Any], Any]:
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
        def both(modulus: int, parent: tuple[int, Sequence[int]] | None) -> tuple[Checksums, Checksums]:
            left = pool.submit(sides.legacy.checksums, modulus, parent)
            right = pool.submit(sides.new.checksums, modulus, parent)
            return left.result(), right.result()

        # the first level has about rows_per_bucket rows per bucket; each next one splits the differing buckets
        modulus = max(1, min(MAX_MODULUS, sides.legacy.count() // rows_per_bucket))
        legacy_sums, new_sums = both(modulus, None)
        out.rows_legacy = sum(v[0] for v in legacy_sums.values())
        out.rows_new = sum(v[0] for v in new_sums.values())
        differing = _differing(legacy_sums, new_sums)
        while differing and modulus < MAX_MODULUS:
            rows = max(sum(legacy_sums.get(b, (0,))[0] for b in differing),
                       sum(new_sums.get(b, (0,))[0] for b in differing))
            if rows <= threshold or len(differing) * 2 > len(legacy_sums.keys() | new_sums.keys()):
                break  # few rows left, or most buckets differ (splitting finds nothing finer): row by row
            parent = (modulus, differing)
            modulus = min(MAX_MODULUS, modulus * FANOUT)
            legacy_sums, new_sums = both(modulus, parent)
            differing = _differing(legacy_sums, new_sums)
            out.levels += 1
    if differing:
        _compare_rows(sides, modulus, differing, out)
    return out


def _differing(a: Checksums, b: Checksums) -> list[int]:
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def _compare_rows(sides: Sides, modulus: int, buckets: Sequence[int], out: ChecksumResult) -> None:
    """Compares the rows of `buckets` in Python, one bucket at a time; adds the keys that differ."""
    legacy = itertools.groupby(sides.legacy.rows(modulus, buckets), key=lambda r: r[0])
    new = itertools.groupby(sides.new.rows(modulus, buckets), key=lambda r: r[0])
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


def stream_fields(mapping: TableMapping, read_model: ReadModelTable, legacy: Engine, es: Engine,
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
