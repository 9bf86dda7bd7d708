"""Testing a migration in a team's own suite: the pytest plugin's fixtures (`migrator.testing.plugin`), the
scenario operations, the comparison of the legacy and event-sourced paths, factories for legacy rows.
The hypothesis strategy lives in `migrator.testing.strategies` (imported only by those who use it)."""

from .factories import LegacyUserRowFactory, insert_rows
from .operations import CREATE, DELETE, UPDATE, Operation, create, delete, update
from .paths import CommandPath, CommandRefused, LegacyPath, MappingEvents, UserCommands
from .scenario import compare
from .world import MigratorWorld, is_users

__all__ = [
    "CREATE",
    "DELETE",
    "UPDATE",
    "CommandPath",
    "CommandRefused",
    "LegacyPath",
    "LegacyUserRowFactory",
    "MappingEvents",
    "MigratorWorld",
    "Operation",
    "UserCommands",
    "compare",
    "create",
    "delete",
    "insert_rows",
    "is_users",
    "update",
]
