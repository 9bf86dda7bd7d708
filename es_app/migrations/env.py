"""Alembic environment of the event-sourced database (store + read models)."""

from alembic import context

from es_app.store.engine import make_engine

VERSION_TABLE = "alembic_version_es"

config = context.config


def _run(connection) -> None:
    context.configure(connection=connection, version_table=VERSION_TABLE, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("no database: set sqlalchemy.url or pass a connection in config.attributes")
    engine = make_engine(url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()
