"""`migrator demo`: a short end-to-end walk on the embedded default."""

from __future__ import annotations

import typer
from rich.table import Table

from es_app.bootstrap import build
from es_app.services import new_user_id

from .common import EsUrl, LegacyUrl, console, settings_for
from .schema_cmd import init


def demo(ctx: typer.Context, es_url: EsUrl = None, legacy_url: LegacyUrl = None) -> None:
    """Create a user, rename it, then replay its stream and travel back in time."""
    init(ctx, es_url, legacy_url)
    es = build(settings_for(ctx, es_url, legacy_url))
    user_id = new_user_id()
    email = f"{user_id[5:13]}@example.org"
    meta = {"actor": "demo"}
    first = es.user_service.register("Sarah Connor", email, metadata=meta)
    es.user_service.execute(user_id := first.stream_id, lambda u: u.change_name("Sarah Reese"), metadata=meta)
    last = es.user_service.execute(user_id, lambda u: u.change_phone("+1 555 0100"), metadata=meta)
    table = Table(title=f"history of {user_id}")
    for col in ("version", "position", "event", "data"):
        table.add_column(col)
    for e in es.store.read_stream(user_id):
        table.add_row(str(e.version), str(e.position), e.type, str(e.data))
    console.print(table)
    now = es.users.load(user_id).state
    then = es.users.load(user_id, version=1).state
    console.print(f"replayed at v{now.version}: name={now.name!r} email={now.email!r} phone={now.phone!r}")
    console.print(f"as of v1:        name={then.name!r} (time travel)")
    console.print(f"[green]ok[/green]: {last.version} events, global position {last.position}")


def register(app: typer.Typer) -> None:
    app.command()(demo)
