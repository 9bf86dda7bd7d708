"""factory-boy factories for test data: domain events, given-histories and store events."""

from __future__ import annotations

import uuid
from typing import Any, Iterable

import factory

from es_app.domain import (
    DomainEvent,
    User,
    UserImported,
    UserNameChanged,
    UserRegistered,
)
from es_app.store import NewEvent


class UserRegisteredFactory(factory.Factory):
    class Meta:
        model = UserRegistered

    name = factory.Faker("name")
    email = factory.Sequence(lambda n: f"user{n}@example.org")
    phone = None


class UserNameChangedFactory(factory.Factory):
    class Meta:
        model = UserNameChanged

    name = factory.Faker("name")


class UserImportedFactory(factory.Factory):
    """A legacy row taken over whole by the migrator."""

    class Meta:
        model = UserImported

    legacy_key = factory.Sequence(lambda n: n + 1)
    name = factory.Faker("name")
    email = factory.Sequence(lambda n: f"legacy{n}@example.org")
    phone = factory.Faker("numerify", text="+1-###-###-####")
    active = True
    created_at = "2019-03-04T05:06:07+00:00"
    updated_at = "2021-08-09T10:11:12+00:00"
    row = factory.LazyAttribute(lambda o: {"id": o.legacy_key, "email": o.email})


class NewEventFactory(factory.Factory):
    """A store-level event with an id of its own and the usual metadata."""

    class Meta:
        model = NewEvent

    type = "Thing"
    data = factory.Sequence(lambda n: {"n": n})
    metadata = factory.LazyFunction(lambda: {"actor": "test", "correlation_id": str(uuid.uuid4())})
    event_id = factory.LazyFunction(lambda: str(uuid.uuid4()))
    schema_version = 1


def new_stream_id() -> str:
    """Returns a fresh `user-<uuid>` stream id."""
    return f"user-{uuid.uuid4()}"


def given(*history: DomainEvent, stream_id: str | None = None,
          metadata: dict[str, Any] | None = None) -> User:
    """Returns a User replayed from `history` (the "given" of a given/when/then test)."""
    meta = metadata or {}
    return User.replay(stream_id or new_stream_id(), ((e, meta) for e in history))


def as_new_events(domain_events: Iterable[DomainEvent], **metadata: Any) -> list[NewEvent]:
    """Returns store events for these domain events, as the Repository would write them."""
    return [NewEvent(type=e.type_name, data=e.to_data(), metadata=dict(metadata),
                     schema_version=e.schema_version) for e in domain_events]
