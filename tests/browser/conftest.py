"""Fixtures of the browser tests.

``airflow_ui``: a local Airflow (see ``airflow_stack``) whose Connections point at the ``sim``
fixture's servers. ``browser_page``: a page of Debian's Chromium (Playwright drives it; no browser is
downloaded) with a fresh profile; when the test fails, its last screen is saved as failure.png.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import tempfile
from collections.abc import Iterator

import pytest

from tests.browser.airflow_stack import (
    ADMIN,
    ARTIFACTS,
    BIN,
    CHROMIUM,
    CHROMIUM_ARGS,
    COMPONENTS,
    AirflowUI,
    airflow_env,
    free_port,
)


@pytest.fixture
def airflow_ui(sim, tmp_path) -> Iterator[AirflowUI]:
    home = tmp_path / "airflow"
    home.mkdir()
    port = free_port()
    ui = AirflowUI(home=home, url=f"http://127.0.0.1:{port}", password=secrets.token_urlsafe(12))
    (home / "passwords.json").write_text(json.dumps({ADMIN: ui.password}))
    env = airflow_env(home, port, sim)
    subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True, timeout=120)
    try:
        for name in COMPONENTS:
            with open(ui.log(name), "wb") as log:
                ui.processes[name] = subprocess.Popen([str(BIN / "airflow"), name], env=env, cwd=home,
                                                      stdin=subprocess.DEVNULL, stdout=log,
                                                      stderr=subprocess.STDOUT, start_new_session=True)
        yield ui
    finally:
        ui.stop()


@pytest.fixture
def browser_page(airflow_ui, request) -> Iterator:
    """A Chromium page with a fresh profile; on failure its last screen is saved as failure.png."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright, tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
            viewport={"width": 1600, "height": 1000})
        context.set_default_timeout(20_000)
        page = context.pages[0] if context.pages else context.new_page()
        try:
            yield page
        finally:
            if getattr(request.node, "rep_call", None) is None or request.node.rep_call.failed:
                page.screenshot(path=ARTIFACTS / "failure.png", full_page=True)
            context.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
