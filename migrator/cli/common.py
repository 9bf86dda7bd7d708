"""What every CLI command shares: URL options, settings, the console, and user-facing errors."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.console import Console

from es_app.settings import Settings, get_settings

console = Console()
err_console = Console(stderr=True, soft_wrap=True)


class CliError(Exception):
    """An error the user can act on; printed as one line, exit code 1 (or `code`)."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


EsUrl = Annotated[Optional[str], typer.Option("--es-url", help="Event store database URL [env: ES_DATABASE_URL]",
                                              show_default=False)]
LegacyUrl = Annotated[Optional[str], typer.Option("--legacy-url", help="Legacy database URL [env: LEGACY_DATABASE_URL]",
                                                  show_default=False)]


def settings_for(ctx: typer.Context | None = None, es_url: str | None = None,
                 legacy_url: str | None = None) -> Settings:
    """Returns settings with URLs from command options, else global options, else the environment."""
    base: Settings = (ctx.find_root().obj if ctx is not None and ctx.find_root().obj else None) or get_settings()
    updates = {k: v for k, v in (("es_database_url", es_url), ("legacy_database_url", legacy_url)) if v}
    return base.model_copy(update=updates) if updates else base
