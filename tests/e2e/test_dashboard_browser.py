"""The dashboard in a real browser: Debian's chromium, headless, driven by Playwright against
`migrator serve dashboard` in its own process — every page, the time-travel slider, a phase advance made
through the CLI appearing live, the phase actions with their confirmation. Screenshots are saved under the
test's artifacts directory (TEST_ARTIFACTS_DIR, else the test's tmp_path)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from es_app.bootstrap import engine_for
from migrator.cli import main
from migrator.topology import free_port
from tests.conftest import IN_CI
from tests.integration.dashboard_helpers import TOKEN, prepare

CHROMIUM = "/usr/bin/chromium"
MIGRATOR = os.path.join(os.path.dirname(sys.executable), "migrator")
WAIT_MS = 30_000  # how long the page may take to show a change (a bound, not a measure)


def require_chromium() -> None:
    """Skips the test without Debian's chromium; fails it instead when CI=true (`.ci/run` installs it)."""
    if not os.access(CHROMIUM, os.X_OK):
        message = f"{CHROMIUM} is missing (apt-get install chromium)"
        if IN_CI:
            pytest.fail(f"{message} (CI=true: the browser tests must run)")
        pytest.skip(message)


@pytest.fixture(autouse=True)
def _chromium() -> None:
    require_chromium()  # before any server starts


@pytest.fixture
def backend() -> str:
    return "sqlite"  # the server process and the test share one SQLite file


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    base = Path(os.environ["TEST_ARTIFACTS_DIR"]) if os.environ.get("TEST_ARTIFACTS_DIR") else tmp_path
    out = base / "dashboard-screenshots"
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture
def url(new_database_url) -> Iterator[str]:
    url = new_database_url("dash")
    prepare(url)
    yield url
    engine_for(url).dispose()


@pytest.fixture
def server(url: str, tmp_path: Path) -> Iterator[str]:
    """Returns the base URL of `migrator serve dashboard` on a free port, with the dashboard token set."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("BROKER_URL", "ES_DATABASE_URL", "LEGACY_DATABASE_URL")}
    env["DASHBOARD_TOKEN"] = TOKEN
    proc = subprocess.Popen([MIGRATOR, "serve", "dashboard", "--port", str(port), "--log-level", "warning",
                             "--es-url", url, "--legacy-url", url],
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
        yield base
    finally:
        proc.terminate()
        proc.wait(20)


@pytest.fixture
def page(server: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        context = browser.new_context(base_url=server, viewport={"width": 1200, "height": 900})
        context.set_default_timeout(WAIT_MS)
        yield context.new_page()
        browser.close()


def test_a_phase_advance_made_through_the_cli_appears_live(page, url, artifacts):
    from playwright.sync_api import expect

    page.goto("/")
    expect(page.locator("#phase")).to_have_text("dual_write")
    expect(page.locator("#timeline li.current")).to_contain_text("by ana")
    page.evaluate("window.notReloaded = true")
    assert main(["advance", "--actor", "cleo", "--es-url", url, "--legacy-url", url]) == 0
    expect(page.locator("#phase")).to_have_text("backfilled")
    expect(page.locator("#timeline li.current")).to_contain_text("by cleo")
    expect(page.locator("#history")).to_contain_text("advanced dual_write → backfilled")
    expect(page.locator("#guards")).to_contain_text("unmet verify_clean_recent")
    assert page.evaluate("window.notReloaded") is True  # the same page, updated in place
    expect(page.locator("#chart-lag")).to_have_attribute("points", re.compile(r"^\S+ \S+"))  # two samples or more
    page.screenshot(path=str(artifacts / "migration.png"), full_page=True)


def test_the_phase_actions_ask_for_confirmation_and_show_unmet_guards(page, url, artifacts):
    from playwright.sync_api import expect

    page.goto("/")
    page.fill("#token", TOKEN)
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("button[data-action=pause]")
    expect(page.locator("#action-result")).to_have_text("")  # dismissed: nothing sent
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button[data-action=advance]")
    expect(page.locator("#action-result")).to_have_text("advance: dual_write → backfilled; reads legacy, "
                                                        "writes legacy")
    expect(page.locator("#phase")).to_have_text("backfilled")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button[data-action=advance]")
    expect(page.locator("#action-result")).to_contain_text("advance refused (409): cannot advance to shadow_reads")
    expect(page.locator("#action-unmet li")).to_contain_text("verify_clean_recent: no clean verify run")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button[data-action=pause]")
    expect(page.locator("#paused")).to_have_text("paused: paused from the dashboard (by dashboard)")
    page.screenshot(path=str(artifacts / "actions.png"), full_page=True)
    page.fill("#token", "wrong")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button[data-action=resume]")
    expect(page.locator("#action-result")).to_contain_text("resume refused (403)")


def test_a_user_side_by_side_and_the_time_travel_slider(page, artifacts):
    from playwright.sync_api import expect

    page.goto("/users/3")
    expect(page.locator('tr[data-field="name"] td.read-model.differ')).to_have_text('"Wrong"')
    expect(page.locator('tr[data-field="name"] td.legacy')).to_have_text('"User 3"')
    expect(page.locator("td.differ")).to_have_count(1)
    page.screenshot(path=str(artifacts / "user.png"), full_page=True)

    page.goto("/users/1")
    page.click("#timeline-link")
    name = page.locator('#state tr[data-field="name"] td.value')
    expect(page.locator("#version-shown")).to_have_text("3")
    expect(name).to_have_text('"Ada Lovelace"')
    page.fill("#version", "1")
    expect(page.locator("#version-shown")).to_have_text("1")
    expect(name).to_have_text('"User 1"')
    expect(page.locator("#version-event")).to_contain_text("after event 1")
    page.fill("#version", "2")
    expect(name).to_have_text('"Ada"')
    expect(page.locator('#state tr[data-field="name"]')).to_have_class("changed")
    expect(page.locator('#events tr[data-version="2"]')).to_have_class("current")
    page.fill("#version", "0")
    expect(page.locator("#state-none")).to_be_visible()
    expect(name).to_have_text("")
    page.fill("#version", "2")
    page.screenshot(path=str(artifacts / "timeline.png"), full_page=True)


def test_the_verify_reports(page, url, artifacts):
    from playwright.sync_api import expect

    page.goto("/reports")
    expect(page.locator("#no-runs")).to_be_visible()
    main(["verify", "--full", "--es-url", url, "--legacy-url", url])  # user 3's read model differs: not clean
    page.reload()
    expect(page.locator("#runs td.unmet")).to_have_text("not clean")
    page.screenshot(path=str(artifacts / "reports.png"), full_page=True)
    page.click("#runs a")
    expect(page).to_have_url(re.compile(r"/reports/\d+$"))
    expect(page.locator("body")).to_contain_text("user-3")
    page.screenshot(path=str(artifacts / "report.png"), full_page=True)
