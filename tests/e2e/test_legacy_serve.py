"""`migrator serve legacy`: the legacy CRUD API in a real uvicorn process, and its start-up errors."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

MIGRATOR = [os.path.join(os.path.dirname(sys.executable), "migrator")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "LEGACY_READ_MODE"}
    env.update(extra)
    return env


def test_serve_legacy_runs_the_crud_api(new_database_url):
    url, port = new_database_url("legacy"), _free_port()
    proc = subprocess.Popen([*MIGRATOR, "serve", "legacy", "--port", str(port), "--log-level", "warning",
                             "--legacy-url", url], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60  # start-up wait, not an assertion on speed
        while True:
            try:
                httpx.get(f"{base}/users", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.communicate()
                if time.monotonic() > deadline:
                    pytest.fail("migrator serve legacy did not start")
                time.sleep(0.2)
        created = httpx.post(f"{base}/users", json={"email": "srv@example.org", "full_name": "Served Ü"})
        assert created.status_code == 201
        uid = created.json()["id"]
        assert httpx.put(f"{base}/users/{uid}", json={"full_name": "Renamed"}).json()["full_name"] == "Renamed"
        assert httpx.get(f"{base}/users", params={"search": "renam"}).json()["total"] == 1
        assert httpx.delete(f"{base}/users/{uid}").status_code == 204
        assert httpx.get(f"{base}/users/{uid}").status_code == 404
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert f"legacy API on http://127.0.0.1:{port}" in out and "reads: legacy" in out


@pytest.mark.parametrize("case", ["missing", "empty", "read_mode"])
def test_serve_legacy_refuses_to_start_with_one_line(tmp_path, monkeypatch, capsys, case):
    from migrator.cli import main

    path = tmp_path / ("missing.db" if case == "missing" else "empty.db")
    if case != "missing":
        path.touch()
    monkeypatch.delenv("LEGACY_READ_MODE", raising=False)
    if case == "read_mode":
        monkeypatch.setenv("LEGACY_READ_MODE", "shadow")
    code = main(["serve", "legacy", "--port", str(_free_port()), "--legacy-url", f"sqlite:///{path}"])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1 and lines[0].startswith("error: "), lines
    expected = {"missing": "does not exist: run `migrator init`",
                "empty": "no `users` table: run `migrator init`",
                "read_mode": "read mode 'shadow' is not available yet"}[case]
    assert expected in lines[0]
    assert case != "missing" or not path.exists()
