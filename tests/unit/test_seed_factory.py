"""The seed's factory-boy factory: overrides, determinism, emails for every script."""

from __future__ import annotations

from datetime import datetime, timezone

from es_app.domain.user import normalize_email
from migrator.seed import RowMaker, user_factory

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def test_columns_can_be_overridden():
    factory_cls = user_factory(RowMaker(seed=1, now=NOW, pool_size=20))
    rows = factory_cls.build_batch(5, phone=None, is_active=False)
    assert all(r["phone"] is None and r["is_active"] is False for r in rows)
    assert set(rows[0]) == {"email", "full_name", "is_active", "phone", "created_at", "updated_at"}
    assert factory_cls.build(full_name="Ann")["full_name"] == "Ann"


def test_same_seed_same_rows_and_sequence_in_emails():
    a = user_factory(RowMaker(seed=5, now=NOW, pool_size=20, first_seq=100)).build_batch(50)
    b = user_factory(RowMaker(seed=5, now=NOW, pool_size=20, first_seq=100)).build_batch(50)
    c = user_factory(RowMaker(seed=6, now=NOW, pool_size=20, first_seq=100)).build_batch(50)
    assert a == b and a != c
    for n, row in enumerate(a, start=100):
        local = row["email"].partition("@")[0]
        assert local.lower().endswith(str(n)) and not local[-len(str(n)) - 1].isdigit()


def test_emails_are_ascii_and_valid_for_every_locale():
    maker = RowMaker(seed=2, now=NOW, pool_size=30)
    for locale in maker.pools.locales:
        for name in maker.pools.names[locale][:30]:
            email = maker.email(name, locale, 7)
            assert email.isascii() and normalize_email(email)
    assert maker.email("山田 太郎", "ja_JP", 3).partition("@")[0].lower().endswith("3")
