"""The User aggregate, given/when/then: given past events, when a command, then new events or an error."""

from __future__ import annotations

import dataclasses
from typing import Callable

import pytest

from es_app.domain import (
    DomainError,
    DomainEvent,
    InvalidCommand,
    NothingToChange,
    User,
    UserCorrected,
    UserDeactivated,
    UserDeleted,
    UserEmailChanged,
    UserIsDeleted,
    UserNameChanged,
    UserPhoneChanged,
    UserReactivated,
    UserRegistered,
)
from tests.factories import UserImportedFactory, UserRegisteredFactory, given

Command = Callable[[User], None]


def then_events(user: User, command: Command) -> list:
    """Runs the command and returns the events it recorded."""
    command(user)
    return user.pending


def then_refused(user: User, command: Command, error: type[DomainError], match: str | None = None) -> None:
    """Runs the command, expects `error`, and checks that nothing was recorded or changed."""
    before, pending = user.state.to_dict(), list(user.pending)
    with pytest.raises(error, match=match):
        command(user)
    assert user.pending == pending
    assert user.state.to_dict() == before


# -- register ------------------------------------------------------------------

def test_register_records_a_normalized_registration():
    user = User.register("user-1", "  Ann Lee ", " Ann@Example.ORG ", " +44 1 ")
    assert user.pending == [UserRegistered(name="Ann Lee", email="ann@example.org", phone="+44 1")]
    assert (user.version, user.state.active, user.state.deleted) == (1, True, False)


@pytest.mark.parametrize("email", ["", "no-at-sign", "a@b", "a b@c.de", "a@b@c.de", None,
                                   "x" * 250 + "@e.org"])
def test_register_refuses_an_invalid_email(email):
    with pytest.raises(InvalidCommand, match="invalid email"):
        User.register("user-1", "Ann", email)


@pytest.mark.parametrize("name", ["", "   ", None, "x" * 201])
def test_register_refuses_an_empty_or_overlong_name(name):
    with pytest.raises(InvalidCommand, match="name"):
        User.register("user-1", name, "ann@example.org")


def test_register_refuses_an_overlong_phone():
    with pytest.raises(InvalidCommand, match="phone"):
        User.register("user-1", "Ann", "ann@example.org", "1" * 41)


# -- changes on a live user ----------------------------------------------------

def test_change_name():
    user = given(UserRegisteredFactory(name="Ann"))
    assert then_events(user, lambda u: u.change_name(" Anne ")) == [UserNameChanged(name="Anne")]
    assert (user.state.name, user.version) == ("Anne", 2)


def test_change_name_to_the_same_name_is_a_no_op():
    then_refused(given(UserRegisteredFactory(name="Ann")), lambda u: u.change_name(" Ann"), NothingToChange)


def test_change_name_to_an_empty_name_is_refused():
    then_refused(given(UserRegisteredFactory()), lambda u: u.change_name("  "), InvalidCommand, "empty")


def test_change_email_normalizes_it():
    user = given(UserRegisteredFactory(email="ann@example.org"))
    assert then_events(user, lambda u: u.change_email("ANN@new.example")) == [
        UserEmailChanged(email="ann@new.example")]
    assert user.state.email == "ann@new.example"


def test_change_email_to_the_same_address_in_other_case_is_a_no_op():
    then_refused(given(UserRegisteredFactory(email="ann@example.org")),
                 lambda u: u.change_email("ANN@example.org"), NothingToChange)


def test_change_email_to_an_invalid_address_is_refused():
    then_refused(given(UserRegisteredFactory()), lambda u: u.change_email("nope"), InvalidCommand)


def test_change_phone_sets_and_clears_it():
    user = given(UserRegisteredFactory(phone=None))
    assert then_events(user, lambda u: u.change_phone("555")) == [UserPhoneChanged(phone="555")]
    user.change_phone("  ")
    assert user.pending[-1] == UserPhoneChanged(phone=None)
    assert user.state.phone is None and user.version == 3


def test_change_phone_to_the_same_number_is_a_no_op():
    then_refused(given(UserRegisteredFactory(phone="555")), lambda u: u.change_phone(" 555 "), NothingToChange)


def test_deactivate_then_reactivate():
    user = given(UserRegisteredFactory())
    assert then_events(user, lambda u: u.deactivate("left")) == [UserDeactivated(reason="left")]
    assert user.state.active is False
    user.reactivate()
    assert user.pending[-1] == UserReactivated() and user.state.active is True


def test_deactivating_an_inactive_user_is_a_no_op():
    then_refused(given(UserRegisteredFactory(), UserDeactivated()), lambda u: u.deactivate(), NothingToChange)


def test_reactivating_an_active_user_is_a_no_op():
    then_refused(given(UserRegisteredFactory()), lambda u: u.reactivate(), NothingToChange)


def test_delete_marks_the_user_deleted():
    user = given(UserRegisteredFactory())
    assert then_events(user, lambda u: u.delete()) == [UserDeleted()]
    assert user.state.deleted is True and user.version == 2


# -- a deleted user, a user that does not exist ---------------------------------

EVERY_COMMAND: dict[str, Command] = {
    "change_name": lambda u: u.change_name("Zed"),
    "change_email": lambda u: u.change_email("zed@example.org"),
    "change_phone": lambda u: u.change_phone("999"),
    "deactivate": lambda u: u.deactivate(),
    "reactivate": lambda u: u.reactivate(),
    "delete": lambda u: u.delete(),
    "correct": lambda u: u.correct("name", "Zed", "typo"),
}


@pytest.mark.parametrize("command", EVERY_COMMAND.values(), ids=EVERY_COMMAND.keys())
def test_every_command_on_a_deleted_user_is_refused(command):
    then_refused(given(UserRegisteredFactory(), UserDeleted()), command, UserIsDeleted)


@pytest.mark.parametrize("command", EVERY_COMMAND.values(), ids=EVERY_COMMAND.keys())
def test_every_command_on_a_user_that_does_not_exist_is_refused(command):
    then_refused(given(), command, InvalidCommand, "does not exist")


# -- corrections ---------------------------------------------------------------

@pytest.mark.parametrize("field, value, stored", [
    ("name", " Ann Lee ", "Ann Lee"),
    ("email", "ANN@fixed.example", "ann@fixed.example"),
    ("phone", " 123 ", "123"),
    ("active", False, False),
])
def test_correct_fixes_a_field_with_a_reason(field, value, stored):
    user = given(UserRegisteredFactory(name="An Lee", email="ann@example.org", phone=None))
    assert then_events(user, lambda u: u.correct(field, value, " typo in legacy ")) == [
        UserCorrected(field=field, value=stored, reason="typo in legacy")]
    assert getattr(user.state, field) == stored


def test_correct_needs_a_reason():
    then_refused(given(UserRegisteredFactory()), lambda u: u.correct("name", "Zed", " "), InvalidCommand, "reason")


def test_correct_refuses_fields_that_are_not_correctable():
    then_refused(given(UserRegisteredFactory()), lambda u: u.correct("deleted", True, "x"),
                 InvalidCommand, "field must be one of")


def test_correct_validates_the_new_value():
    user = given(UserRegisteredFactory())
    then_refused(user, lambda u: u.correct("email", "not-an-email", "x"), InvalidCommand, "invalid email")
    then_refused(user, lambda u: u.correct("name", "", "x"), InvalidCommand, "empty")
    then_refused(user, lambda u: u.correct("active", "yes", "x"), InvalidCommand, "true or false")


@pytest.mark.parametrize("field, value, reason", [
    ("name", None, "name must be a string"),
    ("name", True, "name must be a string"),
    ("email", 5, "email must be a string"),
    ("phone", False, "phone must be a string or null"),
    ("active", None, "true or false"),
])
def test_correct_refuses_a_value_of_another_type_instead_of_storing_its_text(field, value, reason):
    then_refused(given(UserRegisteredFactory()), lambda u: u.correct(field, value, "x"), InvalidCommand, reason)


def test_correct_to_the_current_value_is_a_no_op():
    then_refused(given(UserRegisteredFactory(name="Ann")), lambda u: u.correct("name", "Ann", "x"),
                 NothingToChange)


# -- imported users ------------------------------------------------------------

def test_an_import_sets_the_whole_state_with_the_legacy_key_and_times():
    imported = UserImportedFactory(legacy_key=42, active=False)
    user = given(imported)
    s = user.state
    assert (s.name, s.email, s.phone, s.active, s.legacy_key) == (
        imported.name, imported.email, imported.phone, False, 42)
    assert (s.created_at, s.updated_at) == (imported.created_at, imported.updated_at)
    assert s.exists and not s.deleted and user.version == 1


def test_an_imported_user_takes_commands_like_any_other():
    user = given(UserImportedFactory(active=False, name="Old Name"))
    user.reactivate()
    user.change_name("New Name")
    user.correct("phone", None, "legacy phone was junk")
    user.delete()
    assert [type(e) for e in user.pending] == [UserReactivated, UserNameChanged, UserCorrected, UserDeleted]
    assert (user.state.active, user.state.name, user.state.phone, user.state.deleted) == (
        True, "New Name", None, True)
    assert user.version == 5
    then_refused(user, EVERY_COMMAND["change_name"], UserIsDeleted)


def test_replay_takes_times_from_metadata():
    user = given(UserRegisteredFactory(), metadata={"occurred_at": "2024-01-02T03:04:05+00:00"})
    assert user.state.created_at == user.state.updated_at == "2024-01-02T03:04:05+00:00"


def test_the_aggregate_refuses_events_it_does_not_know():
    @dataclasses.dataclass(frozen=True)
    class OrderPlaced(DomainEvent):
        total: int

    with pytest.raises(TypeError, match="cannot apply OrderPlaced"):
        given(UserRegisteredFactory(), OrderPlaced(total=3))


@pytest.mark.parametrize("command, match", [
    (lambda u: u.change_name("Ann\x00"), r"name must not contain control characters \(U\+0000\)"),
    (lambda u: u.change_name("Ann\u202eeeL"), r"name must not contain bidirectional override characters"),
    (lambda u: u.change_email("a\ud800@example.org"), r"email must not contain lone surrogates \(U\+D800\)"),
    (lambda u: u.change_phone("+1\x85 555"), r"phone must not contain control characters \(U\+0085\)"),
    (lambda u: u.correct("name", "Ann\u2066", "typo"), r"name must not contain bidirectional override"),
])
def test_unsafe_text_is_refused_by_every_command_that_records_it(command, match):
    then_refused(given(UserRegisteredFactory()), command, InvalidCommand, match)


def test_register_refuses_unsafe_text():
    with pytest.raises(InvalidCommand, match="name must not contain control characters"):
        User.register("user-1", "Ann\tLee", "ann@example.org")
