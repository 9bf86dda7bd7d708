"""A hypothesis state machine: random legacy inserts, updates (single and multi-row) and deletes,
interleaved with backfill chunks (read and appended as separate steps, so changes land between
a chunk's snapshot and its append), relay batches and backfill process restarts.

At the end (backfill finished, relay drained): every legacy row equals the replay of its
stream, every deleted row has a deleted stream, each stream has one import per lifetime,
and no change event is applied twice, out of order or below its stream's import watermark.
"""

from __future__ import annotations

import itertools
import shutil
import uuid
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule, run_state_machine_as_test
from sqlalchemy import text

from es_app.store import EventStore, make_engine
from migrator import schema
from migrator.capture import changelog as capture
from migrator.backfill.run import Backfill, BackfillOptions
from migrator.mapping import USERS
from migrator.relay.runner import Relay

from .backfill_helpers import T0, differences, duplicated_changes, insert_users, streams_of

INITIAL_ROWS = 6  # legacy rows that exist before capture is installed (no changelog rows)

names = st.sampled_from(["Ann", " Ann ", "Bob", "Zoë Ünal", "李雷", "O'Brien", "ann"])
phones = st.sampled_from([None, "", " +1 555 0100 ", "+49 30 1234"])


class BackfillUnderLiveWrites(RuleBasedStateMachine):
    make_url = None  # set by the test: () -> URL of a fresh database with capture installed

    @initialize()
    def open(self):
        self.engine = make_engine(type(self).make_url())
        self.mapping = USERS.bind(self.engine)
        self.store = EventStore(self.engine)
        self.relay = Relay(self.mapping, self.engine, self.store, batch_size=3)
        self.live = set(range(1, INITIAL_ROWS + 1))
        self.ever = set(self.live)
        self.next_key = INITIAL_ROWS + 1
        self.serial = itertools.count(1)
        self.pending = None
        self.backfill = self._new_backfill(resume=False)

    def _new_backfill(self, *, resume: bool) -> Backfill:
        b = Backfill(self.mapping, self.engine, self.store, options=BackfillOptions(batch_size=2))
        b.start(resume=resume)
        return b

    def _stamp(self):
        return T0 + timedelta(seconds=next(self.serial), microseconds=next(self.serial))

    # -- legacy writes -------------------------------------------------------
    @rule(reuse=st.booleans(), name=names, phone=phones, active=st.booleans())
    def insert(self, reuse, name, phone, active):
        dead = sorted(self.ever - self.live)
        key = dead[0] if reuse and dead else self.next_key
        self.next_key = max(self.next_key, key + 1)
        with self.engine.begin() as conn:
            conn.execute(text("INSERT INTO users (id, email, full_name, is_active, phone, created_at, updated_at) "
                              "VALUES (:id, :email, :name, :active, :phone, :t, :t)"),
                         {"id": key, "email": f"New{key}-{next(self.serial)}@X.org", "name": name,
                          "active": active, "phone": phone, "t": self._stamp()})
        self.live.add(key)
        self.ever.add(key)

    @precondition(lambda self: self.live)
    @rule(data=st.data(), name=st.none() | names, phone=st.none() | phones, active=st.none() | st.booleans(),
          email=st.booleans(), many=st.booleans())
    def update(self, data, name, phone, active, email, many):
        keys = sorted(self.live)
        chosen = (data.draw(st.lists(st.sampled_from(keys), min_size=1, max_size=3, unique=True))
                  if many else [data.draw(st.sampled_from(keys))])
        sets = ["updated_at = :t"]
        params = {"t": self._stamp(), "name": name, "phone": phone, "active": active}
        if name is not None:
            sets.append("full_name = :name")
        if phone is not None:
            sets.append("phone = :phone")
        if active is not None:
            sets.append("is_active = :active")
        if email:
            sets.append(f"email = 'E' || id || '-{next(self.serial)}@Example.org'")
        in_list = ", ".join(str(k) for k in chosen)
        with self.engine.begin() as conn:  # one statement, possibly several rows
            conn.execute(text(f"UPDATE users SET {', '.join(sets)} WHERE id IN ({in_list})"), params)

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    def delete(self, data):
        key = data.draw(st.sampled_from(sorted(self.live)))
        with self.engine.begin() as conn:
            conn.execute(text("DELETE FROM users WHERE id = :id"), {"id": key})
        self.live.discard(key)

    # -- the migrator ----------------------------------------------------------
    @precondition(lambda self: self.pending is None and not self.backfill.run.finished)
    @rule(limit=st.integers(1, 4))
    def backfill_read(self, limit):
        self.pending = self.backfill.read_chunk(limit)

    @precondition(lambda self: self.pending is not None)
    @rule()
    def backfill_append(self):
        self.backfill.write_chunk(self.pending)
        self.pending = None

    @rule()
    def backfill_restart(self):
        """The backfill process dies (a read chunk is lost) and is started again with --resume."""
        self.pending = None
        self.backfill = self._new_backfill(resume=True)

    @rule(batches=st.integers(1, 3))
    def relay_run(self, batches):
        self.relay.drain(max_batches=batches)

    def teardown(self):
        if not hasattr(self, "backfill"):
            if hasattr(self, "engine"):
                self.engine.dispose()
            return
        try:
            if self.pending is not None:
                self.backfill.write_chunk(self.pending)
            if not self.backfill.run.finished:
                self.backfill.run_to_end()
            self.relay.drain()
            problems = differences(self.engine, self.store, self.mapping, deleted_keys=self.ever - self.live)
            problems += duplicated_changes(self.store, self.mapping)
            problems += one_import_per_lifetime(self.store, self.mapping)
            assert problems == []
        finally:
            self.engine.dispose()


def one_import_per_lifetime(store, mapping) -> list[str]:
    out = []
    for sid, evs in streams_of(store, mapping).items():
        alive = False
        for e in evs:
            if e.type == mapping.import_event_type:
                if alive:
                    out.append(f"{sid}: import v{e.version} while the stream is alive")
                alive = True
            elif e.type == mapping.delete_event_type:
                alive = False
            elif not alive:
                out.append(f"{sid}: {e.type} v{e.version} before any import")
    return out


def _template(url: str) -> None:
    engine = make_engine(url)
    schema.upgrade_all({"es": engine, "legacy": engine})
    insert_users(engine, list(range(1, INITIAL_ROWS + 1)))
    capture.install(engine, [USERS])
    engine.dispose()


# no shrinking: every example builds databases, so shrinking would outlast the test timeout;
# a failure still prints the whole step sequence that reproduces it
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
                phases=[Phase.explicit, Phase.reuse, Phase.generate])


def test_backfill_relay_and_live_writes_converge_on_sqlite(tmp_path):
    template = tmp_path / "template.db"
    _template(f"sqlite:///{template}")

    def fresh() -> str:
        path = tmp_path / f"ex-{uuid.uuid4().hex[:8]}.db"
        shutil.copy(template, path)
        return f"sqlite:///{path}"

    BackfillUnderLiveWrites.make_url = staticmethod(fresh)
    run_state_machine_as_test(BackfillUnderLiveWrites,
                              settings=settings(max_examples=40, stateful_step_count=40, **SETTINGS))


@pytest.mark.postgres
def test_backfill_relay_and_live_writes_converge_on_postgres(postgres_databases):
    def fresh() -> str:
        url = postgres_databases.new()
        engine = make_engine(url)
        insert_users(engine, list(range(1, INITIAL_ROWS + 1)))
        capture.install(engine, [USERS])
        engine.dispose()
        return url

    BackfillUnderLiveWrites.make_url = staticmethod(fresh)
    run_state_machine_as_test(BackfillUnderLiveWrites,
                              settings=settings(max_examples=12, stateful_step_count=30, **SETTINGS))
