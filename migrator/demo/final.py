"""The demo's final consistency report: the last full verify before the decommission, the archive read back
against its manifest, every live legacy user in the read model, and no 5xx seen by the legacy app's users."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text
from sqlalchemy import Engine, select

from es_app.projections.tables import users_view


@dataclasses.dataclass(frozen=True)
class Check:
    """One line of the report: what was checked, what was seen, and whether it holds."""

    what: str
    seen: str
    ok: bool


@dataclasses.dataclass(frozen=True)
class FinalReport:
    """Returns the checks; `clean` when every one holds."""

    checks: tuple[Check, ...]

    @property
    def clean(self) -> bool:
        return all(c.ok for c in self.checks)

    def table(self) -> Table:
        """Returns the report as a Rich table."""
        table = Table(title="final consistency report", title_justify="left")
        for col in ("check", "seen", "result"):
            table.add_column(col)
        for c in self.checks:
            table.add_row(c.what, c.seen, Text("ok", "green") if c.ok else Text("DIFFERS", "bold red"))
        return table


def archive_checks(archive: Path) -> list[Check]:
    """Returns, per archived table, whether its file's row count and sha256 match the manifest."""
    manifest = json.loads((archive / "manifest.json").read_text())
    out = []
    for entry in manifest["tables"]:
        data = (archive / entry["file"]).read_bytes()
        digest, rows = hashlib.sha256(data).hexdigest(), len(gzip.decompress(data).splitlines())
        out.append(Check(f"archive {entry['file']}: rows and sha256 as in the manifest",
                         f"{rows:,} rows (manifest {entry['rows']:,}), sha256 {digest[:12]}… "
                         f"(manifest {str(entry['sha256'])[:12]}…)",
                         rows == entry["rows"] and digest == entry["sha256"]))
    return out


def live_users_check(es: Engine, live_keys: Iterable[int]) -> Check:
    """Returns whether the read model holds every user that was live in the legacy table, not deleted."""
    wanted = {str(k) for k in live_keys}
    with es.connect() as conn:
        held = {r.legacy_key for r in conn.execute(select(users_view.c.legacy_key)
                                                   .where(users_view.c.deleted.is_(False)))}
    missing = sorted(wanted - held)
    return Check("the read model holds every live legacy user", f"{len(wanted) - len(missing):,} of {len(wanted):,}"
                 + (f" (missing: {', '.join(missing[:5])})" if missing else ""), not missing)


def final_report(verify_doc: dict[str, Any], archive: Path, es: Engine, live_keys: Iterable[int],
                 server_errors: list[str]) -> FinalReport:
    """Returns the final report of the walk (see the module's docstring)."""
    counts = ", ".join(f"{k} {v}" for k, v in verify_doc["counts"].items() if v) or "no mismatch"
    checks = [Check(f"verify --full before the decommission (run {verify_doc.get('id', '-')})", counts,
                    bool(verify_doc["clean"])),
              *archive_checks(archive),
              live_users_check(es, live_keys),
              Check("no 5xx answer seen by the legacy app's users",
                    f"{len(server_errors)}" + (f" (first: {server_errors[0]})" if server_errors else ""),
                    not server_errors)]
    return FinalReport(tuple(checks))
