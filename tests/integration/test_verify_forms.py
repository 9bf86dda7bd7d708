"""The checksum SQL of every legacy backend (migrator.verify.sqlforms): each normalizer's SQL form gives the
Python value or never matches, and the same rows give the same bucket checksums on SQLite, PostgreSQL and
MySQL/MariaDB as Python computes them (so a legacy table on any of them compares with any read model)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from es_app.store import make_engine
from migrator.mapping import USERS, compose
from migrator.verify.checksum import Level, sides_for
from migrator.verify.readmodel import USERS_VIEW
from migrator.verify.sqlforms import NON_ASCII_MARK, Source, digest, digest_word, forms_for, key_hash, value_text

TRICKY = [" Ann ", "ANN@X.ORG", "\tTab\x0b\x1f", "Ed\x01die\x7f", "\u00a0nbsp\u3000", "", "   ", None, "a|b", "1:x",
          "Zoë@Ünal.example", "\u2028line\u2029", "emoji \U0001F600 ", "\U0001F600", "a\n", " b\r\n", "K\u212a",
          "\u017f", "x\x00y"]


@pytest.fixture
def legacy_engine(new_legacy_and_es_urls):
    engine = make_engine(new_legacy_and_es_urls("forms")[0])
    yield engine
    engine.dispose()


@pytest.mark.parametrize("normalize", [("strip_control", "trim"), ("strip_control", "email"),
                                       ("strip_control", "trim", "blank_to_none"), ("lower",), ("text",),
                                       ("trim", "blank_to_none"), ("email",)])
def test_the_sql_form_of_a_normalizer_gives_the_python_value_or_never_matches(legacy_engine, normalize):
    backend = legacy_engine.dialect.name
    forms = forms_for(backend)
    fn = compose(normalize)
    source = Source("f", "x", fn, "text", normalize)
    exact = 0
    with legacy_engine.connect() as conn:
        forms.prepare(conn, [source], "verify_test_digest")
        for value in TRICKY:
            if "\x00" in (value or "") and backend != "mysql":
                continue  # PostgreSQL text cannot hold NUL; SQLite's bound text ends at it
            digest_sql = forms.row_hash(["f.verify_f0"], "verify_test_digest")
            row = conn.execute(text(f"SELECT f.verify_f0, {digest_sql} FROM (SELECT {forms.field_sql(source)} AS "
                                    f"verify_f0 FROM (SELECT {forms.cast_text(':v')} AS x) s) f"),
                               {"v": value, **forms.params()}).one()
            expected = value_text(fn(value))
            if backend == "sqlite":  # canonicalized by the registered Python function
                assert row[1] == digest([fn(value)]), repr(value)
                exact += 1
            elif row[0] is not None and row[0].endswith(NON_ASCII_MARK):
                assert row[0] != expected and row[1] != digest([fn(value)])  # never equal: compared in Python
            else:
                assert (row[0], row[1]) == (expected, digest([fn(value)])), repr(value)
                exact += 1
    assert exact >= len(TRICKY) // 2  # most values take the exact form


def _users(n: int) -> list[dict]:
    """Rows whose text is ASCII (exact on every backend), with every normalizer's edge cases."""
    names = [" Ann ", "\tTab\x0b\x1f", "Ed\x01die\x7f", "Bob", "  x  y  ", "a|b", "1:x", "trail\n"]
    phones = [None, "", "   ", "+1 555", " 42 ", "\t"]
    t = datetime(2021, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    return [{"id": i * 37 + 5, "email": f" User{i}@Example.ORG ", "full_name": names[i % len(names)],
             "is_active": i % 3 != 0, "phone": phones[i % len(phones)], "created_at": t, "updated_at": t}
            for i in range(n)]


def test_bucket_checksums_of_the_same_rows_are_what_python_computes(legacy_engine, tmp_path):
    from legacy_app.models import User

    rows = _users(60)
    with legacy_engine.begin() as conn:
        conn.execute(User.__table__.insert(), rows)
    es = make_engine(f"sqlite:///{tmp_path / 'es.db'}")  # the read-model side is not computed here
    try:
        mapping = USERS.bind(legacy_engine)
        legacy = sides_for(mapping, USERS_VIEW, legacy_engine, es).legacy
        assert [s.field for s in legacy.sources] == list(USERS_VIEW.fields)  # every field in SQL: none streamed
        expected_hashed: dict[int, list[int]] = defaultdict(lambda: [0, 0])
        expected_ranged: dict[int, list[int]] = defaultdict(lambda: [0, 0])
        for r in rows:
            values = [mapping.field_value(c, r[c]) for c in ("full_name", "email", "is_active", "phone")]
            word = digest_word(digest(values))
            for bucket, sums in ((key_hash(str(r["id"])) % 7, expected_hashed), (r["id"] // 100, expected_ranged)):
                sums[bucket][0] += 1
                sums[bucket][1] += word
        assert legacy.checksums(Level(False, 7), None) == {b: tuple(v) for b, v in expected_hashed.items()}
        assert legacy.checksums(Level(True, 100), None) == {b: tuple(v) for b, v in expected_ranged.items()}
    finally:
        es.dispose()


@pytest.mark.mysql
def test_mysql_keys_hash_and_divide_as_elsewhere(mysql_databases):
    url = mysql_databases.new(schema_head=False)
    engine = make_engine(url)
    forms = forms_for("mysql")
    try:
        with engine.connect() as conn:
            for key in ["42", "18446744073709551615", "3f2504e0-4f89-11d3-9a0c-0305e82c3301", "\U0001F600", "é"]:
                got = conn.execute(text(f"SELECT {forms.key_hash(':k')}"), {"k": key}).scalar()
                assert got == key_hash(key)
            for a in (7, -7, 0, 18446744073709551615):
                assert conn.execute(text(f"SELECT {forms.int_div(':a', 2)}"), {"a": a}).scalar() == int(a / 2) \
                    if abs(a) < 2**52 else a // 2
            assert conn.execute(text(f"SELECT {forms.integer_of(':t')}"), {"t": "-12"}).scalar() == -12
            assert conn.execute(text(f"SELECT {forms.integer_of(':t')}"), {"t": "012"}).scalar() is None
    finally:
        engine.dispose()
        mysql_databases.drop(url)
