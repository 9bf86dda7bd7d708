"""`migrator demo` walks a live legacy database through every phase, side by side, and ends with a clean
final report; a difference the report finds makes it exit non-zero."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from migrator.demo.walk import PHASES

# the subprocess imports this checkout's packages
ENV = {"PATH": "/usr/bin:/bin", "COLUMNS": "200", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}


def run_demo(tmp_path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "migrator", "demo", *argv], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env=ENV)


def test_demo_walks_every_phase_in_order_and_ends_clean(tmp_path):
    proc = run_demo(tmp_path, "--users", "200", "--batch-size", "40", "--step")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    headers = re.findall(r"phase (\d)/9 · ([a-z ]+)", proc.stdout)
    assert [name.strip() for _, name in headers] == list(PHASES)
    assert "--step: stdin is not a terminal" in proc.stdout
    for seen in ("reads --mode new --percent 10", "reads --mode new --percent 50", "UserCorrected",
                 "compared", "mismatched", "lagged", "final consistency report", "ok: every phase walked"):
        assert seen in proc.stdout, seen
    assert "DIFFERS" not in proc.stdout
    demo_dir = tmp_path / "var" / "demo"
    manifest = json.loads((demo_dir / "archive" / "manifest.json").read_text())
    assert manifest["tables"][0]["rows"] >= 200
    listed = subprocess.run([sys.executable, "-m", "migrator", "--es-url", f"sqlite:///{demo_dir / 'es.db'}",
                             "--legacy-url", f"sqlite:///{demo_dir / 'legacy.db'}", "verify", "--list",
                             "--format", "json"], cwd=tmp_path, capture_output=True, text=True, timeout=120, env=ENV)
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)
    assert runs and all(run["clean"] for run in runs)


@pytest.mark.parametrize("users", ["0", "9", "abc", "2000000"])
def test_demo_refuses_a_bad_number_of_users(tmp_path, users):
    proc = run_demo(tmp_path, "--users", users)
    assert proc.returncode == 2
    assert proc.stdout == "" and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith("error:") and "--users" in proc.stderr
    assert not (tmp_path / "var").exists()


def test_demo_refuses_a_postgres_url_that_is_not_one(tmp_path):
    proc = run_demo(tmp_path, "--servers", "--postgres-url", "sqlite:///x.db")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("error:") and "is not a PostgreSQL URL" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_demo_refuses_other_databases(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "migrator", "--es-url", f"sqlite:///{tmp_path}/x.db", "demo"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, env=ENV)
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("error: the demo always runs on fresh databases")


@pytest.mark.parametrize(("difference", "seen"), [("archive", "rows (manifest"), ("read_model", "missing: 2")])
def test_the_final_report_catches_a_difference(tmp_path, difference, seen):
    proc = subprocess.run([sys.executable, str(Path(__file__).with_name("demo_tampered.py")), difference],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, env=ENV)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr
    assert "DIFFERS" in proc.stdout and seen in proc.stdout
    assert proc.stderr.strip().splitlines()[-1].startswith("error: the final report found differences")


def test_demo_servers_walks_on_postgres_redis_and_celery_workers_it_stops(tmp_path):
    from tests.conftest import PG_URL, REDIS_URL, require_postgres, require_redis

    require_postgres()
    require_redis()
    proc = subprocess.Popen([sys.executable, "-m", "migrator", "demo", "--servers", "--users", "100", "--postgres-url",
                             PG_URL, "--redis-url", REDIS_URL], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:] + err
    assert [name.strip() for name in re.findall(r"phase \d/9 · ([a-z ]+)", out)] == list(PHASES)
    assert "PostgreSQL + Redis + Celery workers" in out and "ok: every phase walked" in out
    logs = sorted((tmp_path / "var" / "demo" / "workers").glob("worker-*.log"))
    assert len(logs) == 2 and all(" ready." in log.read_text() for log in logs)
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert f"demo0-{proc.pid}@" not in ps and f"demo1-{proc.pid}@" not in ps  # the workers were stopped


@pytest.mark.mysql
def test_demo_from_mariadb_walks_every_phase_and_ends_clean(tmp_path):
    """`migrator demo --mysql-url`: the legacy database is a fresh `migrator_demo_legacy` on the MariaDB server."""
    from sqlalchemy import create_engine, text

    from migrator.cli.demo import LEGACY_DB
    from tests.conftest import MYSQL_URL, require_mysql

    require_mysql()
    server = MYSQL_URL.rpartition("/")[0] + "/"
    admin = create_engine(MYSQL_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:  # a previous demo's leftovers: the demo drops and creates it again
            conn.execute(text(f"CREATE DATABASE IF NOT EXISTS `{LEGACY_DB}`"))
            conn.execute(text(f"CREATE TABLE IF NOT EXISTS `{LEGACY_DB}`.leftover (id INT)"))
        proc = run_demo(tmp_path, "--users", "150", "--batch-size", "40", "--mysql-url", server)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
        assert "Traceback" not in proc.stdout + proc.stderr and "DIFFERS" not in proc.stdout
        assert [name.strip() for name in re.findall(r"phase \d/9 · ([a-z ]+)", proc.stdout)] == list(PHASES)
        for seen in ("legacy on MySQL/MariaDB", "UserCorrected", "final consistency report", "ok: every phase walked",
                     f"database {LEGACY_DB} (MySQL/MariaDB"):
            assert seen in proc.stdout.replace("\n", " "), seen
        manifest = json.loads((tmp_path / "var" / "demo" / "archive" / "manifest.json").read_text())
        assert manifest["tables"][0]["rows"] >= 150
        with admin.connect() as conn:
            tables = set(conn.execute(text(f"SHOW TABLES FROM `{LEGACY_DB}`")).scalars())
            triggers = conn.execute(text("SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = "
                                         ":db"), {"db": LEGACY_DB}).scalar()
        assert not tables & {"users", "migrator_changelog", "leftover"} and triggers == 0  # decommissioned, fresh
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS `{LEGACY_DB}`"))
        admin.dispose()


@pytest.mark.mysql
def test_demo_servers_from_mariadb_keeps_the_event_store_on_postgres(tmp_path):
    from sqlalchemy import create_engine, text

    from migrator.cli.demo import LEGACY_DB
    from tests.conftest import MYSQL_URL, PG_URL, REDIS_URL, require_mysql, require_postgres, require_redis

    require_mysql()
    require_postgres()
    require_redis()
    try:
        proc = run_demo(tmp_path, "--servers", "--users", "100", "--postgres-url", PG_URL, "--redis-url", REDIS_URL,
                        "--mysql-url", MYSQL_URL)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
        out = proc.stdout.replace("\n", " ")
        assert [name.strip() for name in re.findall(r"phase \d/9 · ([a-z ]+)", proc.stdout)] == list(PHASES)
        assert "ok: every phase walked" in out and "database migrator_demo_es (PostgreSQL)" in out
        assert f"database {LEGACY_DB} (MySQL/MariaDB" in out
    finally:
        admin = create_engine(MYSQL_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS `{LEGACY_DB}`"))
        admin.dispose()


def test_demo_refuses_a_mysql_url_that_is_not_one(tmp_path):
    proc = run_demo(tmp_path, "--mysql-url", "postgresql://x@localhost/db")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("error:") and "is not a MySQL/MariaDB URL" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_demo_with_an_unreachable_mysql_server_is_one_line(tmp_path):
    proc = run_demo(tmp_path, "--users", "10", "--mysql-url", "mysql://root@127.0.0.1:1/")
    assert proc.returncode == 1 and "Traceback" not in proc.stdout + proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith("error: the MySQL/MariaDB server: (2003, ")
