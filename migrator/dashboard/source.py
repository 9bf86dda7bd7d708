"""What the dashboard reads from: the es_app container, the legacy engine and the mappings, built on first use."""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import Engine

from es_app.settings import Settings, get_settings
from migrator.mapping import CompiledMapping, TableMapping


class Source:
    """Returns the wired parts for `settings` (the environment's when None); nothing connects until asked."""

    def __init__(self, settings: Settings | None = None):
        self._settings = settings

    @functools.cached_property
    def settings(self) -> Settings:
        return self._settings or get_settings()

    @functools.cached_property
    def es(self) -> Any:
        from es_app.bootstrap import build

        return build(self.settings)

    @functools.cached_property
    def legacy(self) -> Engine:
        from es_app.bootstrap import engine_for

        return engine_for(self.settings.legacy_database_url)

    @property
    def declarations(self) -> list[TableMapping]:
        from migrator.mapping import load_mappings

        return load_mappings(self.settings.mapping_file or None)

    def mapping(self, table: str | None) -> CompiledMapping:
        """Returns the mapping of `table` (the first one when None), bound to the legacy table; LookupError when
        no mapping names it."""
        from migrator.mapping import load_mappings

        found = [m for m in self.declarations if table is None or m.table == table]
        if not found:
            names = ", ".join(m.table for m in self.declarations)
            raise LookupError(f"no mapping of a table {table!r}: the mapped tables are {names}")
        return load_mappings(self.settings.mapping_file or None, self.legacy, [found[0].table])[0]

    @property
    def token(self) -> str | None:
        """Returns the token the phase actions need, None when they are off (DASHBOARD_TOKEN unset, blank or the
        example's placeholder)."""
        from es_app.settings import PLACEHOLDER_TOKENS

        token = self.settings.dashboard_token.strip()
        return token if token and token not in PLACEHOLDER_TOKENS else None
