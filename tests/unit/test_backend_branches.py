"""Code outside the dialect adapter does not branch on the backend's name (docs/architecture.md).

The SQL that differs between backends lives in es_app/dialect; the store's backend modules
and its engine bootstrap pick a class or engine settings by backend, Alembic migrations
write their own DDL, and capture's trigger DDL, hook and origin marker still branch.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BRANCH = re.compile(r"is_sqlite|dialect\.name\s*[!=]=|dialect_name\s*[!=]=")
ALLOWED = ("es_app/dialect/", "es_app/store/sqlite.py", "es_app/store/postgres.py", "es_app/store/event_store.py",
           "es_app/store/engine.py", "es_app/migrations/versions/", "migrator/capture/backends/__init__.py")


def branches(root: Path) -> list[str]:
    """Returns `path:line: text` of each backend-name branch in es_app and migrator outside ALLOWED."""
    found = []
    for package in ("es_app", "migrator"):
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if rel.startswith(ALLOWED):
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if BRANCH.search(line):
                    found.append(f"{rel}:{number}: {line.strip()}")
    return found


def test_no_backend_branches_outside_the_dialect_adapter():
    assert branches(ROOT) == []


def test_a_branch_outside_the_adapter_is_found(tmp_path: Path):
    """The scan is not vacuous: a projection comparing the dialect's name, or calling is_sqlite, is reported."""
    (tmp_path / "es_app" / "projections").mkdir(parents=True)
    (tmp_path / "es_app" / "dialect").mkdir()
    (tmp_path / "migrator").mkdir()
    (tmp_path / "es_app" / "projections" / "x.py").write_text(
        'if conn.dialect.name != "postgresql":\n    pass\nok = is_sqlite(engine)\n', encoding="utf-8")
    (tmp_path / "es_app" / "dialect" / "y.py").write_text('name = bind.dialect.name == "sqlite"\n', encoding="utf-8")
    assert branches(tmp_path) == ['es_app/projections/x.py:1: if conn.dialect.name != "postgresql":',
                                  "es_app/projections/x.py:3: ok = is_sqlite(engine)"]
