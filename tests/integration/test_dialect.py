"""The dialect adapter: the same statements behave alike on every backend."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    inspect,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from es_app.dialect import DriverTable, UnsupportedBackend, dialect_for
from es_app.dialect.postgres import COPY_AT_LEAST
from es_app.dialect.postgres import DIALECT as POSTGRES
from es_app.dialect.sqlite import DIALECT as SQLITE
from es_app.store.driver import dbapi_connection, dbapi_of, driver_cursor, dumps, loads
from es_app.store.engine import make_engine, write_transaction
from es_app.store.schema import Json

_meta = MetaData()
things = Table("dialect_things", _meta, Column("name", String(40), primary_key=True),
               Column("n", Integer, nullable=False), Column("note", String(40)))


@pytest.fixture
def engine(es_engine):
    _meta.create_all(es_engine)
    yield es_engine
    _meta.drop_all(es_engine)


def _rows(engine) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(things).order_by(things.c.name))]


def test_upsert_inserts_then_updates_only_the_named_columns(engine) -> None:
    d = dialect_for(engine)
    with write_transaction(engine) as conn:
        conn.execute(d.upsert(things, {"name": "a", "n": 1, "note": "first"}, ["name"], ["n"]))
    with write_transaction(engine) as conn:
        conn.execute(d.upsert(things, {"name": "a", "n": 2, "note": "second"}, ["name"], ["n"]))
        conn.execute(d.upsert(things, None, ["name"], ["n", "note"]), [{"name": "b", "n": 5, "note": "x"}])
    assert _rows(engine) == [("a", 2, "first"), ("b", 5, "x")]


def test_insert_ignore_keeps_the_existing_row(engine) -> None:
    d = dialect_for(engine)
    with write_transaction(engine) as conn:
        conn.execute(d.insert_ignore(things, ["name"], {"name": "a", "n": 1}))
        conn.execute(d.insert_ignore(things, ["name"]), [{"name": "a", "n": 9, "note": None},
                                                         {"name": "b", "n": 2, "note": None}])
    assert _rows(engine) == [("a", 1, None), ("b", 2, None)]


def test_lock_rows_and_advisory_locks_run(engine) -> None:
    d = dialect_for(engine)
    with write_transaction(engine) as conn:
        assert conn.execute(d.lock_rows(select(things.c.name))).all() == []
    with engine.connect() as conn:
        assert d.try_advisory_lock(conn, 42)
        d.advisory_unlock(conn, 42)
        conn.commit()


def test_lock_rows_says_for_update_on_postgres_only() -> None:
    q = select(things.c.name)
    assert "FOR UPDATE" in str(POSTGRES.lock_rows(q).compile(dialect=postgresql.dialect()))
    assert "FOR UPDATE" not in str(SQLITE.lock_rows(q).compile(dialect=sqlite.dialect()))


def test_dialect_for_picks_by_backend_and_refuses_others(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    assert dialect_for(engine) is SQLITE
    oracle = SimpleNamespace(dialect=SimpleNamespace(name="oracle"))
    with pytest.raises(UnsupportedBackend, match="no dialect adapter for 'oracle'"):
        dialect_for(oracle)  # type: ignore[arg-type]


def test_upsert_only_if_keeps_the_row_when_the_condition_is_false(engine) -> None:
    d = dialect_for(engine)
    newer = lambda new: things.c.n < new.n  # noqa: E731
    with write_transaction(engine) as conn:
        conn.execute(d.upsert(things, {"name": "a", "n": 5, "note": "v5"}, ["name"], ["n", "note"], only_if=newer))
        conn.execute(d.upsert(things, {"name": "a", "n": 3, "note": "v3"}, ["name"], ["n", "note"], only_if=newer))
    assert _rows(engine) == [("a", 5, "v5")]
    with write_transaction(engine) as conn:
        conn.execute(d.upsert(things, {"name": "a", "n": 7, "note": "v7"}, ["name"], ["n", "note"], only_if=newer))
    assert _rows(engine) == [("a", 7, "v7")]


def test_insert_ignore_without_keys_skips_any_conflict(engine) -> None:
    d = dialect_for(engine)
    with write_transaction(engine) as conn:
        conn.execute(d.insert_ignore(things, values=[{"name": "a", "n": 1, "note": None}]))
        conn.execute(d.insert_ignore(things, values=[{"name": "a", "n": 2, "note": None},
                                                     {"name": "c", "n": 3, "note": None}]))
    assert _rows(engine) == [("a", 1, None), ("c", 3, None)]


def test_transaction_lock_write_options_and_driver_sql(engine) -> None:
    d = dialect_for(engine)
    with engine.connect().execution_options(**d.write_options()) as conn, conn.begin():
        d.lock_for_transaction(conn, 42)
        assert conn.exec_driver_sql(d.driver_sql(conn, "SELECT '100%'")).scalar_one() == "100%"
    assert SQLITE.write_options() == {"sqlite_begin": "IMMEDIATE"}
    assert POSTGRES.write_options() == {}


_LAST = "INSERT INTO dialect_things (name, n) VALUES (%s, %s)"


def _last_write_or_core(conn, name: str, n: int) -> bool:
    dialect = dialect_for(conn)
    if not dialect.commits_with_last_write:
        conn.execute(things.insert().values(name=name, n=n))
        return False
    with driver_cursor(conn) as cur, dialect.writes_with_commit(cur):
        cur.execute(_LAST, (name, n))
    return True


def test_a_last_write_commits_with_the_write_where_that_saves_a_round_trip(engine) -> None:
    with write_transaction(engine) as conn:
        conn.execute(things.insert().values(name="a", n=1))
        sent = _last_write_or_core(conn, "b", 2)
        assert sent == (engine.dialect.name == "postgresql")
        # sent: committed already, another connection sees both rows; else nothing is committed yet
        assert _rows(engine) == ([("a", 1, None), ("b", 2, None)] if sent else [])
    assert _rows(engine) == [("a", 1, None), ("b", 2, None)]
    with pytest.raises(IntegrityError), write_transaction(engine) as conn:  # the driver's error, as Core's
        conn.execute(things.insert().values(name="c", n=3))
        _last_write_or_core(conn, "a", 9)
    assert _rows(engine) == [("a", 1, None), ("b", 2, None)]  # the failed last write took the rest with it
    with write_transaction(engine) as conn:  # and left the pooled connection usable
        conn.execute(things.insert().values(name="c", n=3))
    assert [r[0] for r in _rows(engine)] == ["a", "b", "c"]


def test_writes_with_commit_sends_a_blocks_writes_with_the_commit(engine) -> None:
    dialect = dialect_for(engine)
    pipelined = dialect.commits_with_last_write
    with write_transaction(engine) as conn:
        conn.execute(things.insert().values(name="a", n=1))
        with driver_cursor(conn) as cur, dialect.writes_with_commit(cur):
            dialect.insert_ignore_many(conn, things, ["name"], [{"name": "b", "n": 2}, {"name": "c", "n": 3}], {})
            assert _rows(engine) == []  # nothing sent yet (PostgreSQL) or not committed (elsewhere)
        # PostgreSQL: sent and committed with the block's end; elsewhere the caller's commit is still to come
        assert len(_rows(engine)) == (3 if pipelined else 0)
    assert [r[0] for r in _rows(engine)] == ["a", "b", "c"]
    with pytest.raises(RuntimeError), write_transaction(engine) as conn:  # a failure inside: no COMMIT
        conn.execute(things.insert().values(name="d", n=4))
        with driver_cursor(conn) as cur, dialect.writes_with_commit(cur):
            dialect.insert_ignore_many(conn, things, ["name"], [{"name": "e", "n": 5}], {})
            raise RuntimeError("fails after a queued write")
    assert [r[0] for r in _rows(engine)] == ["a", "b", "c"]
    # a failing write: the driver's error, as Core's, and nothing kept
    with pytest.raises(IntegrityError), write_transaction(engine) as conn, driver_cursor(conn) as cur, \
            dialect.writes_with_commit(cur):
        dialect.insert_ignore_many(conn, things, ["name"], [{"name": "f", "n": 6}], {})
        dialect.insert_ignore_many(conn, things, ["name"], [{"name": "g", "n": None}], {})  # n is NOT NULL
    assert [r[0] for r in _rows(engine)] == ["a", "b", "c"]
    with write_transaction(engine) as conn:  # the pooled connection is usable after both
        assert dialect.insert_ignore_many(conn, things, ["name"], [{"name": "c", "n": 9}, {"name": "h", "n": 8}],
                                          {}) == 1  # outside the block the count is known
    assert [r[0] for r in _rows(engine)] == ["a", "b", "c", "h"]


def test_snapshot_read_options_open_a_read_transaction(engine) -> None:
    d = dialect_for(engine)
    with engine.connect().execution_options(**d.snapshot_read_options()) as conn, conn.begin():
        assert conn.execute(select(things.c.name)).all() == []


def test_only_postgres_wakes_listeners() -> None:
    assert POSTGRES.listens and not SQLITE.listens


rows_meta = MetaData()
docs = Table("dialect_docs", rows_meta, Column("key", String(40), primary_key=True),
             Column("flag", Boolean, nullable=True), Column("n", Integer, nullable=False),
             Column("big", BigInteger, nullable=False), Column("doc", Json, nullable=True),
             Column("version", Integer, nullable=False), Index("ix_dialect_docs_n", "n"))
stamps = Table("dialect_stamps", rows_meta, Column("id", Integer, primary_key=True),
               Column("name", String(40), nullable=False), Column("on", Boolean, nullable=False),
               Column("at", DateTime(timezone=True), nullable=False))
DOCS = DriverTable("dialect_docs", ("key", "flag", "n", "big", "doc", "version"),
                   ("text", "boolean", "integer", "bigint", "json", "integer"), key="key", version="version",
                   dumps=dumps, loads=loads)


@pytest.fixture
def docs_engine(es_engine):
    rows_meta.create_all(es_engine)
    yield es_engine
    rows_meta.drop_all(es_engine, checkfirst=True)


def _doc(key: str, version: int, flag: bool | None = True, doc: object = None) -> tuple:
    return (key, flag, version * 10, 2**40 + version, doc, version)


def _docs(engine, table: str = "dialect_docs") -> dict[str, tuple]:
    """Returns the rows of `table` (shaped like dialect_docs) read by Core, by key."""
    query = text(f'SELECT "key", "flag", "n", "big", "doc", "version" FROM "{table}"').columns(*docs.c)
    with engine.connect() as conn:
        return {r[0]: tuple(r) for r in conn.execute(query)}


def _on_cursor(conn, work):
    cur = dbapi_of(conn).cursor()
    try:
        return work(cur)
    finally:
        cur.close()


def test_select_in_reads_any_number_of_keys_decoded(docs_engine) -> None:
    d = dialect_for(docs_engine)
    with write_transaction(docs_engine) as conn:
        conn.execute(docs.insert(), [{"key": "a", "flag": True, "n": 1, "big": 2**40, "doc": {"x": [1, 2]},
                                      "version": 1},
                                     {"key": "b", "flag": False, "n": 2, "big": 2, "doc": None, "version": 1},
                                     {"key": "c", "flag": None, "n": 3, "big": 3, "doc": [], "version": 1}])
    wanted = [f"k{i}" for i in range(2500)] + ["a", "b", "c"]  # more than one IN list's worth on SQLite
    with docs_engine.connect() as conn:
        rows = _on_cursor(conn, lambda cur: d.select_in(cur, DOCS, wanted, ("doc", "flag", "key", "big")))
        assert _on_cursor(conn, lambda cur: d.select_in(cur, DOCS, [])) == []
        everything = _on_cursor(conn, lambda cur: d.select_in(cur, DOCS, ["a"]))
    assert sorted((tuple(r) for r in rows), key=lambda r: r[2]) == [({"x": [1, 2]}, True, "a", 2**40),
                                                                    (None, False, "b", 2), ([], None, "c", 3)]
    assert [tuple(r) for r in everything] == [("a", True, 1, 2**40, {"x": [1, 2]}, 1)]


def test_upsert_newer_inserts_and_keeps_the_newer_row(docs_engine) -> None:
    d = dialect_for(docs_engine)
    with write_transaction(docs_engine) as conn:
        _on_cursor(conn, lambda cur: d.upsert_newer(cur, DOCS, [_doc("a", 2, doc={"v": 2}), _doc("b", 1)]))
    with write_transaction(docs_engine) as conn:
        _on_cursor(conn, lambda cur: d.upsert_newer(cur, DOCS, [_doc("a", 1, False, {"v": 1}),
                                                                _doc("b", 3, None, {"v": 3})]))
        _on_cursor(conn, lambda cur: d.upsert_newer(cur, DOCS, []))
    assert _docs(docs_engine) == {"a": ("a", True, 20, 2**40 + 2, {"v": 2}, 2),
                                  "b": ("b", None, 30, 2**40 + 3, {"v": 3}, 3)}


@pytest.mark.parametrize("stale", [False, True])
def test_upsert_newer_of_many_absent_rows_equals_the_upsert(docs_engine, stale: bool) -> None:
    """Past COPY_AT_LEAST absent keys PostgreSQL COPYs them; a key stored after all makes it upsert them all."""
    d = dialect_for(docs_engine)
    if stale:
        with write_transaction(docs_engine) as conn:
            _on_cursor(conn, lambda cur: d.upsert_newer(cur, DOCS, [_doc("k7", 9, doc={"stale": True})]))
    rows = [_doc(f"k{i}", 1, i % 2 == 0, None if i % 3 else {"i": i}) for i in range(COPY_AT_LEAST + 20)]
    with write_transaction(docs_engine) as conn:
        _on_cursor(conn, lambda cur: d.upsert_newer(cur, DOCS, rows, {r[0] for r in rows}))
    expected = {r[0]: r for r in rows}
    if stale:
        expected["k7"] = _doc("k7", 9, doc={"stale": True})
    assert _docs(docs_engine) == expected


def test_bulk_copy_inserts_rows_as_core_would(docs_engine) -> None:
    d = dialect_for(docs_engine)
    at = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    rows = [{"id": i, "name": f"n{i}", "on": i % 2 == 0, "at": at} for i in range(1, 4)]
    with write_transaction(docs_engine) as conn:
        d.bulk_copy(conn, stamps, rows)
        d.bulk_copy(conn, stamps, [])
    with write_transaction(docs_engine) as conn:
        conn.execute(stamps.insert(), {"id": 4, "name": "core", "on": True, "at": at})
    with docs_engine.connect() as conn:
        got = [tuple(r) for r in conn.execute(select(stamps).order_by(stamps.c.id))]
    assert [r[:3] for r in got] == [(1, "n1", False), (2, "n2", True), (3, "n3", False), (4, "core", True)]
    assert {r[3].astimezone(UTC) if r[3].tzinfo else r[3].replace(tzinfo=UTC) for r in got} == {at}  # as Core stores
    with pytest.raises(IntegrityError), write_transaction(docs_engine) as conn:
        d.bulk_copy(conn, stamps, rows[:1])


def test_insert_ignore_many_adds_the_shared_values_and_skips_existing_keys(docs_engine) -> None:
    d = dialect_for(docs_engine)
    with write_transaction(docs_engine) as conn:
        assert d.insert_ignore_many(conn, docs, ["key"], [{"key": "a", "n": 1, "doc": {"x": 1}}],
                                    {"big": 5, "version": 1}, dumps) == 1
        assert d.insert_ignore_many(conn, docs, ["key"], [{"key": "a", "n": 9, "doc": None},
                                                          {"key": "b", "n": 2, "doc": ["y"]}],
                                    {"big": 6, "version": 2}, dumps) == 1  # how many went in
        assert d.insert_ignore_many(conn, docs, ["key"], [], {"big": 7, "version": 3}, dumps) == 0
    assert _docs(docs_engine) == {"a": ("a", None, 1, 5, {"x": 1}, 1), "b": ("b", None, 2, 6, ["y"], 2)}


def test_clone_copy_indexes_and_swap_tables(docs_engine) -> None:
    d = dialect_for(docs_engine)
    with write_transaction(docs_engine) as conn:
        conn.execute(docs.insert(), {"key": "old", "flag": True, "n": 1, "big": 1, "doc": None, "version": 1})
        d.clone_table_empty(conn, "dialect_docs", "dialect_docs_next")
        d.clone_table_empty(conn, "dialect_docs", "dialect_docs_next")  # an existing one is replaced
    assert _docs(docs_engine, "dialect_docs_next") == {}
    nxt = DriverTable("dialect_docs_next", DOCS.columns, DOCS.kinds, key="key", version="version", dumps=dumps,
                      loads=loads)
    with write_transaction(docs_engine) as conn:
        _on_cursor(conn, lambda cur: d.upsert_newer(cur, nxt, [_doc("new", 1)]))
        indexes = d.copy_indexes(conn, "dialect_docs", "dialect_docs_next")
    with write_transaction(docs_engine) as conn:
        d.swap_tables(conn, "dialect_docs", "dialect_docs_next", indexes)
    assert _docs(docs_engine) == {"new": _doc("new", 1)}
    found = inspect(docs_engine)
    assert not found.has_table("dialect_docs_next")
    assert [i["name"] for i in found.get_indexes("dialect_docs")] == ["ix_dialect_docs_n"]
    assert found.get_pk_constraint("dialect_docs")["constrained_columns"] == ["key"]
    with pytest.raises(IntegrityError), write_transaction(docs_engine) as conn:
        conn.execute(docs.insert(), {"key": "new", "flag": True, "n": 1, "big": 1, "doc": None, "version": 1})


def test_grow_cache_and_driver_autocommit(docs_engine) -> None:
    d = dialect_for(docs_engine)
    with docs_engine.connect() as conn:
        d.grow_cache(conn, 64 << 20)
        if d.single_writer:
            assert conn.exec_driver_sql("PRAGMA cache_size").scalar_one() == -65536
        conn.rollback()
    with dbapi_connection(docs_engine) as raw:
        switched = d.set_driver_autocommit(raw, True)
        assert switched is (d is POSTGRES)
        if switched:
            assert raw.autocommit
            d.set_driver_autocommit(raw, False)
            assert not raw.autocommit
