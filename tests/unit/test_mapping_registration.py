"""A mapping's registration event (`register_event_type`): a stream the new side started replays to a state."""

from __future__ import annotations

import pytest

from migrator.mapping import USERS, MappingError, TableMapping
from migrator.mapping.files import mapping_from_dict

REGISTERED = ("UserRegistered", {"name": "Ann", "email": "ann@x.org", "phone": None})


def test_a_registration_starts_the_state_with_the_defaults_for_fields_it_does_not_hold():
    users = USERS.compile()
    assert users.replay([REGISTERED]) == {"name": "Ann", "email": "ann@x.org", "active": True, "phone": None,
                                          "extra": {}}
    assert users.replay([REGISTERED, ("UserDeactivated", {}), ("UserNameChanged", {"name": "Bo"})]) == {
        "name": "Bo", "email": "ann@x.org", "active": False, "phone": None, "extra": {}}
    assert users.replay([REGISTERED, ("UserDeleted", {})]) is None


def test_the_registration_is_a_mapping_file_key_and_its_defaults_name_mapped_fields():
    spec = {"table": "t", "key": "id", "stream_prefix": "t", "import_event_type": "TImported",
            "delete_event_type": "TDeleted", "column_event_type": "TColumnChanged", "columns": {"a": "a"}}
    mapping = mapping_from_dict({**spec, "register_event_type": "TCreated", "register_defaults": {"a": 1}})
    assert mapping.compile().replay([("TCreated", {})]) == {"a": 1, "extra": {}}
    assert mapping_from_dict(spec).compile().replay([("TCreated", {})]) is None
    with pytest.raises(MappingError, match="register_defaults names 'b'"):
        mapping_from_dict({**spec, "register_event_type": "TCreated", "register_defaults": {"b": 1}})
    with pytest.raises(MappingError, match="used for two things"):
        TableMapping(**{k: v for k, v in spec.items() if k != "columns"}, columns=(), register_event_type="TDeleted")
