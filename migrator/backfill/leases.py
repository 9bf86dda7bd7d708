"""Leases: one run at a time of a named job (e.g. the backfill of a table), across hosts.

A lease is a row in the event-store database (`migrator_leases`): who holds it (host, pid,
since when) and until when. A run takes it at start, renews it in the transaction of each
chunk it commits (`renew` fails when another run has taken it over, so the chunk rolls back
and the run stops) and gives it back at the end. A run killed outright (`kill -9`, a lost
host) cannot give it back: its lease expires after the TTL and the next run takes it over.
The holder is one process (host, pid): within a process a later run of the same job takes
the lease over at once, as after a crash of the earlier one in that process.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import Column, Connection, DateTime, Engine, Integer, MetaData, String, Table, select

from es_app.dialect import dialect_for
from es_app.store import write_transaction

DEFAULT_TTL_S = 60.0

metadata = MetaData()

leases = Table(
    "migrator_leases",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("owner", String(100), nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("acquired_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

_PROCESS_TOKEN = uuid.uuid4().hex[:12]


class LeaseHeld(RuntimeError):
    """Another live run holds the lease; the message is one line naming it."""


class LeaseLost(RuntimeError):
    """This run's lease was taken over by another run (it expired): the run must stop."""


@dataclasses.dataclass(frozen=True)
class Lease:
    """Returns a lease this process holds: its name, owner token and time to live."""

    name: str
    owner: str
    ttl_s: float


@dataclasses.dataclass(frozen=True)
class LeaseInfo:
    """Returns who holds a lease: the job, host, pid, since when and until when."""

    name: str
    host: str
    pid: int
    acquired_at: datetime
    expires_at: datetime


def current(engine: Engine) -> list[LeaseInfo]:
    """Returns the leases held now (not expired), by name: the runs going on (for `migrator status`)."""
    now = _now()
    with engine.connect() as conn:
        rows = conn.execute(select(leases).where(leases.c.owner != "").order_by(leases.c.name)).mappings().all()
    found = [LeaseInfo(r["name"], r["host"], r["pid"], _aware(r["acquired_at"]), _aware(r["expires_at"]))
             for r in rows]
    return [lease for lease in found if lease.expires_at > now]


def _owner() -> str:
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{_PROCESS_TOKEN}"  # a forked child is another owner


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)  # SQLite keeps no offset


def acquire_in(conn: Connection, name: str, ttl_s: float = DEFAULT_TTL_S) -> Lease:
    """Returns the lease taken in the caller's write transaction; raises LeaseHeld (one line) while
    another process holds it and it has not expired."""
    if not ttl_s > 0:
        raise ValueError("a lease's TTL must be positive")
    owner, now = _owner(), _now()
    dialect = dialect_for(conn)
    # an expired row to lock, so two first runs do not both insert
    conn.execute(dialect.insert_ignore(leases, values={"name": name, "owner": "", "host": "", "pid": 0,
                                                       "acquired_at": now, "expires_at": now}))
    row = conn.execute(dialect.lock_rows(select(leases).where(leases.c.name == name))).mappings().one()
    if row["owner"] not in ("", owner) and _aware(row["expires_at"]) > now:
        expires = _aware(row["expires_at"])
        raise LeaseHeld(f"{name} is already running on host {row['host']} (pid {row['pid']}) since "
                        f"{_aware(row['acquired_at']):%Y-%m-%d %H:%M:%S} UTC; its lease expires at "
                        f"{expires:%H:%M:%S} UTC unless it goes on (a run that died is taken over then)")
    values = {"owner": owner, "host": socket.gethostname()[:255], "pid": os.getpid(), "acquired_at": now,
              "expires_at": now + timedelta(seconds=ttl_s)}
    conn.execute(leases.update().where(leases.c.name == name).values(**values))
    return Lease(name, owner, ttl_s)


def renew_in(conn: Connection, lease: Lease) -> None:
    """Extends the lease by its TTL in the caller's transaction; raises LeaseLost when another run
    holds it now (then the caller's transaction must not commit)."""
    moved = conn.execute(leases.update().where(leases.c.name == lease.name, leases.c.owner == lease.owner)
                         .values(expires_at=_now() + timedelta(seconds=lease.ttl_s)))
    if moved.rowcount != 1:
        raise LeaseLost(f"{lease.name}: another run took over this run's lease (it had expired); this run stops")


def renew(engine: Engine, lease: Lease) -> None:
    """Extends the lease in a transaction of its own (while a run waits); raises LeaseLost."""
    with write_transaction(engine) as conn:
        renew_in(conn, lease)


def release_in(conn: Connection, lease: Lease) -> None:
    """Gives the lease back in the caller's transaction, if this run still holds it."""
    conn.execute(leases.delete().where(leases.c.name == lease.name, leases.c.owner == lease.owner))


def release(engine: Engine, lease: Lease) -> None:
    """Gives the lease back, if this run still holds it."""
    with write_transaction(engine) as conn:
        release_in(conn, lease)
