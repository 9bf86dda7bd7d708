"""`migrator repair --report ID`: turn a stored verify run's mismatches into the events that make the new side
agree with the legacy side (the source of truth until writes switch).

Per listed mismatch, by what is true *now* (the legacy row and the stream are read again at
repair time, so a row changed since the run is repaired as it is now):

- the stream disagrees with a live legacy row field by field: one correction event per field
  (reason `repair of verify run ID`, see `corrections`), or the row's import event when a field
  cannot be corrected so; no stream, or a deleted one: the row's import event;
- a live stream whose legacy row is gone: its delete event;
- `replay_differs` (the read model disagrees with its stream): the key's read-model row is
  re-folded from its events (`es_app.projections.refold_users`); so is the row of any other key
  whose stream needed no event (e.g. a read-model row with neither stream nor legacy row);
- `pending`: skipped (in flight when verified: verify again).

Events go through the re-sync's code paths (`migrator.relay.resync.Resync`, with `source=repair`):
one write transaction per chunk of keys holding the relay's checkpoint lock, appends at the
version read (a stream another writer moved meanwhile is left for a second run), unique
claims moved as the relay moves them. Nothing is patched in place: the history keeps the fix.
A second run finds everything in agreement and writes nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine

from es_app.projections import refold_users
from es_app.projections.checkpoints import USERS as USERS_PROJECTION
from es_app.store import EventStore, NewEvent

from ..mapping import CompiledMapping
from ..relay.resync import Resync, ResyncTotals
from ..report.document import shown
from ..verify.report import PENDING, REAL_KINDS, REPLAY_DIFFERS
from .corrections import correction_events, differing_fields

SOURCE = "repair"
REPAIRABLE = REAL_KINDS  # every kind but pending
READ_MODEL_CATEGORY = "user"  # the category es_app's users read model folds


def reason_of(run_id: Any) -> str:
    """Returns the reason every correction of a run's repair carries."""
    return f"repair of verify run {run_id}"


@dataclasses.dataclass(frozen=True)
class Action:
    """One thing a repair does (or would do) for one key: `action` is correct, import, delete, rebuild, skip,
    none (already agrees) or raced (another writer moved the stream meanwhile)."""

    table: str
    key: Any
    stream_id: str
    kind: str  # the mismatch's kind in the report
    action: str
    detail: str = ""
    events: int = 0
    done: bool = False


@dataclasses.dataclass
class RepairResult:
    """Returns a repair's actions, in the report's order, and notes about the run as a whole."""

    run_id: Any
    applied: bool
    actions: list[Action] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def events(self) -> int:
        return sum(a.events for a in self.actions if a.done)

    @property
    def raced(self) -> int:
        return sum(a.action == "raced" for a in self.actions)


class _Repair(Resync):
    """The re-sync of chosen keys with corrections instead of imports where a stream is live (see the module)."""

    def __init__(self, mapping: CompiledMapping, legacy: Engine, store: EventStore, *, run_id: Any, apply: bool,
                 kinds: Mapping[str, str]):
        super().__init__(mapping, legacy, store, source=SOURCE)
        self.run_id, self.apply, self.kinds = run_id, apply, kinds
        self.actions: dict[str, Action] = {}
        self._planned: dict[str, tuple[str, str]] = {}

    def _sync_events(self, conn: Connection, stream_id: str, row: dict[str, Any], version: int,
                     state: dict[str, Any] | None, expected: dict[str, Any], watermark: int) -> list[NewEvent]:
        if state is not None:
            recorded = self.store.read_streams(conn, [stream_id]).get(stream_id, [])
            now = datetime.now(UTC).isoformat(timespec="microseconds")
            meta = {"source": SOURCE, "actor": "migrator", "occurred_at": now, "verify_run": self.run_id}
            events = correction_events(self.mapping, stream_id, recorded, state, expected,
                                       reason=reason_of(self.run_id), metadata=meta,
                                       event_id=lambda i: self.event_id(stream_id, version + 1 + i))
            if events:
                detail = "; ".join(f"{f} {_shown(_field(state, f))} -> {_shown(_field(expected, f))}"
                                   for f in differing_fields(state, expected))
                self._planned[stream_id] = ("correct", detail)
                return events
        events = super()._sync_events(conn, stream_id, row, version, state, expected, watermark)
        self._planned[stream_id] = ("import", "no live stream: import the legacy row" if state is None else
                                    "restate the whole legacy row (not correctable field by field: "
                                    + ", ".join(differing_fields(state, expected)) + ")")
        return events

    def _append(self, conn: Connection, items: list[tuple[str, list[NewEvent], int]],
                totals: ResyncTotals) -> list[str]:
        for sid, events, _ in items:
            action, detail = self._planned.pop(sid, ("delete", "the legacy row is gone: delete the stream"))
            self.actions[sid] = Action(self.mapping.table, self._key(sid), sid, self.kinds.get(sid, ""), action,
                                       detail, len(events))
        if not self.apply:
            return []
        done = set(super()._append(conn, items, totals))
        for sid, _, _ in items:
            a = self.actions[sid]
            self.actions[sid] = dataclasses.replace(a, done=True) if sid in done else dataclasses.replace(
                a, action="raced", detail="the stream changed meanwhile: run the repair again", events=0)
        return list(done)

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        if self.apply:
            with super()._transaction() as conn:
                yield conn
            return
        with self.store.engine.connect() as conn, conn.begin() as tx:  # a plan: nothing is kept
            yield conn
            tx.rollback()

    def _key(self, stream_id: str) -> Any:
        return self.mapping.key_of({self.mapping.key: self.mapping.key_from_stream(stream_id)})


def repair(doc: Mapping[str, Any], legacy: Engine, store: EventStore, mappings: Sequence[CompiledMapping], *,
           apply: bool = False) -> RepairResult:
    """Returns what repairing the run's listed mismatches does (with `apply`) or would do (see the module).

    `mappings` are bound mappings of (at least) the run's tables; a table without one is noted and skipped."""
    run_id = doc.get("id")
    result = RepairResult(run_id, apply)
    listed = [m for m in doc.get("mismatches") or () if isinstance(m, Mapping)]
    if doc.get("mismatches_truncated"):
        result.notes.append(f"the run lists {len(listed):,} of its {int(doc.get('mismatches_total') or 0):,} "
                            "mismatches: only those are repaired; verify again afterwards")
    by_table = {m.table: m for m in mappings}
    order: list[tuple[str, str]] = []
    per_table: dict[str, dict[str, str]] = {}
    actions: dict[tuple[str, str], list[Action]] = {}
    for m in listed:
        table, kind = str(m.get("table")), str(m.get("kind"))
        mapping = by_table.get(table)
        sid = (str(m.get("stream_id")) if mapping is None
               else mapping.stream_id(mapping.key_of({mapping.key: m.get("key")})))
        order.append((table, sid))
        if mapping is None:
            actions[(table, sid)] = [Action(table, m.get("key"), sid, kind, "skip", "no mapping of this table")]
        elif kind == PENDING:
            actions[(table, sid)] = [Action(table, m.get("key"), sid, kind, "skip", _pending_detail(m))]
        elif kind not in REPAIRABLE:
            actions[(table, sid)] = [Action(table, m.get("key"), sid, kind, "skip", f"unknown kind {kind!r}")]
        else:
            per_table.setdefault(table, {})[sid] = kind
    for table, kinds in per_table.items():
        mapping = by_table[table]
        worker = _Repair(mapping, legacy, store, run_id=run_id, apply=apply, kinds=kinds)
        worker.run_keys([worker._key(sid) for sid in kinds])
        for sid, a in worker.actions.items():
            actions.setdefault((table, sid), []).append(a)
        # the read model of replay_differs keys, and of keys whose streams already agree (a row left behind)
        refold = [sid for sid, k in kinds.items() if k == REPLAY_DIFFERS or sid not in worker.actions]
        for sid, a in _rebuild(mapping, store, refold, kinds, apply, worker):
            actions.setdefault((table, sid), []).append(a)
        for sid, kind in kinds.items():
            if (table, sid) not in actions:
                actions[(table, sid)] = [Action(table, worker._key(sid), sid, kind, "none",
                                                "the new side agrees with the legacy row now")]
    result.actions = [a for k in dict.fromkeys(order) for a in actions[k]]
    return result


def _rebuild(mapping: CompiledMapping, store: EventStore, stream_ids: list[str], kinds: Mapping[str, str], apply: bool,
             worker: _Repair) -> list[tuple[str, Action]]:
    """Returns (stream id, action) of re-folding the read-model rows of `stream_ids`: those that differ from their
    stream's events (up to the projection's checkpoint; events appended by this repair are the runner's). Only
    `replay_differs` keys are told why a row could not be rebuilt."""
    if not stream_ids:
        return []
    t = mapping.table

    def action(sid: str, verb: str, detail: str, done: bool = False) -> tuple[str, Action]:
        return sid, Action(t, worker._key(sid), sid, kinds[sid], verb, detail, done=done)

    asked = [sid for sid in stream_ids if kinds[sid] == REPLAY_DIFFERS]
    if mapping.category != READ_MODEL_CATEGORY:
        return [action(sid, "skip", "the table has no read model to rebuild") for sid in asked]
    refolded = refold_users(store.engine, store, stream_ids, write=apply)
    if refolded.unprojected:
        return [action(sid, "skip", "the projection has not run yet: run `migrator projections run`")
                for sid in asked]
    return ([action(sid, "rebuild", f"re-fold the {USERS_PROJECTION} read-model row from the stream", apply)
             for sid in refolded.changed]
            + [action(sid, "skip", "a dead letter of the stream waits: see `migrator dead-letters list`")
               for sid in refolded.parked]
            + [action(sid, "skip", "the projection cannot apply one of the stream's events")
               for sid in refolded.failed])


def _pending_detail(m: Mapping[str, Any]) -> str:
    p = (m.get("explain") or {}).get("pending") or {}
    waits = []
    if isinstance(p, Mapping) and p.get("changelog_id") is not None:
        waits.append(f"changelog #{p['changelog_id']} not relayed")
    if isinstance(p, Mapping) and p.get("read_model_position") is not None:
        waits.append(f"read model at position {p['read_model_position']}")
    return "in flight when verified" + (f" ({', '.join(waits)})" if waits else "") + ": verify again, nothing to repair"


def _field(state: Mapping[str, Any], name: str) -> Any:
    if name.startswith("extra."):
        return (state.get("extra") or {}).get(name[len("extra."):])
    return state.get(name)


def _shown(value: Any) -> str:
    return shown(value)
