"""Hypothesis strategies: random User histories (a start and a sequence of commands).

Values come from small pools so that no-ops, case-only changes, invalid input and
commands on deleted users all happen often.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from es_app.domain import DomainError, DomainEvent, User
from tests.factories import UserImportedFactory, given

NAMES = ["Ann", " Ann ", "Bob", "", "Cy Young"]
EMAILS = ["ann@x.io", "ANN@x.io", "bob@x.io", "not-an-email"]
PHONES = [None, "555", " 555 ", "", "1" * 41]
REASONS = ["typo", "", "legacy data was wrong"]

Command = tuple[str, tuple[Any, ...]]

commands: st.SearchStrategy[Command] = st.one_of(
    st.tuples(st.just("change_name"), st.tuples(st.sampled_from(NAMES))),
    st.tuples(st.just("change_email"), st.tuples(st.sampled_from(EMAILS))),
    st.tuples(st.just("change_phone"), st.tuples(st.sampled_from(PHONES))),
    st.tuples(st.just("deactivate"), st.tuples(st.sampled_from([None, "left"]))),
    st.tuples(st.just("reactivate"), st.just(())),
    st.tuples(st.just("delete"), st.just(())),
    st.tuples(st.just("correct"), st.one_of(
        st.tuples(st.just("name"), st.sampled_from(NAMES), st.sampled_from(REASONS)),
        st.tuples(st.just("email"), st.sampled_from(EMAILS), st.sampled_from(REASONS)),
        st.tuples(st.just("phone"), st.sampled_from(PHONES), st.sampled_from(REASONS)),
        st.tuples(st.just("active"), st.sampled_from([True, False, "yes"]), st.sampled_from(REASONS)),
        st.tuples(st.just("deleted"), st.just(False), st.just("sneaky")),
    )),
)

starts = st.sampled_from(["register", "import", "nothing"])
histories = st.tuples(starts, st.lists(commands, max_size=14))


def start_user(stream_id: str, start: str) -> tuple[User, list[DomainEvent]]:
    """Returns the starting aggregate and the events that made it (already applied)."""
    if start == "register":
        user = User.register(stream_id, "Ann", "ann@x.io", None)
        events = list(user.pending)
        user.pending = []
        return user, events
    if start == "import":
        imported = UserImportedFactory(name="Ann", email="ann@x.io", phone="555", active=False)
        return given(imported, stream_id=stream_id), [imported]
    return given(stream_id=stream_id), []


def run(user: User, command: Command) -> list[DomainEvent]:
    """Returns the events the command recorded; a refused command must record and change nothing."""
    name, args = command
    before, pending = user.state.to_dict(), len(user.pending)
    try:
        getattr(user, name)(*args)
    except DomainError:
        assert user.state.to_dict() == before and len(user.pending) == pending
        return []
    new = user.pending[pending:]
    assert len(new) == 1 and user.version == before["version"] + 1
    return new
