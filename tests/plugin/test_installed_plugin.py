"""The plugin reaches any pytest run through the installed distribution: its `pytest11` entry point is installed,
a project outside the repo (a temporary directory, no conftest) gets the fixtures, and the plugin and
`migrator.testing` import without hypothesis."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import PG_URL, require_postgres

ROOT = Path(__file__).resolve().parents[2]
ENTRY = ("migrator", "migrator.testing.plugin")

OUTSIDE_TEST = '''
from migrator.testing import create, update


def test_users_agree(migrator_world):
    migrator_world.compare([create(1, email="a@example.org", full_name="Ann", is_active=True, phone=None),
                            update(1, is_active=False)])


def test_the_relay_follows_the_legacy_writes(migrator_world):
    migrator_world.write([create(2, email="b@example.org", full_name="Bob", is_active=True, phone=None)])
    migrator_world.catch_up()
    assert migrator_world.mapping.replay(migrator_world.es.store.read_stream("user-2"))["name"] == "Bob"
'''


def test_pyproject_declares_the_entry_point():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["entry-points"]["pytest11"] == dict([ENTRY])


def test_the_installed_distribution_registers_the_plugin():
    found = {(ep.name, ep.value) for ep in importlib.metadata.entry_points(group="pytest11")}
    assert ENTRY in found, "the pytest11 entry point is not installed: reinstall the project (pip install -e .)"


@pytest.mark.parametrize("how", [["-p", "no:migrator", "-p", "migrator.testing.plugin"], []],
                         ids=["-p migrator.testing.plugin", "entry point"])
def test_a_project_outside_the_repo_gets_the_fixtures(how, tmp_path):
    if not how and ENTRY not in {(ep.name, ep.value) for ep in importlib.metadata.entry_points(group="pytest11")}:
        pytest.fail("the pytest11 entry point is not installed: reinstall the project (pip install -e .)")
    (tmp_path / "test_outside.py").write_text(OUTSIDE_TEST, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "MIGRATOR_TEST_POSTGRES_URL"} | {"PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *how, "test_outside.py"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout


@pytest.mark.postgres
def test_the_postgres_option_gives_fresh_databases_dropped_after(tmp_path):
    require_postgres()
    before = _plugin_databases()
    (tmp_path / "test_outside.py").write_text(OUTSIDE_TEST, encoding="utf-8")
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:migrator",
                           "-p", "migrator.testing.plugin", "--migrator-postgres", PG_URL, "test_outside.py"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout
    assert _plugin_databases() <= before  # each test's databases and the session's template are dropped


def _plugin_databases() -> set[str]:
    admin = create_engine(PG_URL)
    try:
        with admin.connect() as conn:
            return set(conn.execute(text("SELECT datname FROM pg_database WHERE datname LIKE 'migrator_%'")).scalars())
    finally:
        admin.dispose()


def test_the_plugin_imports_without_hypothesis():
    code = ("import sys; sys.modules['hypothesis'] = None\n"
            "import migrator.testing, migrator.testing.plugin\n"
            "try:\n    import migrator.testing.strategies\n"
            "except ImportError:\n    print('strategies need hypothesis')\n")
    done = subprocess.run([sys.executable, "-c", code], env=os.environ | {"PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "strategies need hypothesis"
