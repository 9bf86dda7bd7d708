"""A mapping's correction event (`correction_event_type`): the replay takes the corrected value of the field."""

from __future__ import annotations

import pytest

from migrator.mapping import USERS, MappingError, TableMapping
from migrator.mapping.files import mapping_from_dict

ROW = {"id": 1, "full_name": " Ann ", "email": "A@X.org", "is_active": True, "phone": None}


def test_a_correction_sets_its_field_in_the_replayed_state_and_unknown_fields_change_nothing():
    imported = ("UserImported", USERS.compile().import_data(ROW))
    state = USERS.compile().replay([imported, ("UserCorrected", {"field": "email", "value": "b@x.org", "reason": "r"}),
                          ("UserCorrected", {"field": "nickname", "value": "x", "reason": "r"})])
    assert state == {**USERS.compile().state_from_row(ROW), "email": "b@x.org"}
    assert USERS.compile().replay([("UserCorrected", {"field": "email", "value": "b@x.org", "reason": "r"})]) is None


def test_the_correction_event_is_a_mapping_file_key_and_cannot_reuse_another_events_type():
    spec = {"table": "t", "key": "id", "stream_prefix": "t", "import_event_type": "TImported",
            "delete_event_type": "TDeleted", "column_event_type": "TColumnChanged", "columns": {"a": "a"}}
    assert mapping_from_dict({**spec, "correction_event_type": "TCorrected"}).correction_event_type == "TCorrected"
    assert mapping_from_dict(spec).correction_event_type is None
    with pytest.raises(MappingError, match="used for two things"):
        TableMapping(**{k: v for k, v in spec.items() if k != "columns"}, columns=(),
                     correction_event_type="TDeleted")
