"""`migrator demo`: the first half of the migration, end to end, on fresh embedded databases.

Seed a legacy CRUD database, install capture, keep the legacy app writing while the
backfill runs, relay the captured changes, project the read model, then verify every
legacy row against its read-model row and the replay of its stream (`migrator verify --full`,
stored as a verify run).
"""

from __future__ import annotations

import random
import shutil
import threading
import time
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text
from sqlalchemy import select

from es_app.bootstrap import build, dispose_engines, engine_for
from es_app.projections import run_projections
from es_app.projections.tables import users_view
from es_app.settings import VAR_DIR
from legacy_app.db import Database
from legacy_app.service import EmailTaken, UserNotFound, UserService
from migrator.backfill.run import Backfill, BackfillOptions, projector_for
from migrator.capture import changelog as capture
from migrator.mapping import USERS
from migrator.relay.runner import Relay
from migrator.seed import seed_users
from migrator.verify import runs, verify

from .common import CliError, console, settings_for, styled
from .schema_cmd import init

DEMO_DIR = VAR_DIR / "demo"


def _step(text: str) -> float:
    console.print(styled("[bold cyan]→[/bold cyan] {text}", text=text), highlight=False)
    return time.perf_counter()


def _done(started: float, text: str = "") -> None:
    console.print(styled("  [green]done[/green] in {s:.2f}s {text}", s=time.perf_counter() - started, text=text),
                  highlight=False)


class LegacyTraffic:
    """The legacy app going on with its life: renames, email and phone edits, (de)activations,
    sign-ups and deletions through its own load-mutate-save service, in a background thread."""

    def __init__(self, service: UserService, max_id: int, seed: int = 7):
        self.service, self.max_id = service, max_id
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.writes = 0
        self.thread = threading.Thread(target=self._run, name="legacy-traffic", daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            self.one_write()
            time.sleep(0.002)

    def one_write(self) -> None:
        rng, uid = self.rng, self.rng.randint(1, self.max_id)
        try:
            match rng.choice(("rename", "rename", "email", "phone", "active", "create", "delete")):
                case "rename":
                    self.service.change_name(uid, f"Renamed {rng.randint(0, 10**6)}")
                case "email":
                    self.service.update(uid, {"email": f"moved{rng.randint(0, 10**9)}@example.net"})
                case "phone":
                    self.service.update(uid, {"phone": rng.choice((None, f"+44 20 {rng.randint(0, 10**7):07d}"))})
                case "active":
                    self.service.update(uid, {"is_active": rng.random() < 0.5})
                case "create":
                    self.service.create(email=f"new{rng.randint(0, 10**9)}@example.com", full_name="Late Signup")
                case "delete":
                    self.service.delete(uid)
            self.writes += 1
        except (UserNotFound, EmailTaken):
            pass  # a row deleted earlier, or an email drawn twice: the legacy app says no, as it would


def _fresh_urls() -> tuple[str, str]:
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    DEMO_DIR.mkdir(parents=True)
    return f"sqlite:///{DEMO_DIR / 'es.db'}", f"sqlite:///{DEMO_DIR / 'legacy.db'}"


def _verify(legacy_db: Database, es: Any) -> dict[str, Any]:
    """Returns the stored document of a `migrator verify --full` of the users table (see docs/verify.md)."""
    report = verify(legacy_db.engine, es.engine, [USERS.bind(legacy_db.engine)], full=True, wait=0)
    doc = report.to_json()
    doc["id"] = runs.store(es.engine, doc)
    return doc


def _lines(doc: dict[str, Any]) -> list[str]:
    """Returns one line per listed mismatch: kind, stream and the fields that differ."""
    return [f"{m['kind']} {m['stream_id']}: {', '.join(m['fields']) or '-'}" for m in doc["mismatches"]]


def demo(
    ctx: typer.Context,
    users: Annotated[int, typer.Option("--users", min=1, max=1_000_000, help="Legacy users to seed")] = 2000,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=100_000, help="Backfill rows per chunk")] = 250,
) -> None:
    """Migrate a live legacy user database into the event store, on fresh files under var/demo/."""
    settings = settings_for(ctx)
    if ctx.find_root().params.get("es_url") or ctx.find_root().params.get("legacy_url"):
        raise CliError("the demo always runs on fresh SQLite files under var/demo/; drop --es-url/--legacy-url")
    es_url, legacy_url = _fresh_urls()
    settings = settings.model_copy(update={"es_database_url": es_url, "legacy_database_url": legacy_url,
                                           "broker_url": ""})
    console.rule(styled("[bold]legacy CRUD → event sourcing + CQRS, first half of the walk"))
    t = _step("create both schemas (migrator init)")
    init(ctx, es_url, legacy_url)
    _done(t)

    legacy_db = Database(engine_for(legacy_url))
    es = build(settings)
    t = _step(f"seed the legacy database with {users:,} users (migrator seed)")
    seed_users(legacy_db.engine, users, seed=42)
    _done(t)

    t = _step("install change capture: triggers write a changelog row in the same transaction "
              "(migrator capture install)")
    capture.install(legacy_db.engine, [USERS])
    _done(t)

    traffic = LegacyTraffic(UserService(legacy_db), max_id=users)
    mapping = USERS.bind(legacy_db.engine)
    t = _step("backfill every row as a UserImported event while the legacy app keeps writing (migrator backfill)")
    traffic.thread.start()
    backfill = Backfill(mapping, legacy_db.engine, es.store, options=BackfillOptions(batch_size=batch_size),
                        project=projector_for(es))
    backfill.start()
    run = backfill.run_to_end()
    traffic.stop.set()
    traffic.thread.join()
    _done(t, f"({run.rows_imported:,} imported, {run.rows_skipped:,} already streams, "
             f"{traffic.writes:,} legacy writes meanwhile)")

    t = _step("relay the captured changes into their streams, in order, exactly once (migrator relay)")
    totals = Relay(mapping, legacy_db.engine, es.store).drain()
    _done(t, f"({totals.read:,} changes read, {totals.relayed:,} relayed → {totals.events:,} events, "
             f"{totals.skipped:,} already in the imports)")

    t = _step("project the read model (migrator projections run)")
    applied = run_projections(es)
    _done(t, f"({applied:,} events applied)")

    t = _step("verify every legacy row against its read-model row and the replay of its stream "
              "(migrator verify --full)")
    doc = _verify(legacy_db, es)
    _done(t, f"(run {doc['id']}, {doc['duration_s']:.1f} s)")
    _summary(es, doc)
    _story(es, legacy_db)
    dispose_engines()
    if not doc["clean"]:
        for line in _lines(doc)[:10]:
            console.print(Text(f"  {line}", "red"), highlight=False)
        raise CliError(f"{doc['mismatches_total']} mismatches between the legacy database and the event store "
                       f"(verify run {doc['id']})")
    console.print(styled("[green]ok[/green]: verify run {run} is clean. Databases kept in {dir}/ — try "
                         "`migrator --es-url sqlite:///{db} --legacy-url sqlite:///{legacy} verify --list`.",
                         run=str(doc["id"]), dir=str(DEMO_DIR), db=str(DEMO_DIR / "es.db"),
                         legacy=str(DEMO_DIR / "legacy.db")), highlight=False)


def _summary(es: Any, doc: dict[str, Any]) -> None:
    users = doc["tables"][0]
    table = Table(title="after the walk")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("legacy rows", f"{users['rows_legacy']:,}")
    table.add_row("read-model rows", f"{users['rows_new']:,}")
    table.add_row("streams replayed", f"{users['keys_replayed']:,}")
    table.add_row("events in the store", f"{es.store.head_position():,}")
    for kind, count in doc["counts"].items():
        table.add_row(kind, Text(f"{count:,}", "red" if count and kind != "pending" else "green"))
    console.print(table)


def _story(es: Any, legacy_db: Database) -> None:
    """Shows one migrated user's history, then a command on the new side and time travel."""
    with es.engine.connect() as conn:
        sid = conn.execute(select(users_view.c.id).where(users_view.c.version > 1, users_view.c.deleted.is_(False))
                           .order_by(users_view.c.version.desc()).limit(1)).scalar()
    if sid is None:
        return
    es.user_service.execute(sid, lambda u: u.change_name("Sarah Connor"),
                            metadata={"actor": "demo", "source": "es_app"})
    run_projections(es)
    table = Table(title=f"history of {sid}: it begins with the migration, then goes on")
    for col in ("v", "event", "source", "occurred at", "data"):
        table.add_column(col)
    for e in es.store.read_stream(sid):
        data = {k: v for k, v in e.data.items() if k != "row"}
        table.add_row(str(e.version), e.type, str(e.metadata.get("source", "")),
                      str(e.metadata.get("occurred_at", ""))[:19], str(data)[:60])
    console.print(table)
    first = es.users.load(sid, version=1).state
    now = es.users.load(sid).state
    console.print(f"as imported (v1): name={first.name!r}; now (v{now.version}): name={now.name!r}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(demo)
