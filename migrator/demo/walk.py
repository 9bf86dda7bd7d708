"""The demo's walk of every phase under live traffic: the operator's steps are the CLI's own commands
(`capture install`, `advance`, `backfill`, `verify --full`, `reads`, `decommission`), run in this process
through `run_cli`; the legacy app serves a writer and readers the whole time and a worker thread does the
Celery worker's jobs. After each phase: what it changed, the same users side by side, the numbers."""

from __future__ import annotations

import dataclasses
import json
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from rich.console import Console
from rich.text import Text
from sqlalchemy import select, update

from es_app.bootstrap import build, engine_for
from es_app.settings import Settings, get_settings
from legacy_app.models import User

from ..mapping import USERS
from ..phases import load
from ..phases.facts import projection_lag
from ..seed import seed_users
from ..switchover.app import create_switchable_app
from .final import FinalReport, final_report
from .traffic import Traffic, WorkerThread
from .views import Moment, moment_line, side_by_side, time_travel

with warnings.catch_warnings():  # starlette's notice about its test client's transport, not the demo's business
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

# the guards' knobs set so that a demo's phases pass in seconds (see docs/runbook.md for real values)
DEMO_SETTINGS = {"SHADOW_MIN_COMPARED": "20", "READS_SWITCHED_MIN_S": "0", "WRITES_SWITCHED_MIN_S": "0",
                 "ROUTES_POLL_S": "0.05", "SHADOW_FLUSH_S": "0.1", "RELAY_CATCH_UP_WAIT_S": "2",
                 "RELAY_MAX_IDLE_S": "600", "READ_WAIT_S": "5", "BROKER_URL": ""}
PHASES = ("seed", "capture", "backfill", "verify", "shadow reads", "read switchover", "write switchover",
          "decommission", "final report")
DIRTY_NAME, CLEAN_NAME = "  ada  LOVELACE ", "Ada Lovelace"

RunCli = Callable[..., tuple[int, str]]  # (*argv) -> (exit code, output): one `migrator` command


class WalkFailed(Exception):
    """A step of the walk that did not succeed within its retries; the message is one line."""


@dataclasses.dataclass(frozen=True)
class WalkOptions:
    """Returns the demo's choices: users to seed, backfill chunk size, where the archive goes."""

    users: int
    batch_size: int
    archive: Path


def demo_environment(es_url: str, legacy_url: str, **more: str) -> Settings:
    """Returns the demo's settings (`more`: other settings by their variable), also put in this process's
    environment for the CLI steps it runs and the workers it starts."""
    os.environ.update(DEMO_SETTINGS, ES_DATABASE_URL=es_url, LEGACY_DATABASE_URL=legacy_url, **more)
    get_settings.cache_clear()
    return get_settings()


class Workers(Protocol):
    """What runs the worker's jobs during the walk (a thread, or Celery processes): a context manager."""

    errors: list[str]

    def __enter__(self) -> Workers: ...

    def __exit__(self, *_: object) -> None: ...


class Walk:
    """One walk legacy → decommissioned; `run()` returns the final report. `pause()` is called between phases;
    `workers()` gives what runs the worker's jobs (default: a thread in this process)."""

    def __init__(self, console: Console, settings: Settings, run_cli: RunCli, options: WalkOptions,
                 pause: Callable[[], object], workers: Callable[[], Workers] | None = None):
        self.console, self.settings, self.cli, self.options, self.pause = console, settings, run_cli, options, pause
        self.workers = workers or (lambda: WorkerThread(settings))
        self.es = build(settings)
        self.legacy = engine_for(settings.legacy_database_url)
        self.mapping: Any = None  # bound once `migrator init` made the legacy table
        self.dirty = 1
        self.showcase = (1, 2, 3)
        self.phase_no = 0
        self.head, self.clock = 0, time.perf_counter()
        self.traffic: Traffic | None = None
        self.client: Any = None

    # -- the operator's steps ------------------------------------------------
    def step(self, *argv: str) -> str:
        code, out = self.cli(*argv)
        if code:
            raise WalkFailed(f"migrator {' '.join(argv)}: {out.strip().splitlines()[-1] if out.strip() else code}")
        return out

    def until(self, *argv: str, tries: int = 60) -> str:
        """Returns the output of the first success of a step retried while traffic moves on (a guard that saw
        a change in flight, a verify that caught a write mid-way)."""
        out = ""
        for _ in range(tries):
            code, out = self.cli(*argv)
            if code == 0:
                return out
            time.sleep(0.25)
        raise WalkFailed(f"migrator {' '.join(argv)} never succeeded: {out.strip().splitlines()[-1:] or ''}")

    def touch(self, change: dict[str, Any]) -> None:
        """A write of the dirty user through the legacy app (its name untouched), for its history."""
        r = self.client.put(f"/users/{self.dirty}", json=change)
        if r.status_code != 200:
            raise WalkFailed(f"PUT /users/{self.dirty} {change}: {r.status_code} {r.text[:120]}")

    def advance(self) -> None:
        self.until("advance", "--actor", "demo")

    # -- what is shown ------------------------------------------------------
    def begin(self, name: str) -> float:
        if self.phase_no:
            self.pause()
        self.phase_no += 1
        self.console.rule(Text(f"phase {self.phase_no}/{len(PHASES)} · {name}", "bold cyan"))
        return time.perf_counter()

    def changed(self, started: float, text: str) -> None:
        self.console.print(Text.assemble(("  what changed: ", "bold"), text,
                                         (f"  ({time.perf_counter() - started:.1f} s)", "dim")))

    def show(self, title: str, *, archived: bool = False) -> None:
        self.console.print(side_by_side(None if archived else self.legacy, self.es, self.mapping, self.showcase,
                                        title))
        state = load(self.es.store)
        head, now = self.es.store.head_position(), time.perf_counter()
        rate = (head - self.head) / max(now - self.clock, 1e-3)
        self.head, self.clock = head, now
        backlog = 0
        if not archived:
            status = json.loads(self.step("status", "--json"))
            backlog = int(status.get("backlog") or 0)
        reads = state.reads + (f" {state.reads_percent:g}%" if state.reads == "new" else "")
        t = self.traffic
        self.console.print(moment_line(Moment(state.phase, reads, state.writes, backlog, projection_lag(self.es.engine),
                                              rate, t.writes if t else 0, t.reads if t else 0)))

    # -- the walk -------------------------------------------------------------
    def run(self) -> FinalReport:
        """Returns the final report once every phase ran (WalkFailed when a step never succeeded)."""
        t = self.begin("seed")
        self.step("init")
        self.mapping = USERS.bind(self.legacy)
        seed_users(self.legacy, self.options.users, seed=42)
        with self.legacy.begin() as conn:  # one deliberately dirty value, as real legacy data has
            conn.execute(update(User).where(User.id == self.dirty).values(full_name=DIRTY_NAME))
        self.changed(t, f"a legacy CRUD database with {self.options.users:,} users (user {self.dirty}'s name is "
                        f"dirty: {DIRTY_NAME!r}); the legacy app starts serving a writer and two readers")
        self.show("before the migration: only the legacy rows exist")
        app = create_switchable_app(self.settings.legacy_database_url, self.settings)
        with TestClient(app) as client, self.workers() as worker:
            with Traffic(client, self.options.users, self.showcase[1:], protected=(self.dirty,)) as traffic:
                self.traffic, self.client = traffic, client
                self.live_phases(traffic)
            before_decommission = self.verify()
        with self.legacy.connect() as conn:
            live = [k for (k,) in conn.execute(select(User.id))]
        t = self.begin("decommission")
        self.step("relay")  # the changes the worker left (the reverse projection's last writes): the backlog guard
        self.step("decommission", "--archive", str(self.options.archive), "--confirm", "--actor", "demo")
        self.changed(t, f"the legacy table is archived to {self.options.archive}/ and dropped; the legacy app "
                        f"answers reads from the read model and refuses writes")
        self.show("after the decommission: only the event-sourced side is left", archived=True)
        self.begin("final report")
        report = final_report(before_decommission, self.options.archive, self.es.engine, live, traffic.server_errors)
        if worker.errors:
            self.console.print(Text(f"  the worker retried {len(worker.errors)} rounds "
                                    f"(first: {worker.errors[0][:120]})", "yellow"))
        return report

    def verify(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.until("verify", "--full", "--format", "json"))
        return doc

    def live_phases(self, traffic: Traffic) -> None:
        t = self.begin("capture")
        self.step("capture", "install")
        self.touch({"is_active": False})
        traffic.wait_writes(10)
        self.advance()
        self.changed(t, "triggers write a changelog row with every legacy write; the relay turns them into "
                        "events (phase dual_write)")
        self.show("after capture: only users the legacy app changed have streams yet")

        t = self.begin("backfill")
        before = self.es.store.head_position()
        self.step("backfill", "--batch-size", str(self.options.batch_size))
        took, appended = time.perf_counter() - t, self.es.store.head_position() - before
        self.advance()
        self.changed(t, f"every legacy row imported as a UserImported event, {appended:,} events in {took:.1f} s "
                        f"({appended / max(took, 1e-3):,.0f} rows/s) while the legacy app kept writing "
                        f"(phase backfilled)")
        self.show("after the backfill: three views of the same users")

        t = self.begin("verify")
        doc = self.verify()
        self.advance()
        users = doc["tables"][0]
        self.changed(t, f"verify --full (run {doc['id']}): {users['rows_legacy']:,} legacy rows, "
                        f"{users['rows_new']:,} read-model rows, {users['keys_replayed']:,} streams replayed, "
                        f"clean={doc['clean']}; reads go to both sides (phase shadow_reads)")
        self.show("verified: the three views agree (a red cell is a change still in flight)")

        t = self.begin("shadow reads")
        self.touch({"phone": "+44 20 7946 0018"})
        minimum = self.settings.shadow_min_compared
        deadline = time.monotonic() + 60
        while load(self.es.store).shadow_compared < minimum and time.monotonic() < deadline:
            time.sleep(0.1)
        s = load(self.es.store)
        self.changed(t, f"the legacy app serves, the read model answers too and is compared: {s.shadow_compared} "
                        f"compared, {s.shadow_mismatched} mismatched, {s.shadow_lagged} lagged (in flight), "
                        f"{s.shadow_timeouts} timeouts")
        self.show("shadow reads")

        t = self.begin("read switchover")
        self.touch({"is_active": True})
        for percent in ("10", "50"):
            self.until("reads", "--mode", "new", "--percent", percent, "--actor", "demo")
            traffic.wait_writes(10)
            self.console.print(Text(f"  reads --mode new --percent {percent}: {percent}% of users (by key hash) "
                                    f"are read from the read model", "dim"))
        self.verify()
        self.advance()
        self.changed(t, "every read served by the read model (phase reads_switched, 100%); writes still legacy")
        self.show("reads switched")

        t = self.begin("write switchover")
        self.advance()
        traffic.wait_writes(20)
        self.correct_and_travel()
        self.wait_reverse()
        self.changed(t, "writes go through the event-sourced commands; the reverse projection keeps the legacy "
                        "table following the store (phase writes_switched)")
        self.show("writes switched: the legacy rows now follow the events")

    def wait_reverse(self, timeout: float = 10.0) -> None:
        """Returns once the reverse projection wrote the correction into the legacy row (or after `timeout`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.legacy.connect() as conn:
                if conn.execute(select(User.full_name).where(User.id == self.dirty)).scalar() == CLEAN_NAME:
                    return
            time.sleep(0.05)

    def correct_and_travel(self) -> None:
        """Fixes the dirty name with a correction event, then shows the user's history version by version."""
        sid = self.mapping.stream_id(self.dirty)
        self.es.user_service.execute(sid, lambda u: u.correct("name", CLEAN_NAME, "name typed in the legacy app "
                                                               "with stray spaces and caps"),
                                     metadata={"actor": "demo", "source": "demo"})
        version = self.es.store.stream_version(sid)
        self.console.print(time_travel(self.es, sid, sorted({1, *range(max(1, version - 6), version + 1)})))
        self.console.print(Text(f"  the history keeps both: v1 holds the imported {DIRTY_NAME.strip()!r}, "
                                f"v{version} the correction to {CLEAN_NAME!r}", "dim"))
