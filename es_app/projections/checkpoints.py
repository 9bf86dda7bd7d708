"""Checkpoints: one row per projection (or per shard of it), moved with the read model.

A projection run unsharded keeps its position under its own name (`users`); run in
N shards it keeps one row per shard (`users:0/4` ... `users:3/4`). All workers of a
projection use the same shard count; when the count changes, the new layout starts
at the lowest position of the old one (re-applying an event is a no-op), and the old
rows are removed in the same transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Select, bindparam, func, select

from es_app.dialect import Dialect, dialect_for
from es_app.store.driver import dbapi_connection

from .tables import projection_checkpoints as cp

USERS = "users"


def shard_of(stream_id: str, shards: int) -> int:
    """Returns the shard (0..shards-1) that owns a stream: a stable hash, the same in every process."""
    digest = hashlib.blake2b(stream_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


def check_shard(shard: int | None, shards: int | None) -> tuple[int | None, int | None]:
    """Returns (shard, shards) normalised: (None, None) when unsharded; raises ValueError when invalid."""
    if shards is None or shards == 1:
        if shard not in (None, 0):
            raise ValueError(f"shard {shard} needs a shard count above 1")
        return None, None
    if shards < 1:
        raise ValueError(f"shard count must be at least 1, got {shards}")
    if shard is None or not 0 <= shard < shards:
        raise ValueError(f"shard must be between 0 and {shards - 1}, got {shard}")
    return shard, shards


def checkpoint_name(projection: str, shard: int | None = None, shards: int | None = None) -> str:
    """Returns the checkpoint row name of a projection, or of one of its shards."""
    shard, shards = check_shard(shard, shards)
    return projection if shards is None else f"{projection}:{shard}/{shards}"


def layout_names(projection: str, shards: int | None) -> list[str]:
    """Returns the checkpoint names of every shard of a layout (one name when unsharded)."""
    if shards is None or shards == 1:
        return [projection]
    return [checkpoint_name(projection, i, shards) for i in range(shards)]


def _rows_of(projection: str):
    return (cp.c.name == projection) | cp.c.name.like(f"{projection}:%")


def _locked(conn: Connection, q):
    return dialect_for(conn).lock_rows(q)


def ensure_layout(conn: Connection, projection: str, shards: int | None) -> None:
    """Creates the layout's checkpoint rows when missing, starting where the old layout safely was."""
    wanted = layout_names(projection, shards)
    rows = {n: p for n, p in conn.execute(_locked(conn, select(cp.c.name, cp.c.position).where(_rows_of(projection))))}
    if set(rows) == set(wanted):
        return
    present = [rows[n] for n in wanted if n in rows]
    others = [p for n, p in rows.items() if n not in wanted]
    start = min(present + others) if (present or others) else 0
    now = datetime.now(UTC)
    for name in wanted:
        if name not in rows:
            conn.execute(_insert_ignore(conn).values(name=name, position=start, updated_at=now))
    if others:
        conn.execute(cp.delete().where(_rows_of(projection), cp.c.name.not_in(wanted)))


def _insert_ignore(conn: Connection):
    return dialect_for(conn).insert_ignore(cp, ["name"])


def lock_layout(conn: Connection, projection: str) -> dict[str, int]:
    """Returns {checkpoint name: position} of every checkpoint row of the projection, locked until the
    transaction ends (empty before its first run)."""
    return dict(conn.execute(_locked(conn, select(cp.c.name, cp.c.position).where(_rows_of(projection)))).all())


def shard_in_name(name: str) -> tuple[int | None, int | None]:
    """Returns (shard, shards) of a checkpoint name made by `checkpoint_name` ((None, None) when unsharded)."""
    _, sep, part = name.rpartition(":")
    if not sep:
        return None, None
    shard, _, shards = part.partition("/")
    return int(shard), int(shards)


# The statements a projection run executes on every batch, built once: building a Core statement
# costs about three times its execution (SQLAlchemy's compiled cache still serves the SQL).
_GET_POSITION = select(cp.c.position).where(cp.c.name == bindparam("cp_name"))
_SAVE_POSITION = cp.update().where(cp.c.name == bindparam("cp_name")).values(
    position=bindparam("cp_position"), updated_at=bindparam("cp_updated_at"))
_SAVE_POSITION_RATE = cp.update().where(cp.c.name == bindparam("cp_name")).values(
    position=bindparam("cp_position"), updated_at=bindparam("cp_updated_at"), rate=bindparam("cp_rate"))


_LOCK_POSITION: dict[str, Select] = {}  # per backend


def lock_position_sql(dialect: Dialect) -> str:
    """Returns `lock_position` as driver SQL (parameter: the checkpoint's name), for reads sent together."""
    return f"SELECT position FROM projection_checkpoints WHERE name = %s{dialect.row_lock_clause}"


def lock_position(conn: Connection, name: str) -> int | None:
    """Returns the checkpoint's position, locking the row until the transaction ends (None if absent)."""
    statement = _LOCK_POSITION.get(conn.dialect.name)
    if statement is None:
        statement = _LOCK_POSITION[conn.dialect.name] = _locked(conn, _GET_POSITION)
    return conn.execute(statement, {"cp_name": name}).scalar()


def positions_now(engine: Engine, names: Sequence[str]) -> list[int | None]:
    """Returns the positions of these checkpoints (None where absent), read outside any transaction: one
    round trip on PostgreSQL (no BEGIN, no ROLLBACK), whatever the number of names."""
    with dbapi_connection(engine, autocommit=True) as db:
        cur = db.cursor()
        try:
            found = dialect_for(engine).read_together(cur, [(_POSITION_SQL, (name,)) for name in names])
        finally:
            cur.close()
    return [rows[0][0] if rows else None for rows in found]


_POSITION_SQL = "SELECT position FROM projection_checkpoints WHERE name = %s"


def get_position(conn: Connection, name: str) -> int | None:
    """Returns the checkpoint's position without locking it (None if absent)."""
    return conn.execute(_GET_POSITION, {"cp_name": name}).scalar()


def save_position(conn: Connection, name: str, position: int, rate: float | None = None) -> None:
    now = datetime.now(UTC)
    params = {"cp_name": name, "cp_position": position, "cp_updated_at": now}
    if rate is not None:
        params["cp_rate"] = rate
    if conn.execute(_SAVE_POSITION if rate is None else _SAVE_POSITION_RATE, params).rowcount == 0:
        conn.execute(_insert_ignore(conn).values(name=name, position=position, updated_at=now, rate=rate))


# save_position as driver SQL, for a batch's last writes (Dialect.writes_with_commit); a rate of None keeps
# the stored one
_SAVE_LAST = ("UPDATE projection_checkpoints SET position = %s, updated_at = %s, rate = COALESCE(%s, rate) "
              "WHERE name = %s")


def save_locked_position(cur: Any, name: str, position: int, rate: float | None = None) -> None:
    """Saves the position of a checkpoint row this transaction has locked, on a driver cursor inside
    `Dialect.writes_with_commit` where the dialect `commits_with_last_write` (PostgreSQL: it reads no
    result); elsewhere `save_position` does it."""
    cur.execute(_SAVE_LAST, (position, datetime.now(UTC), rate, name), prepare=True)


def replace_layout(conn: Connection, projection: str, shards: int | None, position: int) -> None:
    """Sets the projection's checkpoints to exactly this layout at `position` (after a rebuild)."""
    wanted = layout_names(projection, shards)
    now = datetime.now(UTC)
    conn.execute(cp.delete().where(_rows_of(projection), cp.c.name.not_in(wanted)))
    for name in wanted:
        values = {"position": position, "updated_at": now, "rate": None}
        if conn.execute(cp.update().where(cp.c.name == name).values(**values)).rowcount == 0:
            conn.execute(cp.insert().values(name=name, **values))


def current_shards(conn: Connection, projection: str) -> int | None:
    """Returns the shard count of the projection's stored layout (None when unsharded or not started)."""
    names = conn.execute(select(cp.c.name).where(cp.c.name.like(f"{projection}:%"))).scalars().all()
    counts = {int(n.rsplit("/", 1)[1]) for n in names if "/" in n}
    return max(counts) if counts else None


def delete_checkpoint(conn: Connection, name: str) -> None:
    conn.execute(cp.delete().where(cp.c.name == name))


def read_model_position(engine: Engine | Connection, projection: str = USERS) -> int:
    """Returns the position up to which the projection's read model is complete.

    With shards it is the lowest shard checkpoint; 0 before the first run.
    """
    q = select(func.min(cp.c.position)).where(_rows_of(projection))
    if isinstance(engine, Connection):
        return engine.execute(q).scalar() or 0
    with engine.connect() as conn:
        return conn.execute(q).scalar() or 0
