"""`migrator serve es` in a real uvicorn process (embedded mode), and the CLI's start-up errors."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx

from es_app.settings import get_settings
from migrator.cli import main
from migrator.topology import free_port

MIGRATOR = os.path.join(os.path.dirname(sys.executable), "migrator")


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("BROKER_URL", "ES_DATABASE_URL")}


def test_serve_es_embedded_commands_and_read_your_writes(tmp_path):
    url, port = f"sqlite:///{tmp_path / 'es.db'}", free_port()
    assert main(["init", "--es-url", url, "--legacy-url", f"sqlite:///{tmp_path / 'legacy.db'}"]) == 0
    env = {k: v for k, v in _env().items() if k != "ADMIN_TOKEN"} | {"MAX_REQUEST_BODY_BYTES": "1000"}
    proc = subprocess.Popen([MIGRATOR, "serve", "es", "--port", str(port), "--log-level", "warning", "--es-url", url],
                            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60  # start-up wait, not an assertion on speed
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.stdout else ""
            time.sleep(0.1)
        created = httpx.post(f"{base}/users", json={"name": "Sarah Connor", "email": "sarah@example.org"}).json()
        renamed = httpx.patch(f"{base}/users/{created['id']}", json={"name": "Sarah Reese"}).json()
        view = httpx.get(f"{base}/users/{created['id']}", params={"min_position": renamed["position"]}).json()
        assert view["name"] == "Sarah Reese" and view["read_model"]["stale"] is False
        assert httpx.get(f"{base}/health").json()["mode"] == "embedded"
        assert "Swagger UI" in httpx.get(f"{base}/docs").text
        # no ADMIN_TOKEN: admin routes are off and say so; a body over the cap is 413, chunked too
        off = httpx.get(f"{base}/events", headers={"Authorization": "Bearer change-me"})
        assert off.status_code == 403 and "set ADMIN_TOKEN" in off.json()["detail"]
        big = b'{"name": "' + b"x" * 5000 + b'", "email": "big@example.org"}'
        for content in (big, iter([big[i:i + 500] for i in range(0, len(big), 500)])):
            r = httpx.post(f"{base}/users", content=content, headers={"Content-Type": "application/json"})
            assert r.status_code == 413 and "1000 bytes" in r.json()["detail"]
        assert httpx.get(f"{base}/health").status_code == 200  # and the server serves on
    finally:
        proc.terminate()
        proc.wait(20)


def test_serve_and_topology_errors_are_one_line(tmp_path, capsys, monkeypatch):
    fresh = f"sqlite:///{tmp_path / 'empty.db'}"
    assert main(["serve", "es", "--es-url", fresh]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "migrator init" in err and len(err.splitlines()) == 1
    assert main(["serve", "es", "--port", "70000"]) == 2
    capsys.readouterr()
    assert main(["topology", "list", "--compose-file", str(tmp_path / "nope.yml")]) == 1
    assert "no compose file" in capsys.readouterr().err
    monkeypatch.delenv("BROKER_URL", raising=False)
    get_settings.cache_clear()
    try:
        assert main(["topology", "up", "--es-url", fresh]) == 1
    finally:
        get_settings.cache_clear()
    err = capsys.readouterr().err.strip()
    assert "BROKER_URL" in err and len(err.splitlines()) == 1
