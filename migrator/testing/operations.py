"""The operations of a comparison scenario: what a legacy user of a table does to one key.

Values are keyed by the legacy table's column names, as the legacy CRUD code writes them.
`create` inserts a row (again after a `delete`: a recreated key), `update` sets some columns,
`delete` removes the row. A deactivation is an update of the boolean column (`update(1, is_active=False)`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

CREATE = "create"
UPDATE = "update"
DELETE = "delete"


@dataclasses.dataclass(frozen=True)
class Operation:
    """One legacy write: `kind` (create, update or delete) of `key` with column `values`."""

    kind: str
    key: Any
    values: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __str__(self) -> str:
        shown = ", ".join(f"{c}={v!r}" for c, v in self.values.items())
        return f"{self.kind}({self.key!r}{', ' if shown else ''}{shown})"


def create(key: Any, **values: Any) -> Operation:
    """Returns the insert of a row with this key (also a key deleted before: a recreate)."""
    return Operation(CREATE, key, values)


def update(key: Any, **values: Any) -> Operation:
    """Returns the update of these columns of the key's row."""
    return Operation(UPDATE, key, values)


def delete(key: Any) -> Operation:
    """Returns the delete of the key's row."""
    return Operation(DELETE, key)
