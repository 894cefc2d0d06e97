"""The "Altibase" page the way a newcomer meets it: ``make ui``, sign in, the "Altibase" entry of the
navigation, the pair read from the simulator's servers in the UI's frame — and the same page refused to
a browser that has not signed in. Screenshots go to artifacts/browser/ (altibase_*.png)."""

from __future__ import annotations

import json

import pytest

from tests.browser.test_altibase_replicated_ddl_ui import shot, sign_in, visit

pytestmark = pytest.mark.browser


def test_the_altibase_page_shows_the_pairs_after_sign_in_and_is_refused_before(newcomer, browser_page):
    ui, _sim = newcomer
    page = browser_page
    # a browser without an Airflow login: both the page and its JSON are refused
    for path in ("/altibase/", "/altibase/api/pairs"):
        response = page.request.get(f"{ui.url}{path}")
        assert response.status in (401, 403), (path, response.status)
        assert "pair1" not in response.text()
    sign_in(page, ui)
    visit(page, f"{ui.url}/")
    page.locator('a[href$="plugin/altibase"]').first.click()  # the navigation's "Altibase" entry
    page.wait_for_url(f"{ui.url}/plugin/altibase")
    frame = page.frame_locator("iframe").first
    section = frame.locator("#pair-pair1")
    section.wait_for(timeout=60_000)
    rows = section.locator("tr")
    assert "node1" in rows.nth(1).inner_text() and "active" in rows.nth(1).inner_text()
    assert "reachable" in rows.nth(1).inner_text() and "RUN, gap" in rows.nth(1).inner_text()
    assert "node2" in rows.nth(2).inner_text() and "standby" in rows.nth(2).inner_text()
    assert "Lock: free" in section.inner_text()
    shot(page, "altibase_page")
    # the JSON with the browser's session
    response = page.request.get(f"{ui.url}/altibase/api/pairs")
    assert response.status == 200
    pair = next(p for p in json.loads(response.text())["pairs"] if p["name"] == "pair1")
    assert [(s["name"], s["reachable"]) for s in pair["servers"]] == [("node1", True), ("node2", True)]
