"""Retiring the legacy tables of a migration: check the guards of `decommissioned`, archive each table,
read the archive back, drop what the migration leaves in the legacy database, record the step.

Archive first, drop only after the archive reads back with its row counts and sha256: a failure
before the drop leaves every table, trigger and changelog in place (and removes this run's partial
files); the drop itself is one transaction (on MySQL, whose DDL commits implicitly, an order that keeps each
step safe: tables first, their triggers with them). See docs/decommission.md.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from es_app.store import EventStore

from ..mapping import TableMapping
from ..phases import (
    DECOMMISSIONED,
    GuardResult,
    MigrationChanged,
    MigrationState,
    PhaseError,
    Thresholds,
    decommission_ready,
    guards_for,
    load,
    record_refusal,
    stream_id,
)
from ..phases import decommission as record_decommission
from ..phases.facts import gather
from .archive import (
    MANIFEST,
    ArchiveError,
    Manifest,
    TableArchive,
    archive_file,
    check,
    count_rows,
    export_table,
    refuse_existing,
    write_manifest,
)
from .drop import DropPlan, drop, plan

RECORD_TRIES = 3  # the step is recorded again on a fresh state when a pause or throttle landed meanwhile


@dataclasses.dataclass(frozen=True)
class Done:
    """Returns what a confirmed decommission did: the manifest written (and its sha256), what was dropped and
    the state after the recorded step."""

    manifest: Manifest
    manifest_sha256: str
    dropped: DropPlan
    state: MigrationState


class Decommission:
    """One decommission of the migration `name`, its guards checked against the databases as they are now."""

    def __init__(self, store: EventStore, legacy: Engine, mappings: Sequence[TableMapping], limits: Thresholds,
                 directory: Path, name: str):
        self.store, self.legacy, self.mappings, self.directory = store, legacy, list(mappings), directory
        self.tables = [m.table for m in self.mappings]
        self.state = load(store, name)
        self.facts = gather(legacy, store.engine, self.mappings, self.state)
        self.results: list[GuardResult] = guards_for(DECOMMISSIONED, self.facts, self.state, limits)

    @property
    def unmet(self) -> list[GuardResult]:
        """Returns the guards of `decommissioned` that are not met."""
        return [r for r in self.results if not r.ok]

    @property
    def verify_run(self) -> int | None:
        """Returns the id of the `--full` verify run the decommission rests on (None when there is none)."""
        doc = self.facts.full_verify
        return None if doc is None else doc.get("id")

    def problems(self) -> list[str]:
        """Returns one line per reason the decommission cannot go ahead (empty: it can)."""
        if self.state.phase == DECOMMISSIONED:
            return [f"the migration {self.state.name} is already {DECOMMISSIONED}"]
        out = [f"{r.name}: {r.detail}" for r in self.unmet]
        try:
            decommission_ready(self.state, [])
        except PhaseError as exc:
            out.append(str(exc))
        try:
            refuse_existing(self.directory, self.tables)
        except ArchiveError as exc:
            out.append(str(exc))
        return out

    def refuse(self, actor: str) -> None:
        """Records the verdicts of a refused attempt in the migration's stream (as a refused advance does)."""
        if self.unmet:
            record_refusal(self.store, self.state, self.results, actor)

    def steps(self) -> list[str]:
        """Returns every step a confirmed decommission takes, in order, one line each."""
        lines = []
        for m in self.mappings:
            lines.append(f"archive the legacy table {m.table} ({count_rows(self.legacy, m.table):,} rows now, in "
                         f"{m.key} order) to {self.directory / archive_file(m.table)}")
        lines.append(f"write {self.directory / MANIFEST}: tables, row counts, sha256 of each file, resting on "
                     f"--full verify run {self.verify_run}")
        lines.append("read the archive back: each file's row count and sha256 must match the manifest")
        lines += plan(self.legacy, self.tables).lines()
        lines.append(f"record {self.state.phase} → {DECOMMISSIONED} in the stream {stream_id(self.state.name)}")
        return lines

    def run(self, actor: str) -> Done:
        """Returns what was done once the tables are archived, checked, dropped and the step recorded.

        Raises GuardsUnmet / PhaseError when the guards do not hold, ArchiveError when the archive cannot be
        written or does not read back (nothing dropped, this run's files removed), DropError when the drop
        is refused or fails (nothing dropped, the archive stays)."""
        decommission_ready(self.state, self.results)
        refuse_existing(self.directory, self.tables)
        manifest, sha = self._archive()
        if load(self.store, self.state.name).version != self.state.version:
            raise MigrationChanged(f"the migration {self.state.name} changed while archiving: nothing was dropped "
                                   f"(the archive stays in {self.directory}); see `migrator status`")
        dropped = drop(self.legacy, {t.table: t.rows for t in manifest.tables})
        archived: dict[str, Any] = {
            "archive": str(self.directory.absolute()), "manifest_sha256": sha, "verify_run": manifest.verify_run,
            "tables": [{"table": t.table, "file": t.file, "rows": t.rows, "sha256": t.sha256} for t in manifest.tables]}
        return Done(manifest, sha, dropped, self._record(archived, actor))

    def _archive(self) -> tuple[Manifest, str]:
        """Returns the manifest written (and its sha256) once the archive reads back as written; on failure
        removes this run's files (nothing that existed before is touched) and raises ArchiveError."""
        created_dir = not self.directory.exists()
        written: list[Path] = []
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            tables: list[TableArchive] = []
            for m in self.mappings:
                tables.append(export_table(self.legacy, m.table, m.key, self.directory))
                written.append(self.directory / tables[-1].file)
            manifest = Manifest(self.state.name, datetime.now(UTC).isoformat(timespec="seconds"), self.verify_run,
                                tuple(tables))
            sha = write_manifest(self.directory, manifest)
            written.append(self.directory / MANIFEST)
            if check(self.directory) != manifest:
                raise ArchiveError(f"the manifest in {self.directory} does not read back as written")
            return manifest, sha
        except BaseException as exc:
            for path in written:
                path.unlink(missing_ok=True)
            if created_dir:
                shutil.rmtree(self.directory, ignore_errors=True)
            if isinstance(exc, ArchiveError):
                raise ArchiveError(f"{exc}; nothing was dropped") from None
            if isinstance(exc, OSError):
                raise ArchiveError(f"cannot write the archive in {exc.filename or self.directory}: "
                                   f"{exc.strerror or exc}; nothing was dropped") from None
            raise

    def _record(self, archived: dict[str, Any], actor: str) -> MigrationState:
        state = self.state
        for attempt in range(RECORD_TRIES):
            try:
                return record_decommission(self.store, state, self.results, archived, actor)
            except MigrationChanged:
                state = load(self.store, state.name)
                if attempt + 1 == RECORD_TRIES or state.phase != self.state.phase:
                    break
        raise PhaseError(f"the legacy tables were archived to {self.directory} and dropped, but the migration "
                         f"{state.name} changed meanwhile ({state.phase}): the step to {DECOMMISSIONED} is not "
                         "recorded; see `migrator status`")
