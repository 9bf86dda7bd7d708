"""The store's JSON codec (`es_app.store.driver.dumps/loads`) reads back exactly what json would."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from es_app.store.driver import dumps, loads

scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-2**80, max_value=2**80)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(alphabet="0123456789x.-e ", max_size=40)
           | st.text(max_size=10))
documents = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                         | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=20)


@settings(max_examples=200, deadline=None)
@given(documents)
def test_loads_equals_json_loads_for_any_document(value):
    for text in (json.dumps(value), dumps(value)):
        got = loads(text)
        assert got == json.loads(text)
        assert repr(got) == repr(json.loads(text))  # ints stay ints, floats stay floats
        assert loads(text.encode()) == got
        assert repr(loads(memoryview(text.encode()))) == repr(got)  # how psycopg's loader hands it over


def test_integers_beyond_64_bits_stay_exact_in_text_bytes_and_memoryview():
    text = '{"a": [18446744073709551616, -9223372036854775809, 1.5, "12345678901234567890123"]}'
    for raw in (text, text.encode(), memoryview(text.encode())):
        assert loads(raw) == {"a": [2**64, -2**63 - 1, 1.5, "12345678901234567890123"]}
        assert type(loads(raw)["a"][0]) is int


def test_nineteen_digit_integers_inside_64_bits_are_read_as_integers():
    assert loads("[9223372036854775807, 1234567890123456789]") == [2**63 - 1, 1234567890123456789]
