"""The import contracts in pyproject.toml ([tool.importlinter]) hold: the layers of docs/architecture.md."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def test_the_import_contracts_are_kept():
    assert LINT_IMPORTS.exists(), f"{LINT_IMPORTS} missing: install the test extra (import-linter)"
    out = subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


def test_a_broken_contract_fails_the_check(tmp_path: Path):
    """The probe is not vacuous: a contract the code breaks (the projections importing the store) is reported."""
    config = tmp_path / "contracts.toml"
    config.write_text(
        '[tool.importlinter]\nroot_packages = ["es_app"]\n\n'
        '[[tool.importlinter.contracts]]\nname = "projections must not import the store (false on purpose)"\n'
        'type = "forbidden"\nsource_modules = ["es_app.projections"]\nforbidden_modules = ["es_app.store"]\n'
    )
    out = subprocess.run([str(LINT_IMPORTS), "--no-cache", "--config", str(config)], cwd=ROOT,
                         capture_output=True, text=True, timeout=240)
    assert out.returncode != 0
    assert "BROKEN" in out.stdout
