"""Helpers for the projection tests: a container on a fresh database, seeding, and read-model dumps."""

from __future__ import annotations

import struct
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from es_app.bootstrap import EsContainer, build
from es_app.projections.tables import notifications, projection_checkpoints, users_view
from es_app.settings import Settings
from es_app.store import ExpectedVersion, NewEvent


def container(url: str, **settings: Any) -> EsContainer:
    return build(Settings(es_database_url=url, **settings))


def register(c: EsContainer, name: str = "Ann") -> str:
    tag = uuid.uuid4().hex[:10]
    return c.user_service.register(name, f"{name.lower()}.{tag}@example.org").stream_id


def seed_every_event_type(c: EsContainer) -> list[str]:
    """Returns the ids of users whose streams hold every User event type between them."""
    svc = c.user_service
    a = register(c, "Ann")
    svc.execute(a, lambda u: u.change_name("Anna"))
    svc.execute(a, lambda u: u.change_email(f"anna.{uuid.uuid4().hex[:6]}@example.org"))
    svc.execute(a, lambda u: u.change_phone("+1 555 0100"))
    svc.execute(a, lambda u: u.deactivate("moved away"))
    svc.execute(a, lambda u: u.reactivate())
    svc.execute(a, lambda u: u.correct("name", "Anna Maria", "typo in the form"))
    b = register(c, "Bob")
    svc.execute(b, lambda u: u.delete())
    imported = f"user-{uuid.uuid4()}"
    c.store.append(imported, [
        NewEvent("UserImported", {"name": "Cy", "email": "cy@example.org", "active": False, "phone": None,
                                  "legacy_key": 42, "created_at": "2020-01-02T03:04:05+00:00",
                                  "updated_at": "2021-01-02T03:04:05+00:00", "row": {"id": 42}}),
        NewEvent("UserLegacyColumnChanged", {"column": "shoe_size", "value": 44}),
    ], ExpectedVersion.NO_STREAM)
    return [a, b, imported]


def seed_users(c: EsContainer, n: int, renames: int = 1, ids: list[str] | None = None) -> list[str]:
    """Returns the ids of n registered users (random ids unless given), each renamed `renames` times."""
    out = []
    for i in range(n):
        uid = register(c, f"User{i}") if ids is None else c.user_service.register(
            f"User{i}", f"user{i}.{uuid.uuid4().hex[:8]}@example.org", user_id=ids[i]).stream_id
        for r in range(renames):
            c.user_service.execute(uid, lambda u, r=r: u.change_name(f"User{i} r{r}"))
        out.append(uid)
    return out


def dump(engine: Engine, table=users_view) -> dict[str, dict[str, Any]]:  # noqa: ANN001
    with engine.connect() as conn:
        return {r.id: dict(r._mapping) for r in conn.execute(select(table))}


def checkpoints(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {n: p for n, p in conn.execute(select(projection_checkpoints.c.name,
                                                     projection_checkpoints.c.position))}


def outbox(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(notifications).order_by(notifications.c.event_id))]


def expected_row(c: EsContainer, stream_id: str) -> dict[str, Any]:
    """Returns the read-model fields of a user as replayed from its stream."""
    s = c.users.load(stream_id).state
    return {"id": s.id, "name": s.name, "email": s.email, "phone": s.phone, "active": s.active,
            "deleted": s.deleted, "version": s.version, "created_at": s.created_at, "updated_at": s.updated_at,
            "legacy_key": None if s.legacy_key is None else str(s.legacy_key), "extra": s.extra or None}


def view_fields(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "name", "email", "phone", "active", "deleted", "version", "created_at", "updated_at",
            "legacy_key", "extra")
    return {k: row[k] for k in keys}


def sqlite_log_frames(path: str) -> tuple[int, int]:
    """Returns (frames in an SQLite database's write-ahead log, of them copied into the database file), read
    from the wal-index without checkpointing anything (the -shm file: mxFrame at byte 16, nBackfill at byte
    96, native byte order; https://sqlite.org/walformat.html)."""
    data = Path(f"{path}-shm").read_bytes()[:100]
    return struct.unpack_from("=I", data, 16)[0], struct.unpack_from("=I", data, 96)[0]


def counting_write_transactions(monkeypatch) -> list[int]:
    """Returns a list that gets one item per write transaction the projection runner opens from now on."""
    from es_app.projections import runner

    opened: list[int] = []
    real = runner.write_transaction

    def counted(engine):
        opened.append(1)
        return real(engine)

    monkeypatch.setattr(runner, "write_transaction", counted)
    return opened


def assert_projected(c: EsContainer, ids: list[str]) -> None:
    """Asserts every projection is at the head, the read model equals the replay of `ids`, and each
    of them has its welcome notification."""
    from es_app.projections import caught_up

    assert caught_up(c.engine, c.store.head_position())
    assert {uid: view_fields(row) for uid, row in dump(c.engine).items()} == {uid: expected_row(c, uid) for uid in ids}
    assert sorted(n["stream_id"] for n in outbox(c.engine)) == sorted(ids)
