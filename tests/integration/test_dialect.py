"""The dialect adapter: the same statements behave alike on every backend."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, select
from sqlalchemy.dialects import postgresql, sqlite

from es_app.dialect import UnsupportedBackend, dialect_for
from es_app.dialect.postgres import DIALECT as POSTGRES
from es_app.dialect.sqlite import DIALECT as SQLITE
from es_app.store.engine import make_engine, write_transaction

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


def test_snapshot_read_options_open_a_read_transaction(engine) -> None:
    d = dialect_for(engine)
    with engine.connect().execution_options(**d.snapshot_read_options()) as conn, conn.begin():
        assert conn.execute(select(things.c.name)).all() == []


def test_only_postgres_wakes_listeners() -> None:
    assert POSTGRES.listens and not SQLITE.listens
