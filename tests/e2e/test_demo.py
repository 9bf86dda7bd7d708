"""`migrator demo` walks a live legacy database into the event store and verifies it clean."""

from __future__ import annotations

import json
import subprocess
import sys


def test_demo_migrates_a_live_legacy_database_with_no_difference(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "migrator", "demo", "--users", "300", "--batch-size", "40"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok: verify run 1 is clean" in proc.stdout
    demo_dir = tmp_path / "var" / "demo"
    listed = subprocess.run([sys.executable, "-m", "migrator", "--es-url", f"sqlite:///{demo_dir / 'es.db'}",
                             "--legacy-url", f"sqlite:///{demo_dir / 'legacy.db'}", "verify", "--list",
                             "--format", "json"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "COLUMNS": "200"})
    assert listed.returncode == 0, listed.stderr
    [run] = json.loads(listed.stdout)
    assert run["id"] == 1 and run["clean"] is True


def test_demo_refuses_other_databases(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "migrator", "--es-url", f"sqlite:///{tmp_path}/x.db", "demo"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "COLUMNS": "200"})
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("error: the demo always runs on fresh SQLite files")
