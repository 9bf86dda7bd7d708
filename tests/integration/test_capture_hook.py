"""Application-level capture: the session hook writes the same changelog rows as the triggers."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from es_app.store import make_engine
from legacy_app.models import User
from migrator.capture import changelog as capture
from migrator.capture.hook import install_session_hook
from migrator.mapping import USERS

T = datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=timezone.utc)


class HookedSession(Session):
    """A session class of this test only, so the hook is attached to nothing else."""


def orm_script(session_factory):
    """The same ORM unit-of-work writes, whichever capture mode records them."""
    with session_factory() as s, s.begin():
        s.add_all([User(id=i, email=f"u{i}@x.org", full_name=f"User {i}", is_active=True, phone=None,
                        created_at=T, updated_at=T) for i in (1, 2, 3)])
    with session_factory() as s, s.begin():
        one = s.get(User, 1)
        one.full_name, one.updated_at = "Renamed", T + timedelta(seconds=1)
        s.delete(s.get(User, 2))
        s.get(User, 3).phone = "555"
    with session_factory() as s, s.begin():
        s.get(User, 3).phone = "555"  # no net change: no UPDATE, no row
    with pytest.raises(RuntimeError):
        with session_factory() as s, s.begin():
            s.get(User, 1).full_name = "Never"
            s.flush()
            raise RuntimeError("rolled back after the flush")


def logged(engine):
    with engine.connect() as conn:
        return [(c.op, c.pk, c.old_row, c.new_row, c.origin) for c in capture.read_changes(conn, "users", 0)]


@pytest.fixture
def two_databases(new_legacy_and_es_urls):
    engines = [make_engine(new_legacy_and_es_urls("triggers")[0]), make_engine(new_legacy_and_es_urls("hook")[0])]
    yield engines
    for e in engines:
        e.dispose()


def test_session_hook_writes_what_the_triggers_write(two_databases):
    by_trigger, by_hook = two_databases
    capture.install(by_trigger, [USERS])
    capture.install(by_hook, [USERS], mode="session")
    orm_script(lambda: Session(by_trigger))
    hook = install_session_hook(HookedSession, [USERS.bind(by_hook)])
    try:
        orm_script(lambda: HookedSession(by_hook))
    finally:
        hook.detach(HookedSession)
    expected = logged(by_trigger)
    assert sorted((op, pk) for op, pk, *_ in expected) == [("D", "2"), ("I", "1"), ("I", "2"), ("I", "3"),
                                                           ("U", "1"), ("U", "3")]
    assert sorted(logged(by_hook), key=repr) == sorted(expected, key=repr)
    with Session(by_hook) as s:  # and the legacy data itself is the same
        assert [u.full_name for u in s.scalars(select(User).order_by(User.id))] == ["Renamed", "User 3"]


def test_session_hook_marks_migrator_writes(two_databases):
    engine = two_databases[1]
    capture.install(engine, [USERS], mode="session")
    hook = install_session_hook(HookedSession, [USERS.bind(engine)])
    try:
        with HookedSession(engine) as s, s.begin():
            s.add(User(id=7, email="a@b.co", full_name="A", is_active=True, created_at=T, updated_at=T))
        with HookedSession(engine) as s, s.begin():
            with capture.migrator_writes(s.connection()):
                s.get(User, 7).full_name = "From events"
                s.flush()
    finally:
        hook.detach(HookedSession)
    assert [(op, origin) for op, _, _, _, origin in logged(engine)] == [("I", "legacy"), ("U", "migrator")]


def test_the_hook_needs_bound_mappings():
    with pytest.raises(ValueError, match="bind the mappings first"):
        install_session_hook(HookedSession, [USERS.compile()])  # not bound to a database
