"""Realistic legacy users for a legacy database: built by factory-boy + Faker, inserted in bulk.

Rows come from `LegacyUserFactory` (a factory-boy factory of dicts): unicode names in many
locales, ~20% missing phones, ~10% inactive users, created/updated timestamps spread
unevenly over years, a little legacy mess (mixed-case emails, untrimmed names), and
unique emails. Faker is slow per call, so each locale's names, phones and domains are
drawn from Faker once into pools; the factory mixes them per row. Chunks are built in
worker processes (factory-boy costs tens of µs a row) and inserted by this one with the
dialect adapter's bulk_copy each (one executemany on SQLite, one COPY on PostgreSQL), committed per chunk, appending to
whatever rows are already there. A chunk's rows depend only on the seed and its index.
"""

from __future__ import annotations

import dataclasses
import itertools
import multiprocessing
import os
import random
import re
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta

import factory
import faker
from faker.decode import unidecode
from sqlalchemy import Engine, func, select

from es_app.dialect import DriverTable, dialect_for
from legacy_app.db import SchemaMissing, has_schema
from legacy_app.models import User

# locale -> weight: where the legacy service's users come from
LOCALES = {"en_US": 28, "en_GB": 8, "de_DE": 10, "fr_FR": 8, "es_ES": 7, "pt_BR": 7, "it_IT": 5,
           "pl_PL": 5, "tr_TR": 4, "ru_RU": 5, "ja_JP": 4, "zh_CN": 4, "el_GR": 2, "sv_SE": 2, "cs_CZ": 1}
MISSING_PHONE_SHARE = 0.20
INACTIVE_SHARE = 0.10
NEVER_UPDATED_SHARE = 0.35
MIXED_CASE_EMAIL_SHARE = 0.02
UNTRIMMED_NAME_SHARE = 0.01
HISTORY_START = datetime(2012, 1, 1, tzinfo=UTC)
POOL_SIZE = 3000
CHUNK_SIZE = 10_000
_WORD = re.compile(r"[a-z]+")
_TITLES = {"mr", "mrs", "ms", "miss", "dr", "prof", "md", "phd", "dds", "dvm", "jr", "sr", "ii", "iii", "iv",
           "mba", "sig", "sra", "herr", "frau", "dipl", "ing", "univ", "mag", "b", "sc", "m", "a"}


def _name_words(full_name: str) -> tuple[str, str]:
    """Returns the ASCII first and last word of a name, titles left out (for email addresses)."""
    words = [w for w in _WORD.findall(unidecode(full_name).lower()) if w not in _TITLES] or ["user"]
    return words[0], words[-1]


class _Pools:
    """Per-locale Faker output drawn once: names (with their email words), phone numbers, email domains."""

    def __init__(self, rng: random.Random, pool_size: int):
        self.locales = list(LOCALES)
        self.cum_weights = list(itertools.accumulate(LOCALES.values()))
        self.names: dict[str, list[str]] = {}
        self.people: dict[str, list[tuple[str, str, str]]] = {}
        self.phones: dict[str, list[str]] = {}
        self.domains: dict[str, list[str]] = {}
        for locale in self.locales:
            fake = faker.Faker(locale)
            fake.seed_instance(rng.randrange(2**32))
            self.names[locale] = [fake.name() for _ in range(pool_size)]
            self.people[locale] = [(name, *_name_words(name)) for name in self.names[locale]]
            self.phones[locale] = [fake.phone_number()[:40] for _ in range(max(pool_size // 4, 1))]
            self.domains[locale] = sorted({fake.free_email_domain() for _ in range(20)}) + \
                [fake.domain_name() for _ in range(5)]


class RowMaker:
    """The random choices behind one seed run (deterministic for a given `seed`)."""

    def __init__(self, *, seed: int | str | None = None, now: datetime | None = None, first_seq: int = 1,
                 pool_size: int = POOL_SIZE):
        self.rng = random.Random(seed)
        self.pools = _Pools(self.rng, pool_size)
        self.now = now or datetime.now(UTC)
        self.span_us = max(int((self.now - HISTORY_START).total_seconds() * 1_000_000), 1)
        self.seq = first_seq

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq - 1

    def locale(self) -> str:
        return self.rng.choices(self.pools.locales, cum_weights=self.pools.cum_weights)[0]

    def email(self, full_name: str, locale: str, seq: int) -> str:
        return self._email(*_name_words(full_name), locale, seq)

    def _email(self, first: str, last: str, locale: str, seq: int) -> str:
        style = self.rng.randrange(4)
        local = (f"{first}.{last}.{seq}", f"{first[0]}{last}{seq}", f"{last}_{seq}", f"{first}{seq}")[style]
        if self.rng.random() < MIXED_CASE_EMAIL_SHARE:
            local = local.capitalize()
        return f"{local}@{self.rng.choice(self.pools.domains[locale])}"

    def phone(self, locale: str) -> str | None:
        if self.rng.random() < MISSING_PHONE_SHARE:
            return None
        phone = self.rng.choice(self.pools.phones[locale])
        return phone[:-4] + f"{self.rng.randrange(10000):04d}" if phone[-4:].isdigit() else phone

    def person(self) -> tuple[str, str, str | None]:
        """Returns (full_name, email, phone) of one person from one locale."""
        locale = self.locale()
        full_name, first, last = self.rng.choice(self.pools.people[locale])
        if self.rng.random() < UNTRIMMED_NAME_SHARE:
            full_name += " "
        return full_name, self._email(first, last, locale, self.next_seq()), self.phone(locale)

    def history(self) -> tuple[bool, datetime, datetime]:
        """Returns (is_active, created_at, updated_at)."""
        created_at = self.created_at()
        return self.is_active(), created_at, self.updated_at(created_at)

    def is_active(self) -> bool:
        return self.rng.random() >= INACTIVE_SHARE

    def created_at(self) -> datetime:
        # skewed towards recent years: the service grew
        return HISTORY_START + timedelta(microseconds=int(self.span_us * self.rng.random() ** 0.6))

    def updated_at(self, created_at: datetime) -> datetime:
        if self.rng.random() < NEVER_UPDATED_SHARE:
            return created_at
        room_us = int((self.now - created_at).total_seconds() * 1_000_000)
        return created_at + timedelta(microseconds=int(room_us * self.rng.random() ** 2))


def _row(person: tuple, history: tuple, **columns) -> dict:
    full_name, email, phone = person
    is_active, created_at, updated_at = history
    row = {"email": email, "full_name": full_name, "is_active": is_active, "phone": phone,
           "created_at": created_at, "updated_at": updated_at}
    row.update(columns)
    return row


def user_factory(maker: RowMaker) -> type[factory.Factory]:
    """Returns a factory-boy factory of `users` rows (dicts) drawing on `maker`.

    Two declarations keep factory-boy's per-row cost down: `person` (name, email, phone
    from one locale) and `history` (active flag and timestamps). Any column can still be
    overridden: `build(phone=None)`, `build_batch(10, is_active=False)`.
    """

    class LegacyUserFactory(factory.Factory):
        class Meta:
            model = _row

        person = factory.LazyFunction(maker.person)
        history = factory.LazyFunction(maker.history)

    return LegacyUserFactory


@dataclasses.dataclass(frozen=True)
class SeedReport:
    rows: int
    seconds: float
    total_rows: int  # rows in the table afterwards
    insert_seconds: float = 0.0  # of `seconds`, spent checking emails and inserting

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    @property
    def insert_rows_per_s(self) -> float:
        return self.rows / self.insert_seconds if self.insert_seconds > 0 else 0.0


@dataclasses.dataclass(frozen=True)
class _Plan:
    users: int
    chunk_size: int
    seed: int
    now: datetime
    first_seq: int
    pool_size: int

    def size(self, index: int) -> int:
        return min(self.chunk_size, self.users - index * self.chunk_size)


_MAKERS: dict[tuple, tuple[RowMaker, type[factory.Factory]]] = {}


def _build_chunk(plan: _Plan, index: int) -> list[dict]:
    """Returns the rows of chunk `index`: the same for a plan whichever process builds them."""
    key = (plan.seed, plan.now, plan.pool_size)
    if key not in _MAKERS:
        _MAKERS.clear()
        maker = RowMaker(seed=plan.seed, now=plan.now, pool_size=plan.pool_size)
        _MAKERS[key] = (maker, user_factory(maker))
    maker, factory_cls = _MAKERS[key]
    maker.rng.seed(f"{plan.seed}:{index}")
    maker.seq = plan.first_seq + index * plan.chunk_size
    return factory_cls.build_batch(plan.size(index))


def _chunks(plan: _Plan, workers: int) -> Iterator[list[dict]]:
    """Yields the chunks in order, built in `workers` processes (0: in this one)."""
    count = -(-plan.users // plan.chunk_size)
    if workers <= 0:
        for index in range(count):
            yield _build_chunk(plan, index)
        return
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        pending: deque = deque()
        next_index = 0
        try:
            while next_index < count or pending:
                while next_index < count and len(pending) < workers * 2:
                    pending.append(pool.submit(_build_chunk, plan, next_index))
                    next_index += 1
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


_EMAILS = DriverTable("users", ("email",), ("text",), key="email")


def _taken(conn, emails: list[str]) -> set[str]:
    """Returns which of `emails` the table already holds (driver-level queries: the dialect's select_in)."""
    cursor = conn.connection.driver_connection.cursor()
    try:
        return {r[0] for r in dialect_for(conn).select_in(cursor, _EMAILS, emails)}
    finally:
        cursor.close()


def _make_unique(conn, rows: list[dict], fresh: Iterator[int]) -> None:
    """Gives rows whose email already exists in the table a fresh one (rare: data from elsewhere)."""
    while taken := _taken(conn, [r["email"] for r in rows]):
        for row in rows:
            if row["email"] in taken:
                local, _, domain = row["email"].partition("@")
                row["email"] = f"{local}.{next(fresh)}@{domain}"


def default_workers() -> int:
    """Returns how many processes build rows by default: the CPU count, at most 4."""
    return max(1, min(4, os.cpu_count() or 1))


def seed_users(engine: Engine, users: int, *, chunk_size: int = CHUNK_SIZE, seed: int | None = None,
               now: datetime | None = None, pool_size: int | None = None, workers: int = 0,
               on_chunk: Callable[[int], None] | None = None) -> SeedReport:
    """Appends `users` realistic rows to the legacy `users` table; returns what was done.

    Rows are built by `workers` processes (0: this process) and depend only on `seed`,
    `now`, `pool_size` (Faker draws per locale; default scales with `users` up to
    POOL_SIZE) and the ids already used. Raises SchemaMissing when the table does not exist, ValueError for bad
    sizes. Each chunk commits on its own: an interrupted seed leaves whole chunks only.
    """
    if pool_size is None:
        pool_size = min(POOL_SIZE, max(100, users // 20))
    if users < 0 or chunk_size < 1 or pool_size < 1:
        raise ValueError("users must be >= 0, chunk_size and pool_size >= 1")
    if not has_schema(engine):
        raise SchemaMissing("the legacy database has no `users` table: run `migrator init`")
    dialect = dialect_for(engine)
    table = User.__table__
    started = time.perf_counter()
    with engine.connect() as conn:
        conn = conn.execution_options(**dialect.write_options())
        dialect.grow_cache(conn, 64 << 20)  # the email index is written at random
        first_seq = (conn.scalar(select(func.max(User.id))) or 0) + 1
        conn.rollback()
        plan = _Plan(users, chunk_size, random.randrange(2**62) if seed is None else seed,
                     now or datetime.now(UTC), first_seq, pool_size)
        fresh = itertools.count(first_seq + users)
        inserting = 0.0
        for rows in _chunks(plan, workers):
            t0 = time.perf_counter()
            with conn.begin():
                _make_unique(conn, rows, fresh)
                dialect.bulk_copy(conn, table, rows)  # type: ignore[arg-type]  # a mapped class's __table__ is a Table
            inserting += time.perf_counter() - t0
            if on_chunk is not None:
                on_chunk(len(rows))
        total = conn.scalar(select(func.count()).select_from(User)) or 0
        conn.rollback()
    return SeedReport(users, time.perf_counter() - started, total, inserting)
