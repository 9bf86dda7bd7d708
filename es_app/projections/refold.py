"""Re-fold chosen streams into the users read model: their rows rebuilt from their events, nothing else touched.

For a row the projection got wrong (a projection bug since fixed, a row written by hand): each
stream's events up to the checkpoint that owns it are folded afresh by the projection's own
batch, and the row is replaced when it differs (a stream with no event up to there loses its
row). The checkpoint rows stay locked meanwhile, so no batch of the runner interleaves; events
after the checkpoint are the runner's, as always. Streams with a parked event are left alone
(their row waits for the dead letter to be retried). Running it again changes nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from sqlalchemy import Connection, Engine

from es_app.domain import UserState
from es_app.store import EventStore, write_transaction

from .checkpoints import USERS, checkpoint_name, lock_layout, shard_in_name, shard_of
from .dead_letters import parked_streams
from .tables import users_view
from .users import UsersBatch, _lookup, _row

_POSITION = 7  # the index of `position` in a row tuple: not compared (it says when, not what)


@dataclasses.dataclass(frozen=True)
class RefoldResult:
    """Returns the streams whose rows were replaced (or would be, without `write`), and those left alone:
    `parked` (a dead letter waits), `failed` (an event the projection cannot apply), `unprojected` (the
    projection has not run yet: the runner folds everything)."""

    changed: tuple[str, ...]
    parked: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    unprojected: bool = False


def refold_users(engine: Engine, store: EventStore, stream_ids: Sequence[str], *, write: bool = True) -> RefoldResult:
    """Rebuilds the users_view rows of these streams from their events (see the module); with `write`
    False, only returns which rows would change."""
    wanted = list(dict.fromkeys(stream_ids))
    with _transaction(engine, write) as conn:
        positions = lock_layout(conn, USERS)
        if not positions:
            return RefoldResult((), unprojected=True)
        _, shards = shard_in_name(next(iter(positions)))
        blocked = parked_streams(conn, USERS)
        batch = UsersBatch(conn, users_view, [])
        failed: list[str] = []
        last: dict[str, int] = {}
        for sid, events in store.read_streams(conn, [s for s in wanted if s not in blocked]).items():
            upto = positions.get(checkpoint_name(USERS, None if shards is None else shard_of(sid, shards), shards), 0)
            try:
                for event in events:
                    if event.position <= upto:
                        batch.apply(event)
                        last[sid] = event.position
            except Exception:  # noqa: BLE001 - the projection would park it: the row is left as it is
                failed.append(sid)
                batch.states.pop(sid, None)
        candidates = [s for s in wanted if s not in blocked and s not in failed]
        current = _lookup(conn, users_view.name, candidates) if candidates else {}
        changed = [sid for sid in candidates
                   if _comparable(batch.states.get(sid) if sid in last else None) != _comparable(current.get(sid))]
        if write and changed:
            conn.execute(users_view.delete().where(users_view.c.id.in_(changed)))
            batch.dirty = {sid: last[sid] for sid in changed if sid in last}
            batch.absent = set(batch.dirty)
            batch.flush()
    return RefoldResult(tuple(changed), tuple(s for s in wanted if s in blocked), tuple(failed))


def _comparable(state: UserState | None) -> tuple | None:
    """Returns what a row holds of a state, but its position; None for no row."""
    if state is None:
        return None
    row = _row(state, 0)
    return row[:_POSITION] + row[_POSITION + 1:]


@contextmanager
def _transaction(engine: Engine, write: bool) -> Iterator[Connection]:
    if write:
        with write_transaction(engine) as conn:
            yield conn
        return
    with engine.connect() as conn, conn.begin() as tx:
        yield conn
        tx.rollback()
