"""A mapping's unique fields: declared in Python or in a file, claimed with the ES side's normalized value."""

from __future__ import annotations

import dataclasses

import pytest

from es_app.domain.user import normalize_email
from es_app.services import EMAIL_SCOPE
from es_app.store import Claim
from migrator.mapping import USERS, MappingError
from migrator.mapping import mapping_from_dict

SPEC = {"table": "things", "key": "id", "stream_prefix": "thing", "import_event_type": "ThingImported",
        "delete_event_type": "ThingDeleted", "column_event_type": "ThingColumnChanged",
        "columns": {"code": {"field": "code", "normalize": ["trim", "lower"]}, "label": "label"}}


def test_users_claim_emails_as_the_es_api_normalizes_them():
    assert USERS.unique == {"email": EMAIL_SCOPE}
    for raw in ("Ann@Example.org", "  ann@example.ORG ", "ANN@EXAMPLE.ORG"):
        assert USERS.compile().claims_of({"email": raw}) == (Claim(EMAIL_SCOPE, normalize_email(raw)),)


@pytest.mark.parametrize("email", [None, "", "   ", "x" * 321])
def test_values_a_claim_cannot_hold_claim_nothing(email):
    assert USERS.compile().claims_of({"email": email}) == ()


def test_a_claim_holds_the_value_the_import_event_stores():
    # strip_control removes the NUL before the email normalizer: the event and the claim agree
    assert USERS.compile().claims_of({"email": "a\x00@Example.org"}) == (Claim(EMAIL_SCOPE, "a@example.org"),)


@pytest.mark.parametrize("unique, expected", [
    ({"code": "thing-code"}, {"code": "thing-code"}),
    (["code", "label"], {"code": "thing-code", "label": "thing-label"}),
    ("code", {"code": "thing-code"}),
])
def test_unique_from_a_file_spec(unique, expected):
    m = mapping_from_dict({**SPEC, "unique": unique})
    assert m.unique == expected
    assert m.compile().claims_of({"code": " AB-1 ", "label": 7})[0] == Claim("thing-code", "ab-1")


@pytest.mark.parametrize("unique, message", [
    ({"nope": "x"}, "unique field 'nope' is not a mapped field"),
    ({"code": ""}, "unique field 'code' needs a claim scope"),
    ({"code": 5}, "unique field 'code' needs a claim scope"),
    (5, "unique must be a table of field = claim scope"),
])
def test_a_bad_unique_declaration_is_one_line(unique, message):
    with pytest.raises(MappingError) as info:
        mapping_from_dict({**SPEC, "unique": unique})
    assert message in str(info.value) and "\n" not in str(info.value)


def test_streams_give_back_their_legacy_keys():
    assert USERS.compile().key_from_stream("user-42") == "42"
    assert USERS.compile().key_from_stream("account-x") == "account-x"
    assert dataclasses.replace(USERS, unique={}).compile().claims_of({"email": "a@b.org"}) == ()
