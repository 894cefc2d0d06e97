"""Fixtures of the browser tests.

``airflow_ui``: a local Airflow (``airflow_stack``) whose Connections point at the ``sim`` fixture's
servers. ``browser_page``: a page of Debian's Chromium driven by Playwright (no browser is ever
downloaded) with a fresh profile; when the test fails, its last screen is saved as failure.png.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator

import pytest
from playwright.sync_api import sync_playwright

from scripts.local_airflow import ARTIFACTS, AirflowUI, airflow_env, free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def airflow_ui(sim, tmp_path) -> Iterator[AirflowUI]:
    home = tmp_path / "airflow"
    home.mkdir()
    ui = AirflowUI(home=home, port=free_port())
    try:
        ui.start(airflow_env(home, ui.port, sim))
        yield ui
    finally:
        leftovers = ui.stop()
        assert not leftovers, f"processes of this Airflow still running after stop: {leftovers}"


@pytest.fixture
def browser_page(airflow_ui, request) -> Iterator:
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
