"""The mapping on its own: events from rows, the generic fold, normalizers and validation."""

from __future__ import annotations

import dataclasses
import json
import pickle
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migrator.mapping import (
    ID_NAMESPACE,
    USERS,
    Binding,
    ColumnMap,
    CompiledMapping,
    MappingError,
    TableMapping,
    backfill_import_id,
    import_metadata,
    relay_event_id,
    relay_import_id,
    uuid5_text,
)
from migrator.mapping import load_mapping_file, mapping_from_dict
from migrator.mapping.normalizers import strip_control
from tests.accounts import accounts_mapping

T0 = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)
COMPILED = USERS.compile()  # without a database: values keep their Python types


def user_row(**over):
    row = {"id": 42, "email": " Ann@Example.ORG ", "full_name": "  Ann Smith ", "is_active": True,
           "phone": "", "created_at": T0, "updated_at": T0 + timedelta(days=1)}
    return row | over


def ids(prefix="e"):
    return lambda i: f"{prefix}-{i}"


def test_import_event_carries_normalized_fields_key_timestamps_and_whole_row():
    event = COMPILED.import_event(user_row(), event_id="i-1", metadata=import_metadata("backfill", 7, "x"))
    assert event.type == "UserImported" and event.event_id == "i-1"
    assert event.data | {"row": None} == {
        "name": "Ann Smith", "email": "ann@example.org", "active": True, "phone": None,
        "legacy_key": 42, "created_at": "2026-01-02T03:04:05.678901+00:00",
        "updated_at": "2026-01-03T03:04:05.678901+00:00", "row": None}
    assert event.data["row"]["full_name"] == "  Ann Smith "  # the row as it was, not normalized
    assert event.metadata == {"source": "backfill", "changelog_watermark": 7, "actor": "migrator",
                              "occurred_at": "x"}
    assert COMPILED.stream_id(COMPILED.key_of(user_row())) == "user-42"


def test_each_changed_field_gives_its_event_in_mapping_order():
    old = user_row()
    new = user_row(full_name="Ann Jones", email="ANN@example.org ", is_active=False, phone=" 555 ")
    events = COMPILED.change_events(old, new, event_ids=ids(), metadata={"source": "relay"})
    # the email differs only by case and spaces: normalized equal, so no event
    assert [(e.type, e.data, e.event_id) for e in events] == [
        ("UserNameChanged", {"name": "Ann Jones"}, "e-0"),
        ("UserDeactivated", {}, "e-1"),
        ("UserPhoneChanged", {"phone": "555"}, "e-2"),
    ]
    assert COMPILED.change_events(new, user_row(full_name="Ann Jones", is_active=True, phone="555"),
                               event_ids=ids(), metadata={})[0].type == "UserReactivated"


def test_timestamps_alone_produce_no_event_and_unmapped_columns_a_generic_one():
    old = user_row(nickname="annie")
    new = user_row(nickname="nan", updated_at=T0 + timedelta(days=9))
    events = COMPILED.change_events(old, new, event_ids=ids(), metadata={})
    assert [(e.type, e.data) for e in events] == [("UserLegacyColumnChanged", {"column": "nickname", "value": "nan"})]


def test_replay_of_import_and_changes_equals_the_state_of_the_last_row():
    rows = [user_row(nickname="a"), user_row(full_name="B", nickname="b"),
            user_row(full_name="B", email="b@x.org", is_active=False, phone="1", nickname="c")]
    events = [COMPILED.import_event(rows[0], event_id="i", metadata={})]
    for n, (old, new) in enumerate(zip(rows, rows[1:])):
        events += COMPILED.change_events(old, new, event_ids=ids(str(n)), metadata={})
    assert COMPILED.replay(events) == COMPILED.state_from_row(rows[-1])
    assert COMPILED.state_from_row(rows[-1]) == {"name": "B", "email": "b@x.org", "active": False, "phone": "1",
                                              "extra": {"nickname": "c"}}
    assert COMPILED.replay(events[:1]) == COMPILED.state_from_row(rows[0]) != COMPILED.state_from_row(rows[-1])


def test_replay_of_a_deleted_stream_is_none_and_a_reimport_brings_it_back():
    first, again = user_row(), user_row(full_name="Back")
    events = [COMPILED.import_event(first, event_id="1", metadata={}), COMPILED.delete_event(event_id="2", metadata={})]
    assert COMPILED.replay(events) is None
    assert COMPILED.replay([]) is None
    events.append(COMPILED.import_event(again, event_id="3", metadata={}))
    assert COMPILED.replay(events) == COMPILED.state_from_row(again)


def test_replay_ignores_unknown_event_types_unless_strict():
    events = [COMPILED.import_event(user_row(), event_id="1", metadata={}), ("UserNicknameChanged", {"nickname": "x"})]
    assert COMPILED.replay(events) == COMPILED.state_from_row(user_row())
    with pytest.raises(ValueError, match="UserNicknameChanged"):
        COMPILED.replay(events, strict=True)


def test_import_watermark_is_the_last_import_events():
    a = COMPILED.import_event(user_row(), event_id="1", metadata=import_metadata("backfill", 3, None))
    b = COMPILED.import_event(user_row(), event_id="2", metadata=import_metadata("relay", 9, None))
    assert COMPILED.import_watermark([]) is None
    assert COMPILED.import_watermark([a, COMPILED.delete_event(event_id="x", metadata={}), b]) == 9


def test_event_ids_are_stable_and_differ_by_source():
    assert relay_event_id("users", 5, 0) == relay_event_id("users", 5, 0)
    assert len({relay_event_id("users", 5, 0), relay_event_id("users", 5, 1), relay_event_id("accounts", 5, 0),
                relay_import_id("users", 5), backfill_import_id("users", 5)}) == 5


def test_timestamp_precision_truncates():
    m = dataclasses.replace(USERS, timestamp_precision="ms").compile()
    assert m.import_event(user_row(), event_id="1", metadata={}).data["created_at"] == "2026-01-02T03:04:05.678+00:00"
    local = datetime(2026, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    assert COMPILED.timestamp_of({"created_at": local}, "created_at") == "2026-01-02T03:04:05.000000+00:00"
    assert (COMPILED.timestamp_of({"created_at": "2026-01-02 03:04:05"}, "created_at")
            == "2026-01-02T03:04:05.000000+00:00")


@pytest.mark.parametrize("change, message", [
    (dict(columns=USERS.columns + (ColumnMap("nick", "name"),)), "columns 'full_name' and 'nick' both map to field 'name'"),
    (dict(columns=USERS.columns + (ColumnMap("email", "mail"),)), "column 'email' is mapped twice"),
    (dict(stream_prefix="legacy-user"), "stream prefix 'legacy-user'"),
    (dict(columns=(ColumnMap("full_name", "row"),)), "field name 'row' is reserved"),
    (dict(columns=(ColumnMap("full_name", "name", ("shout",)),)), "unknown normalizer 'shout'"),
    (dict(columns=(ColumnMap("is_active", "active", true_event="On"),)), "needs both true_event and false_event"),
    (dict(delete_event_type="UserImported"), "event type 'UserImported' is used for two things"),
    (dict(columns=(ColumnMap("id", "ident"),)), "column 'id' is the key"),
])
def test_inconsistent_mappings_fail_at_construction_with_one_line(change, message):
    with pytest.raises(MappingError) as info:
        dataclasses.replace(USERS, **change)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert str(info.value).startswith("mapping users: ")


def test_the_accounts_mapping_loads_from_toml():
    m = accounts_mapping().compile()
    assert (m.table, m.key, m.stream_prefix, m.exclude) == ("accounts", "code", "account", ("secret",))
    assert [(c.column, c.field) for c in m.columns] == [("title", "title"), ("owner_email", "owner"),
                                                        ("enabled", "enabled")]
    row = {"code": "acc-1", "owner_email": "X@Y.org", "title": " T ", "enabled": 1, "balance": "1.50",
           "secret": "s", "opened_at": T0, "touched_at": T0}
    event = m.import_event(row, event_id="1", metadata={})
    assert m.stream_id(m.key_of(row)) == "account-acc-1"
    assert event.data["owner"] == "x@y.org" and "secret" not in event.data["row"]
    assert m.state_from_row(row) == {"title": "T", "owner": "x@y.org", "enabled": 1, "extra": {"balance": "1.50"}}


@pytest.mark.parametrize("content, suffix, message", [
    ('[[table]]\ntable = "t"\nkey = "id"\n', ".toml", "missing required key 'stream_prefix'"),
    ('[[table]]\ntable = "t"\nkey = "id"\nstream_prefix = "t"\nimport_event_type = "I"\ndelete_event_type = "D"\n'
     'column_event_type = "C"\ncolour = 1\n', ".toml", "unknown key 'colour'"),
    ('[[table]]\ntable = ', ".toml", "mapping file"),
    ('{"table": [{"table": "t", "key": "id", "stream_prefix": "t", "import_event_type": "I", "delete_event_type": "D",'
     ' "column_event_type": "C", "columns": {"a": "f", "b": "f"}}]}', ".json", "both map to field 'f'"),
    ('table: []\n', ".yaml", "no [[table]] entries"),
    ("", ".ini", "use .toml, .json or .yaml"),
])
def test_bad_mapping_files_fail_with_one_line(tmp_path, content, suffix, message):
    path = tmp_path / f"m{suffix}"
    path.write_text(content)
    with pytest.raises(MappingError) as info:
        load_mapping_file(path)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_missing_mapping_file_fails_with_one_line(tmp_path):
    with pytest.raises(MappingError, match="No such file"):
        load_mapping_file(tmp_path / "absent.toml")


def test_mapping_from_dict_builds_the_same_mapping_as_python():
    spec = {"table": "users", "key": "id", "stream_prefix": "user", "import_event_type": "UserImported",
            "delete_event_type": "UserDeleted", "column_event_type": "UserLegacyColumnChanged",
            "created_at": "created_at", "updated_at": "updated_at", "unique": {"email": "user-email"},
            "correction_event_type": "UserCorrected",
            "register_event_type": "UserRegistered", "register_defaults": {"active": True},
            "columns": {"full_name": {"field": "name", "normalize": ["strip_control", "trim"],
                                      "event": "UserNameChanged"},
                        "email": {"field": "email", "normalize": ["strip_control", "email"],
                                  "event": "UserEmailChanged"},
                        "is_active": {"field": "active", "normalize": ["bool"], "true_event": "UserReactivated",
                                      "false_event": "UserDeactivated"},
                        "phone": {"field": "phone", "normalize": ["strip_control", "trim", "blank_to_none"],
                                  "event": "UserPhoneChanged"}}}
    assert mapping_from_dict(spec) == USERS


def test_a_mapping_without_events_for_a_field_uses_the_generic_event():
    m = TableMapping(table="t", key="id", stream_prefix="t", columns=(ColumnMap("a", "alpha"),),
                     import_event_type="TImported", delete_event_type="TDeleted",
                     column_event_type="TChanged").compile()
    (event,) = m.change_events({"id": 1, "a": 1}, {"id": 1, "a": 2}, event_ids=ids(), metadata={})
    assert (event.type, event.data) == ("TChanged", {"column": "a", "value": 2})
    assert m.replay([m.import_event({"id": 1, "a": 1}, event_id="i", metadata={}), event]) == {"alpha": 2, "extra": {}}


USERS_TABLE = Binding(coerce={"id": "int", "email": "text", "full_name": "text", "is_active": "bool", "phone": "text",
                              "created_at": "timestamp", "updated_at": "timestamp", "shoe_size": "int"},
                      table_columns=("id", "email", "full_name", "is_active", "phone", "created_at", "updated_at",
                                     "shoe_size"))
_times = st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(9999, 12, 30))
_stamps = st.one_of(st.none(), _times.map(lambda t: t.strftime("%Y-%m-%d %H:%M:%S.%f")),
                    _times.map(lambda t: t.isoformat(timespec="milliseconds")),
                    st.builds(lambda t, tz: t if tz is None else t.replace(tzinfo=tz), _times,
                              st.sampled_from([None, timezone.utc, timezone(timedelta(hours=-5))])))
_loose = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.text(max_size=8))


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries({"id": st.one_of(st.integers(), st.text(max_size=5)), "email": _loose,
                              "full_name": _loose,
                              "is_active": st.one_of(st.booleans(), st.sampled_from([0, 1, "t", "no"])),
                              "phone": _loose, "created_at": _stamps, "updated_at": _stamps, "shoe_size": _loose}),
       st.sampled_from(["s", "ms", "us"]))
def test_import_data_is_the_column_by_column_coercion_and_normalization(row, precision):
    m = CompiledMapping(dataclasses.replace(USERS, timestamp_precision=precision), USERS_TABLE)
    coerced = {c: m._value(c, row.get(c)) for c in m.table_columns}
    for c in ("full_name", "email", "phone"):  # strip_control cleans the row's copy too (see import_payload)
        coerced[c] = strip_control(coerced[c])
    expected = {**{c.field: m.field_value(c.column, row.get(c.column)) for c in m.columns},
                "legacy_key": coerced["id"], "created_at": coerced["created_at"], "updated_at": coerced["updated_at"],
                "row": coerced}
    assert m.import_data(row) == expected
    assert m.import_event(row, event_id="i", metadata={}).data == expected


@given(st.text(max_size=40))
def test_relay_event_ids_are_uuid5_in_the_mapping_namespace(name):
    assert uuid5_text(name) == str(uuid.uuid5(ID_NAMESPACE, name))
    assert relay_import_id("users", 7) == str(uuid.uuid5(ID_NAMESPACE, "users:7:import"))


KEYS = st.one_of(st.integers(min_value=-(2 ** 63), max_value=2 ** 80 - 2 ** 63 - 1), st.integers(), st.text(max_size=40),
                 st.uuids().map(str), st.booleans())


@given(st.sampled_from(["users", "accounts", "t"]), KEYS, KEYS)
def test_backfill_import_ids_are_deterministic_version_8_uuids_that_sort_by_integer_key(table, a, b):
    ia, ib = backfill_import_id(table, a), backfill_import_id(table, b)
    parsed = uuid.UUID(ia)
    assert str(parsed) == ia and parsed.version == 8 and parsed.variant == uuid.RFC_4122
    assert ia == backfill_import_id(table, a)  # the same key, the same id: a re-run or a resume finds it
    assert (ia == ib) == (type(a) is type(b) and a == b)
    assert ia[:11] == ib[:11]  # (40 bits) one table's ids share a prefix, whatever the key
    assert ia != backfill_import_id("other", a)
    assert backfill_import_id(table, 2 ** 81) != backfill_import_id(table, str(2 ** 81))  # a hashed key's type counts
    if type(a) is int and type(b) is int and all(-(2 ** 63) <= k < 2 ** 80 - 2 ** 63 for k in (a, b)):
        assert (ia < ib) == (a < b)  # text order is key order: the backfill appends at the index's right edge


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=datetime(1, 1, 1, 0, 0, 1), max_value=datetime(9999, 12, 31)), st.sampled_from(" T"),
       st.sampled_from(["s", "ms", "us"]))
def test_a_naive_timestamp_text_normalizes_as_the_utc_datetime_it_names(t, separator, precision):
    from migrator.mapping.normalizers import timestamp

    text = t.isoformat(sep=separator, timespec="microseconds")  # how SQLite hands over a stored timestamp
    assert timestamp(precision)(text) == timestamp(precision)(t.replace(tzinfo=timezone.utc))


@pytest.mark.parametrize("raw, clean", [
    ("Ann\x00e", "Anne"), ("a\tb\nc\r", "a\tb\nc\r"), ("bell\x07 esc\x1b del\x7f", "bell esc del"),
    ("lone \ud800", "lone \ufffd"), ("é 😀 ok", "é 😀 ok"), (None, None), (5, 5)])
def test_strip_control_removes_what_a_store_or_a_name_should_not_hold(raw, clean):
    from migrator.mapping.normalizers import escaped

    assert strip_control(raw) == clean
    assert json.loads(escaped(raw)) == raw and escaped(raw).isascii()  # the original stays reproducible


def test_a_change_cleaned_by_strip_control_keeps_the_exact_legacy_value_in_its_metadata():
    old, new = {"id": 1, "full_name": "Ann"}, {"id": 1, "full_name": "Ann\x00e", "phone": "1\x002"}
    events = COMPILED.change_events(old, new, event_ids=ids(), metadata={"source": "relay"})
    assert [(e.type, e.data) for e in events] == [("UserNameChanged", {"name": "Anne"}),
                                                  ("UserPhoneChanged", {"phone": "12"})]
    assert json.loads(events[0].metadata["legacy_originals"]["full_name"]) == "Ann\x00e"
    assert events[0].metadata["source"] == "relay"
    assert COMPILED.change_events(old, {"id": 1, "full_name": "Bo"}, event_ids=ids(), metadata={})[0].metadata == {}


def test_the_declaration_holds_what_the_user_writes_and_nothing_compiled():
    assert [f.name for f in dataclasses.fields(TableMapping)] == [
        "table", "key", "stream_prefix", "columns", "import_event_type", "delete_event_type", "column_event_type",
        "created_at", "updated_at", "exclude", "timestamp_precision", "unique", "correction_event_type",
        "register_event_type", "register_defaults"]
    assert set(vars(USERS)) == {f.name for f in dataclasses.fields(TableMapping)}
    assert pickle.loads(pickle.dumps(USERS)) == USERS


def test_the_compiled_mapping_reads_as_its_declaration():
    m = CompiledMapping(USERS, USERS_TABLE)
    assert m.declaration is USERS and m.binding is USERS_TABLE
    for f in dataclasses.fields(TableMapping):
        assert getattr(m, f.name) == getattr(USERS, f.name), f.name
    assert (m.category, m.timestamp_columns) == ("user", ("created_at", "updated_at"))
    assert (m.coerce, m.table_columns) == (USERS_TABLE.coerce, USERS_TABLE.table_columns)
    assert (COMPILED.coerce, COMPILED.table_columns) == ({}, ())  # not bound: each row's own columns


def test_a_compiled_mapping_is_sent_as_its_declaration_and_binding_and_compiled_again_alike():
    m = CompiledMapping(accounts_mapping(), Binding({"code": "text", "enabled": "bool", "balance": "decimal:2"},
                                                   ("code", "owner_email", "title", "enabled", "balance", "secret",
                                                    "opened_at", "touched_at")))
    again = CompiledMapping(*pickle.loads(pickle.dumps((m.declaration, m.binding))))
    row = {"code": "acc-1", "owner_email": " X@Y.org", "title": " T ", "enabled": 0, "balance": 1.5,
           "secret": "s", "opened_at": T0, "touched_at": "2026-01-02 03:04:05"}
    assert again.import_payload(row) == m.import_payload(row)
    assert again.state_from_row(row) == m.state_from_row(row) == {
        "title": "T", "owner": "x@y.org", "enabled": False, "extra": {"balance": "1.50"}}
    events = [m.import_event(row, event_id="1", metadata={}),
              *m.change_events(row, row | {"enabled": 1}, event_ids=ids(), metadata={})]
    assert again.replay(events) == m.replay(events) == m.state_from_row(row | {"enabled": 1})


def test_a_binding_with_an_unknown_coercer_fails_with_one_line():
    with pytest.raises(MappingError, match=r"^mapping users: unknown normalizer 'shout'"):
        CompiledMapping(USERS, Binding({"id": "shout"}, ("id",)))
