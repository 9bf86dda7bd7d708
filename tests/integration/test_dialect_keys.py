"""The dialect's `next_key`: a key no insert into the table can take, on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import text

from es_app.dialect import dialect_for
from es_app.store import make_engine
from migrator.switchover.keys import keys


def _insert(conn, key=None):
    """Inserts a row with `key`, or numbered by the table itself."""
    columns, values = ("id, ", ":id, ") if key is not None else ("", "")
    count = conn.execute(text("SELECT count(*) FROM users")).scalar()
    conn.execute(text(f"INSERT INTO users ({columns}email, full_name, is_active, created_at, updated_at) "
                      f"VALUES ({values}:e, 'N', true, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"),
                 {"id": key, "e": f"u{count}@x.org"})


def test_next_key_is_past_every_key_and_the_tables_own_numbering_goes_past_it(new_database_url):
    engine = make_engine(new_database_url("keys"))
    dialect = dialect_for(engine)
    try:
        with engine.connect().execution_options(**dialect.write_options()) as conn, conn.begin():
            _insert(conn, 10)
            first = dialect.next_key(conn, "users", "id", keys)
            _insert(conn, first)
        assert first == 11
        with engine.connect().execution_options(**dialect.write_options()) as conn, conn.begin():
            _insert(conn)  # numbered by the table itself
            own = conn.execute(text("SELECT max(id) FROM users")).scalar()
            second = dialect.next_key(conn, "users", "id", keys)
        assert own > first and second > own
        with engine.connect().execution_options(**dialect.write_options()) as conn, conn.begin():
            conn.execute(text("DELETE FROM users WHERE id = :k"), {"k": own})  # the highest row goes
            third = dialect.next_key(conn, "users", "id", keys)
        assert third > second  # never a key handed out before
    finally:
        engine.dispose()
