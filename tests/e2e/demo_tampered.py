"""Runs `migrator demo` with a difference slipped in just before its final report (argv[1]: `archive` drops
the archive's last row, `read_model` deletes user 2 from the read model); exits with the demo's exit code."""

from __future__ import annotations

import gzip
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete

from es_app.projections.tables import users_view
from migrator.cli import main
from migrator.demo import walk

real = walk.final_report


def tampered(verify_doc: dict[str, Any], archive: Path, es: Engine, *rest: Any) -> Any:
    if sys.argv[1] == "archive":
        path = archive / "users.jsonl.gz"
        path.write_bytes(gzip.compress(b"\n".join(gzip.decompress(path.read_bytes()).splitlines()[:-1]) + b"\n"))
    else:
        with es.begin() as conn:
            conn.execute(delete(users_view).where(users_view.c.legacy_key == "2"))
    return real(verify_doc, archive, es, *rest)


walk.final_report = tampered  # type: ignore[assignment]
sys.exit(main(["demo", "--users", "50", "--batch-size", "20"]))
