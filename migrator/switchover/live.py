"""`LiveRoutes`: the legacy app's reads and writes chosen per request from the migration's state, so
`migrator reads --mode ...` (and every phase step) reaches a running app within `poll_s`, without a restart.

Reads mode `legacy`: the legacy table. `shadow`: the legacy table serves, and the sampled share of
users (`percent`, by key hash) is also read from the read model in the background and compared
(`migrator.shadow`). `new`: the read model serves the `percent` share of users, legacy the rest.
Writes mode `legacy`: the legacy table; `new`: what `writes_factory(database, es)` builds (the
event-sourced commands), refused with 503 while there is none. `close()` stops the shadow threads and
flushes their counts into the migration stream.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from es_app.bootstrap import EsContainer
from legacy_app.db import Database
from legacy_app.reads import LegacyTableReads, Page, ReadMode, ReadModeError, UserReads, UserRecord
from legacy_app.service import UserService
from legacy_app.writes import UserWrites

from ..mapping import CompiledMapping
from ..phases.control import LiveControl
from ..phases.machine import DECOMMISSIONED
from ..phases.state import MigrationState
from ..shadow import mismatches
from ..shadow.flusher import CountsFlusher
from ..shadow.freshness import Freshness
from ..shadow.judge import ReadJudge
from ..shadow.lab import Lab
from ..shadow.metrics import ReadMetrics
from ..shadow.reads import ShadowReads, search_key
from ..shadow.sampling import sampled
from ..verify.readmodel import USERS_VIEW
from .new_reads import ReadModelReads

log = logging.getLogger(__name__)

WritesFactory = Callable[[Database, EsContainer], UserWrites]
LEGACY_TABLE = "users"  # the table the legacy app reads and writes


class _Served:
    """Reads of one source, counted under the reads mode that chose them."""

    def __init__(self, reads: UserReads, metrics: ReadMetrics, mode: str, served: str):
        self.inner, self.metrics, self.label, self.served = reads, metrics, mode, served
        self.mode = reads.mode

    def get(self, user_id: int) -> UserRecord | None:
        self.metrics.read(self.label, self.served)
        return self.inner.get(user_id)

    def search(self, query: str | None = None, *, limit: int = 50, offset: int = 0) -> Page:
        self.metrics.read(self.label, self.served)
        return self.inner.search(query, limit=limit, offset=offset)


class _Split:
    """`new` mode for `percent` of the users (by key hash; a search by a hash of its query), legacy for the rest."""

    mode = ReadMode.NEW

    def __init__(self, new: UserReads, legacy: UserReads, percent: float):
        self.new, self.legacy, self.percent = new, legacy, percent

    def get(self, user_id: int) -> UserRecord | None:
        return (self.new if sampled(user_id, self.percent) else self.legacy).get(user_id)

    def search(self, query: str | None = None, *, limit: int = 50, offset: int = 0) -> Page:
        chosen = self.new if sampled(search_key(query, limit, offset), self.percent) else self.legacy
        return chosen.search(query, limit=limit, offset=offset)


NO_WRITES_REASON = ("writes are switched to the new system, but this legacy app has no event-sourced writes: "
                    "roll writes back (`migrator rollback`) or serve the app that has them")
DECOMMISSIONED_REASON = ("the legacy users table is decommissioned: this API serves reads from the new read model; "
                         "write through the event-sourced API")


class _Refused:
    """Writes this app cannot take now, each refused with `reason` (503): writes switched without event-sourced
    writes here, or the legacy table decommissioned."""

    def __init__(self, reason: str):
        self.reason = reason

    def create(self, *, email: str, full_name: str, is_active: bool = True, phone: str | None = None) -> UserRecord:
        raise ReadModeError(self.reason)

    def update(self, user_id: int, changes: dict[str, Any]) -> UserRecord:
        raise ReadModeError(self.reason)

    def delete(self, user_id: int) -> None:
        raise ReadModeError(self.reason)


class LiveRoutes:
    """Returns, per request, the reads and writes the migration's state asks for (legacy_app.routing.Routes)."""

    def __init__(self, database: Database, es: EsContainer, mappings: Sequence[CompiledMapping], *, name: str,
                 poll_s: float = 1.0, writes_factory: WritesFactory | None = None,
                 candidate: UserReads | None = None, metrics: ReadMetrics | None = None):
        settings = es.settings
        found = [m for m in mappings if m.table == LEGACY_TABLE]
        if not found:
            raise ReadModeError(f"no mapping of the {LEGACY_TABLE} table: the live routes need one")
        mapping = found[0]
        self.database, self.es, self.name = database, es, name
        self.metrics = metrics or ReadMetrics()
        self.control = LiveControl(es.store, name, poll_s=poll_s)
        self._state: MigrationState = self.control.state
        self._lock = threading.Lock()
        self.legacy = LegacyTableReads(database)
        self.freshness = Freshness(database.engine, es.store, mapping, USERS_VIEW)
        self.new = ReadModelReads(es.engine, mapping, fallback=self.legacy, freshness=self.freshness,
                                  wait_s=settings.read_wait_s, metrics=self.metrics)
        self.candidate = candidate or ReadModelReads(es.engine, mapping)  # no wait: lag is judged after
        # once decommissioned there is no legacy table to fall back on: the read model serves after its wait
        self.final = ReadModelReads(es.engine, mapping, freshness=self.freshness, wait_s=settings.read_wait_s,
                                    metrics=self.metrics)
        self.lab = Lab(self.metrics, pool=settings.shadow_pool, queue=settings.shadow_queue,
                       timeout_s=settings.shadow_timeout_ms / 1000.0)
        self.judge = ReadJudge(name, mapping, self.legacy, self.candidate, freshness=self.freshness,
                               record=lambda found: mismatches.record(es.engine, found))
        self.flusher = CountsFlusher(es.store, name, self.metrics, settings.shadow_flush_s)
        self._legacy_writes = UserService(database)
        self._writes_factory = writes_factory
        self._new_writes: UserWrites | None = None
        self._views: dict[tuple[str, float], UserReads] = {}

    def state(self) -> MigrationState:
        """Returns the migration's state as last read (read again at most every poll_s; kept when unreadable)."""
        with self._lock:
            try:
                self._state = self.control.state
            except SQLAlchemyError as exc:
                log.warning("live routes: cannot read the migration's state, keeping reads %s: %s",
                            self._state.reads, exc)
            return self._state

    def reads(self) -> UserReads:
        """Returns the reads of the migration's reads mode and percent now."""
        st = self.state()
        view = (DECOMMISSIONED, 100.0) if st.phase == DECOMMISSIONED else (st.reads, st.reads_percent)
        found = self._views.get(view)
        if found is None:
            found = self._views[view] = self._reads_for(*view)
        return found

    def _reads_for(self, mode: str, percent: float) -> UserReads:
        m = self.metrics
        if mode == DECOMMISSIONED:
            return _Served(self.final, m, ReadMode.NEW.value, "read_model")
        if mode == ReadMode.SHADOW.value:
            return ShadowReads(_Served(self.legacy, m, mode, "legacy"), self.candidate, self.lab, self.judge, percent)
        if mode == ReadMode.NEW.value:
            return _Split(_Served(self.new, m, mode, "read_model"), _Served(self.legacy, m, mode, "legacy"), percent)
        return _Served(self.legacy, m, ReadMode.LEGACY.value, "legacy")

    def writes(self) -> UserWrites:
        """Returns the writes of the migration's writes mode now."""
        st = self.state()
        if st.phase == DECOMMISSIONED:
            return _Refused(DECOMMISSIONED_REASON)
        if st.writes != "new":
            return self._legacy_writes
        if self._writes_factory is None:
            return _Refused(NO_WRITES_REASON)
        with self._lock:
            if self._new_writes is None:
                self._new_writes = self._writes_factory(self.database, self.es)
        return self._new_writes

    def close(self) -> None:
        """Stops the shadow reads' threads and flushes their counts."""
        self.lab.close()
        self.flusher.close()
