"""Fresh databases at schema head for the plugin's fixtures: SQLite files copied from a file migrated once per
session, or PostgreSQL databases cloned from a template migrated once per session (created next to the given
URL's database, dropped after)."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text

from es_app.store import make_engine

from .. import schema


def migrated(url: str) -> str:
    """Returns `url` after upgrading both schemas (event store and legacy) in that database."""
    engine = make_engine(url)
    try:
        schema.upgrade_all({"es": engine, "legacy": engine})
    finally:
        engine.dispose()
    return url


class SqliteDatabases:
    """Creates SQLite files in `directory`, each a copy of one migrated file."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.template: Path | None = None

    def new(self) -> str:
        """Returns the URL of a new SQLite file at schema head."""
        if self.template is None:
            self.template = self.directory / "template.db"
            migrated(f"sqlite:///{self.template}")
        path = self.directory / f"db-{uuid.uuid4().hex[:12]}.db"
        shutil.copyfile(self.template, path)
        return f"sqlite:///{path}"

    def drop(self, url: str) -> None:
        """Removes the file of `url`."""
        Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)

    def close(self) -> None:
        """Removes the migrated file."""
        if self.template is not None:
            self.template.unlink(missing_ok=True)


def _sibling(url: str, name: str) -> str:
    return f"{url.rpartition('/')[0]}/{name}"


class PostgresDatabases:
    """Creates PostgreSQL databases from a migrated template next to `url`'s database; `drop` removes one."""

    def __init__(self, url: str):
        self.url = url
        self.admin = create_engine(url, isolation_level="AUTOCOMMIT")
        self.template: str | None = None

    def _exec(self, sql: str) -> None:
        with self.admin.connect() as conn:
            conn.execute(text(sql))

    def new(self) -> str:
        """Returns the URL of a new database at schema head."""
        if self.template is None:
            name = f"migrator_tmpl_{uuid.uuid4().hex[:10]}"
            self._exec(f'CREATE DATABASE "{name}"')
            self.template = name
            migrated(_sibling(self.url, name))
        name = f"migrator_t_{uuid.uuid4().hex[:12]}"
        self._exec(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        return _sibling(self.url, name)

    def drop(self, url: str) -> None:
        """Drops the database of `url` (closing what still connects to it)."""
        self._exec(f'DROP DATABASE IF EXISTS "{url.rpartition("/")[2]}" WITH (FORCE)')

    def close(self) -> None:
        """Drops the template and closes the admin connection."""
        if self.template is not None:
            self._exec(f'DROP DATABASE IF EXISTS "{self.template}" WITH (FORCE)')
        self.admin.dispose()
