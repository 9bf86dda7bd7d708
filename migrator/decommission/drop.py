"""Dropping what the migration leaves in the legacy database: the legacy tables themselves, each table's
capture triggers, the changelog (or only these tables' rows in it while another table is still captured).

The capture SQL comes from the capture backend (`migrator.capture.backends`), the table drop from
SQLAlchemy; the capture history records the removals as `migrator capture remove` does. Before
dropping, each table's row count is checked against its archive: a table that changed since it was
archived is not dropped.

The order is chosen for MySQL/MariaDB, whose DDL commits implicitly (each statement stands alone, so
"one transaction" cannot hold there): the tables go first, and each takes its own capture triggers with
it, so no table is ever left taking writes without capture; the changelog after them, the history last
(its rows would otherwise be committed by the first DDL even when that DDL fails). On SQLite and
PostgreSQL the whole drop is still one transaction: a failure drops nothing. On MySQL a failure of the
first DROP TABLE drops nothing; a later one is reported with what was already dropped, and running
`migrator capture remove --drop-changelog` finishes the leftovers (docs/decommission.md).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from sqlalchemy import Connection, Engine, MetaData, Table, func, inspect, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.schema import DropTable

from es_app.dialect import dialect_for

from ..capture import capture_backend_for, changelog_exists, history, latest_change_id
from ..capture.sql import CHANGELOG, NUMBERING_LOCK_KEY, literal


class DropError(Exception):
    """The drop was refused or failed; nothing was dropped. The message is one line."""


@dataclasses.dataclass(frozen=True)
class DropPlan:
    """Returns what the drop will do: the statements for each table's triggers, for the changelog, and the
    tables dropped; `keep_changelog` names the other tables still captured (empty: the changelog goes)."""

    triggers: dict[str, list[str]]
    changelog: list[str]
    tables: dict[str, str]  # table -> its DROP TABLE statement
    keep_changelog: tuple[str, ...]

    def lines(self) -> list[str]:
        """Returns the plan as the steps a dry run prints, one statement a line, in the order they run."""
        out = [f"drop the legacy table {t} (its capture triggers go with it): {stmt}"
               for t, stmt in self.tables.items()]
        out += [f"drop the capture triggers of {t}: {stmt}" for t, stmts in self.triggers.items() for stmt in stmts]
        why = f" (kept: {', '.join(self.keep_changelog)} still captured)" if self.keep_changelog else ""
        out += [f"drop the changelog{why}: {stmt}" for stmt in self.changelog]
        return out


def _other_captured(conn: Connection, tables: Sequence[str]) -> tuple[str, ...]:
    """Returns the tables other than `tables` that capture still serves: triggers recorded as installed, or
    rows left in the changelog."""
    others: set[str] = set()
    if history.exists(conn):
        named = conn.execute(text(f"SELECT DISTINCT table_name FROM {history.HISTORY} "
                                  "WHERE table_name IS NOT NULL")).scalars()
        others |= {t for t in named if t not in tables and history.table_state(conn, t) == "installed"}
    if changelog_exists(conn):
        others |= {t for t in conn.execute(text(f"SELECT DISTINCT table_name FROM {CHANGELOG}")).scalars()
                   if t not in tables}
    return tuple(sorted(others))


def _plan(conn: Connection, tables: Sequence[str]) -> DropPlan:
    backend = capture_backend_for(conn)
    keep = _other_captured(conn, tables)
    if not changelog_exists(conn):
        changelog: list[str] = []
    elif keep:
        changelog = [f"DELETE FROM {CHANGELOG} WHERE table_name IN ({', '.join(literal(t) for t in tables)})"]
    else:
        changelog = backend.drop_changelog_ddl()
    drops = {t: str(DropTable(Table(t, MetaData())).compile(conn)).strip() for t in tables}
    return DropPlan({t: backend.drop_trigger_ddl(t) for t in tables}, changelog, drops, keep)


def plan(engine: Engine, tables: Sequence[str]) -> DropPlan:
    """Returns what `drop` would do to `tables` now; changes nothing."""
    with engine.connect() as conn:
        return _plan(conn, tables)


def drop(engine: Engine, archived_rows: Mapping[str, int]) -> DropPlan:
    """Drops the archived tables (their capture triggers with them), the changelog (or their rows in it) and
    records the removals; returns what was done. DropError when a table's row count is not the archive's (nothing
    dropped) or when a statement fails: nothing dropped where DDL is transactional, else the error says what was."""
    tables = list(archived_rows)
    dialect = dialect_for(engine)
    backend = capture_backend_for(engine)
    done: list[str] = []  # what is dropped for good already (MySQL: each DDL commits)
    try:
        with engine.connect().execution_options(**dialect.write_options()) as conn, conn.begin():
            dialect.lock_for_transaction(conn, NUMBERING_LOCK_KEY)  # MySQL: GET_LOCK, kept across the DDL's commits
            insp = inspect(conn)
            for t, archived in archived_rows.items():
                if not insp.has_table(t):
                    raise DropError(f"the legacy table {t} is gone already")
                now = conn.execute(select(func.count()).select_from(Table(t, MetaData()))).scalar_one()
                if now != archived:
                    raise DropError(f"the legacy table {t} holds {now:,} rows, its archive {archived:,}: it changed "
                                    "since it was archived; archive again into a new directory")
            steps = _plan(conn, tables)
            has_changelog = changelog_exists(conn)
            removals: list[tuple[str, int]] = []
            generation, high = None, 0
            if history.exists(conn):  # read before anything is dropped; recorded once everything is
                generation = history.current_generation(conn)
                removals = [(t, latest_change_id(conn, t) if has_changelog else 0) for t in tables
                            if history.table_state(conn, t) == "installed"]
                high = history.high_id(conn) if has_changelog else 0
            for t in tables:
                conn.execute(DropTable(Table(t, MetaData())))
                done.append(f"the table {t} and its triggers")
            for t in tables:
                backend.drop_triggers(conn, t)
            backend.run(conn, steps.changelog)
            if steps.changelog:
                done.append("the changelog's rows of these tables" if steps.keep_changelog else "the changelog")
            if history.exists(conn):
                gen_id = None if generation is None else generation.generation
                for t, last in removals:
                    history.record(conn, "removed", t, generation=gen_id, last_id=last)
                if has_changelog and not steps.keep_changelog:
                    history.record(conn, "changelog_dropped", generation=gen_id, last_id=high)
    except SQLAlchemyError as exc:
        text_ = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        reason = text_[0] if text_ else type(exc).__name__
        if dialect.transactional_ddl or not done:  # the transaction rolled back, or nothing had run yet
            raise DropError(f"the drop failed and was rolled back: {reason}") from None
        raise DropError(f"the drop failed after dropping {', '.join(done)} (this database's DDL commits by "
                        f"itself): {reason}; run `migrator capture remove --drop-changelog` to drop what is "
                        "left") from None
    return steps
