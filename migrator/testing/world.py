"""`MigratorWorld`: one legacy database with capture installed, the event store the relay feeds, and a
second event store for the event-sourced path of a comparison scenario."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Engine

from es_app.bootstrap import EsContainer, build, engine_for
from es_app.projections import run_projections
from es_app.settings import Settings

from ..capture import changelog as capture
from ..mapping import USERS, CompiledMapping, TableMapping
from ..relay.runner import Relay
from ..verify import ReadModel, users_read_model
from .operations import Operation
from .paths import CommandPath, LegacyPath, MappingEvents, UserCommands


def is_users(mapping: TableMapping) -> bool:
    """Returns whether `mapping` maps the users table onto es_app's user events (so its commands apply)."""
    return (mapping.table, mapping.register_event_type, mapping.import_event_type) == (
        USERS.table, USERS.register_event_type, USERS.import_event_type)


def container(es_url: str, legacy_url: str) -> EsContainer:
    """Returns es_app wired to this event store (embedded: no broker)."""
    return build(Settings(es_database_url=es_url, legacy_database_url=legacy_url, broker_url=""))


@dataclasses.dataclass
class MigratorWorld:
    """The legacy database (`legacy`), the relay's event store (`es`) and the commands' one (`commands_es`).

    `commands` is the event-sourced path of `compare` (default: `UserCommands` for the users mapping,
    `MappingEvents` for any other); `read_model` gives the read model both stores are compared with
    (default: users_view for the users mapping, none for another).
    """

    legacy: Engine
    es: EsContainer
    commands_es: EsContainer
    mapping: CompiledMapping
    commands: CommandPath
    read_model: Callable[[Engine], ReadModel] | None = None

    @classmethod
    def create(cls, legacy_url: str, es_url: str, commands_url: str, mapping: TableMapping) -> MigratorWorld:
        """Returns the world on these databases (at schema head), with capture installed for `mapping`."""
        es = container(es_url, legacy_url)
        commands_es = container(commands_url, legacy_url)
        legacy = engine_for(legacy_url)
        capture.install(legacy, [mapping])
        compiled = mapping.bind(legacy)
        users = is_users(mapping)
        commands: CommandPath = (UserCommands(commands_es, compiled) if users
                                 else MappingEvents(commands_es.store, compiled))
        return cls(legacy, es, commands_es, compiled, commands, users_read_model if users else None)

    @property
    def legacy_path(self) -> LegacyPath:
        """Returns the legacy CRUD path (made once: it reflects the table)."""
        if "_legacy_path" not in self.__dict__:
            self.__dict__["_legacy_path"] = LegacyPath(self.legacy, self.mapping)
        path: LegacyPath = self.__dict__["_legacy_path"]
        return path

    def write(self, operations: Sequence[Operation]) -> None:
        """Applies the operations to the legacy table only (capture records them)."""
        for op in operations:
            self.legacy_path.apply(op)

    def catch_up(self) -> None:
        """Relays every captured change and runs the projections of both event stores to their heads."""
        Relay(self.mapping, self.legacy, self.es.store).drain()
        for es in (self.es, self.commands_es):
            run_projections(es)

    def compare(self, operations: Sequence[Operation]) -> None:
        """Runs the scenario through both paths; raises AssertionError with a field-level diff when they differ."""
        from .scenario import compare

        compare(self, operations)

    def row(self, key: Any) -> dict[str, Any] | None:
        """Returns the key's legacy row, None when there is none."""
        return self.legacy_path.row(key)
