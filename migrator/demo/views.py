"""What the demo shows at each phase: the same users as the legacy row, the read-model row and the state
replayed from their streams, side by side (cells that differ from the legacy row in red), and the numbers
of the moment; and one user's history replayed version by version (time travel)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from rich.table import Table
from rich.text import Text
from sqlalchemy import Engine
from sqlalchemy.exc import DatabaseError

from es_app.bootstrap import EsContainer

from ..mapping import CompiledMapping
from ..verify import legacy_rows, users_read_model

FIELDS = ("name", "email", "active", "phone")


@dataclasses.dataclass(frozen=True)
class Moment:
    """The numbers shown under a phase's table."""

    phase: str
    reads: str
    writes: str
    backlog: int
    lag: int
    events_per_s: float
    legacy_writes: int
    legacy_reads: int


def _cell(value: dict[str, Any] | None, field: str) -> str:
    return "-" if value is None else repr(value.get(field))


def side_by_side(legacy: Engine | None, es: EsContainer, mapping: CompiledMapping, keys: Sequence[int],
                 title: str) -> Table:
    """Returns a table of `keys`: per field, the legacy row, the read-model row and the replayed state
    (a value that differs from the legacy row in red; no legacy engine: the table was archived and dropped)."""
    sids = [mapping.stream_id(k) for k in keys]
    rows: dict[Any, dict[str, Any]] = {}
    archived = legacy is None
    if legacy is not None:
        try:
            rows = legacy_rows(legacy, mapping, list(keys))
        except DatabaseError:
            archived = True
    views = users_read_model(es.engine).states(sids)
    table = Table(title=title, title_justify="left")
    for col in ("user", "field", "legacy row", "read model", "replayed from events"):
        table.add_column(col)
    for key, sid in zip(keys, sids, strict=True):
        row = rows.get(key)
        old = mapping.state_from_row(row) if row is not None else None
        replayed = mapping.replay(es.store.read_stream(sid))
        new = views.get(sid)
        for i, field in enumerate(FIELDS):
            want = "(archived)" if archived else _cell(old, field)
            cells = [Text(_cell(v, field), "red" if not archived and _cell(v, field) != want else "green")
                     for v in (new, replayed)]
            table.add_row(f"{key} {sid}" if i == 0 else "", field, want, *cells,
                          end_section=field == FIELDS[-1])
    return table


def moment_line(m: Moment) -> Text:
    """Returns one line of the moment's numbers."""
    return Text.assemble(("  phase ", "dim"), (m.phase, "bold"), ("  reads ", "dim"), m.reads,
                         ("  writes ", "dim"), m.writes, ("  relay backlog ", "dim"), str(m.backlog),
                         ("  projection lag ", "dim"), str(m.lag), ("  events/s ", "dim"), f"{m.events_per_s:,.0f}",
                         ("  legacy app: ", "dim"), f"{m.legacy_writes:,} writes, {m.legacy_reads:,} reads")


def time_travel(es: EsContainer, stream_id: str, versions: Sequence[int]) -> Table:
    """Returns a table of the user's state at each of `versions`, replayed from its events (the event that
    made each version, its source and reason)."""
    events = {e.version: e for e in es.store.read_stream(stream_id)}
    table = Table(title=f"time travel: {stream_id} replayed from its events", title_justify="left")
    for col in ("version", "event", "source", "name", "email", "active"):
        table.add_column(col)
    for v in versions:
        state = es.users.load(stream_id, version=v).state
        e = events[v]
        what = e.type + (f" ({e.data['field']}: {e.data['reason']})" if e.type == "UserCorrected" else "")
        table.add_row(str(v), what, str(e.metadata.get("source", "")), repr(state.name), repr(state.email),
                      str(state.active))
    return table
