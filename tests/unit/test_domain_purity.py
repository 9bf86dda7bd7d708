"""The domain package is pure Python: it imports no framework, only the standard library and itself."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import es_app.domain

DOMAIN_DIR = Path(es_app.domain.__file__).parent
FRAMEWORKS = ("sqlalchemy", "fastapi", "celery", "pydantic", "starlette", "alembic", "redis", "kombu")


def frameworks_loaded_by(module: str) -> list[str]:
    """Returns the frameworks found in sys.modules after importing `module` in a fresh interpreter."""
    code = (
        "import json, sys\n"
        f"import {module}\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({list(FRAMEWORKS)!r}))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_importing_the_domain_loads_no_framework():
    assert frameworks_loaded_by("es_app.domain") == []


def test_the_probe_sees_a_framework_when_one_is_imported():
    assert "sqlalchemy" in frameworks_loaded_by("es_app.store")


def _imports(path: Path) -> list[tuple[str, int]]:
    """Returns (module, relative level) of every import statement in a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, 0) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.module or "", node.level))
    return found


def test_domain_modules_import_only_the_standard_library_and_the_domain():
    files = sorted(DOMAIN_DIR.rglob("*.py"))
    assert len(files) >= 4
    foreign = [
        f"{path.name}: {module}"
        for path in files
        for module, level in _imports(path)
        if level == 0 and module.split(".")[0] not in sys.stdlib_module_names
        and module != "es_app.domain" and not module.startswith("es_app.domain.")
    ]
    assert foreign == []
