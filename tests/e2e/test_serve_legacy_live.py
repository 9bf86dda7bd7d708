"""`migrator serve legacy` with the event store at head: live routes in a real uvicorn process — `migrator reads`
reaches it without a restart, `/metrics` counts the reads by mode, and stopping it flushes the shadow counts."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from es_app.bootstrap import build
from es_app.settings import Settings
from migrator.cli import main
from migrator.phases import load

MIGRATOR = [os.path.join(os.path.dirname(sys.executable), "migrator")]
DEADLINE_S = 60.0  # a bound on waiting, not a speed assertion


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _metric(base: str, start: str) -> float:
    for line in httpx.get(f"{base}/metrics", timeout=5).text.splitlines():
        if line.startswith(start):
            return float(line.split()[-1])
    return 0.0


def test_serve_legacy_follows_the_reads_mode_live(new_database_url):
    url, port = new_database_url("live"), _free_port()
    urls = ["--es-url", url, "--legacy-url", url]
    assert main(["capture", "install", "--legacy-url", url]) == 0
    env = {k: v for k, v in os.environ.items() if k != "LEGACY_READ_MODE"}
    env.update(ROUTES_POLL_S="0.1", SHADOW_FLUSH_S="0.2", SHADOW_TIMEOUT_MS="30000")
    proc = subprocess.Popen([*MIGRATOR, "serve", "legacy", "--port", str(port), "--log-level", "warning", *urls],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + DEADLINE_S
        while True:
            try:
                httpx.get(f"{base}/users", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "migrator serve legacy did not start"
                time.sleep(0.2)
        uid = httpx.post(f"{base}/users", json={"email": "live@example.org", "full_name": "Live"}).json()["id"]
        assert main(["backfill", *urls]) == 0 and main(["relay", *urls]) == 0
        assert main(["projections", "run", "--es-url", url]) == 0
        assert main(["advance", "--to", "backfilled", "--force", "--reason", "e2e", "--actor", "t", *urls]) == 0
        assert main(["reads", "--mode", "shadow", "--actor", "t", *urls]) == 0
        key = 'legacy_api_reads_total{mode="shadow",served="legacy"}'
        while _metric(base, key) == 0:
            assert time.monotonic() < deadline + DEADLINE_S, "the running app did not pick up shadow reads"
            assert httpx.get(f"{base}/users/{uid}").json()["full_name"] == "Live"
            time.sleep(0.05)
        while _metric(base, 'legacy_api_shadow_reads_total{outcome="compared"}') == 0:
            assert time.monotonic() < deadline + 2 * DEADLINE_S, "no shadow read was compared"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert "live routes following migration users" in out and "reads: legacy" in out, (out, err)
    state = load(build(Settings(es_database_url=url)).store)
    assert state.reads == "shadow" and state.shadow_compared >= 1 and state.shadow_mismatched == 0


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_serve_legacy_without_an_event_store_schema_says_so(tmp_path, new_database_url):
    url, port = new_database_url("plain"), _free_port()
    es = f"sqlite:///{tmp_path / 'none.db'}"
    proc = subprocess.Popen([*MIGRATOR, "serve", "legacy", "--port", str(port), "--log-level", "warning",
                             "--legacy-url", url, "--es-url", es],
                            env={k: v for k, v in os.environ.items() if k != "LEGACY_READ_MODE"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base, deadline = f"http://127.0.0.1:{port}", time.monotonic() + DEADLINE_S
    try:
        while True:
            try:
                assert httpx.get(f"{base}/users", timeout=2).status_code == 200
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert httpx.get(f"{base}/metrics").status_code == 404
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert "reads: legacy; fixed routes: the es database" in out and "does not exist" in out
