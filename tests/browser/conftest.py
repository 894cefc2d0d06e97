"""Fixtures of the browser tests.

``newcomer``: ``make ui``'s Airflow and simulator (started and stopped as a newcomer does). ``browser_page``: a page of Debian's Chromium driven by Playwright (no browser is ever
downloaded) with a fresh profile; when the test fails, its last screen is saved as failure.png.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from altibase_sim.control import SimulatorControl, daemon_info
from scripts.local_airflow import ARTIFACTS, ROOT, AirflowUI, free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def newcomer(tmp_path) -> Iterator[tuple[AirflowUI, SimulatorControl]]:
    """What a newcomer gets from ``make ui`` (``scripts/ui.py start``, in its own folder here): the URL on a
    line of its own, a running Airflow and the simulator's pair. Afterwards ``make ui-stop``
    (``scripts/ui.py stop``) must leave no process of it behind."""
    env = {**os.environ, "ALTIBASE_UI_DIR": str(tmp_path / "ui")}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    started = subprocess.run([sys.executable, str(ROOT / "scripts" / "ui.py"), "start", "--port", str(free_port())],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    (ARTIFACTS / "00_make_ui.txt").write_text(started.stdout + started.stderr)
    state_file = tmp_path / "ui" / "ui.json"
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        urls = [line for line in started.stdout.splitlines() if line.startswith("http://")]
        state = json.loads(state_file.read_text())
        assert urls == [state["url"]], started.stdout
        assert "Login: admin / admin" in started.stdout and "load stop" in started.stdout
        yield AirflowUI(home=Path(state["home"]), port=state["port"], password=state["password"]), \
            SimulatorControl(state["sim"])
    finally:
        home = json.loads(state_file.read_text())["home"] if state_file.exists() else None
        stopped = subprocess.run([sys.executable, str(ROOT / "scripts" / "ui.py"), "stop"], cwd=ROOT, env=env,
                                 capture_output=True, text=True, timeout=120)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        if home:
            assert not AirflowUI(home=Path(home), port=0).leftovers(), "make ui-stop left processes behind"
        assert daemon_info(tmp_path / "ui" / "sim") is None, "make ui-stop left the simulator running"


@pytest.fixture
def browser_page(newcomer, request) -> Iterator:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "failure.png").unlink(missing_ok=True)
    with sync_playwright() as playwright, tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        # launch_persistent_context is Playwright's way to give Chromium its --user-data-dir
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
            viewport={"width": 1600, "height": 1000})
        context.set_default_timeout(30_000)
        page = context.pages[0] if context.pages else context.new_page()
        try:
            yield page
        finally:
            report = getattr(request.node, "rep_call", None)
            if report is None or report.failed:
                page.screenshot(path=ARTIFACTS / "failure.png", full_page=True)
            context.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
