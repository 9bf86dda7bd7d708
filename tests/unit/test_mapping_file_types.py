"""Mapping files are checked by type: wrong values are one line naming the file, the entry and the key."""

from __future__ import annotations

import pytest

from migrator.mapping import MappingError
from migrator.mapping import load_mapping_file, mapping_from_dict

USERS = {"table": "users", "key": "id", "stream_prefix": "user", "import_event_type": "UserImported",
         "delete_event_type": "UserDeleted", "column_event_type": "UserColumnChanged"}


def test_a_single_string_where_a_list_is_expected_is_one_item():
    mapping = mapping_from_dict({**USERS, "exclude": "phone", "columns": {"full_name": {"field": "name",
                                                                                       "normalize": "trim"}}})
    assert mapping.exclude == ("phone",) and mapping.columns[0].normalize == ("trim",)


@pytest.mark.parametrize("change, message", [
    ({"table": 5}, "mapping #1: 'table' must be a string, not a number (5)"),
    ({"exclude": 5}, "mapping users: 'exclude' must be a list of strings, not a number (5)"),
    ({"exclude": ["id", 7]}, "mapping users: 'exclude' must be a list of strings, not a list (['id', 7])"),
    ({"created_at": True}, "mapping users: 'created_at' must be a string, not true/false (True)"),
    ({"columns": ["full_name"]}, "mapping users: 'columns' must be a table of column -> field, not a list"),
    ({"columns": {"full_name": 5}}, "column 'full_name' must be a field name or a table of settings, not a number"),
    ({"columns": {"full_name": {"field": "name", "normalize": [1]}}},
     "mapping users: column 'full_name': 'normalize' must be a list of strings, not a list ([1])"),
    ({"columns": {"full_name": {"field": None}}}, "column 'full_name': 'field' must be a string, not nothing"),
])
def test_a_value_of_the_wrong_type_names_the_entry_and_the_key(change, message):
    with pytest.raises(MappingError) as err:
        mapping_from_dict({**USERS, **change})
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("name, text, message", [
    ("m.yaml", "table:\n  - table: users\n    key: [id\n", "YAML syntax error at line 4, column 1: expected ',' or ']'"),
    ("m.yaml", "- 1\n- 2\n", "expected a table of settings, not a list ([1, 2])"),
    ("m.yaml", "table: 5\n", "'table' must be a list of tables, not a number (5)"),
    ("m.json", '{"table": [5]}', "mapping #1: expected a table of settings, not a number (5)"),
    ("m.toml", "", "no [[table]] entries"),
    ("m.toml", "[[table]]\ntable = 'users'\nexclude = 'id'\n", "mapping users: missing required key 'key'"),
])
def test_file_errors_are_one_line_naming_the_file(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(MappingError) as err:
        load_mapping_file(path)
    assert str(err.value).startswith(f"mapping file {path}: ") and message in str(err.value)
    assert "\n" not in str(err.value)
