"""``altibase_replicated_ddl`` the way a DBA uses it: in the Airflow UI, in a real browser.

Sign in, open the DAG, trigger it from the parameter form — a dry run (the defaults), then a real run
against the simulator with manual service control — answer the two human-in-the-loop approvals (O1
stop the service, O9 resume it) while doing what the person would do to the application load, and
wait for each run's success in the grid. Screenshots go to artifacts/browser/.
"""

from __future__ import annotations

import re
import time
from urllib.parse import quote, unquote

import pytest

from altibase_sim.scenarios import seed_replicated_pair
from tests.browser.airflow_stack import ARTIFACTS

pytestmark = pytest.mark.browser

DAG_ID = "altibase_replicated_ddl"
VARIANT = "can_stop_active_standby"
RUN_TIMEOUT = 150


def shot(page, name: str) -> None:
    page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)


def sign_in(page, ui) -> None:
    page.goto(f"{ui.url}/")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(ui.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{ui.url}/")


def trigger(page, ui, screenshot: str, *, real_run: bool = False) -> str:
    """Trigger from the DAG page's parameter form; returns the new run's id."""
    page.goto(f"{ui.url}/dags/{DAG_ID}")
    page.get_by_role("button", name="Trigger Dag").click()
    form = page.get_by_role("dialog")
    form.get_by_text("Run Parameters").wait_for()
    if real_run:
        form.locator("input[name='element_dry_run']").uncheck(force=True)
        form.locator("input[name='element_poke_interval_seconds']").fill("0.5")
    shot(page, screenshot)
    form.get_by_role("button", name="Trigger", exact=True).click()
    page.wait_for_url(re.compile(rf"/dags/{DAG_ID}/runs/[^/]+$"))
    return unquote(page.url.rsplit("/runs/", 1)[1])


def test_explore(sim, airflow_ui, browser_page):
    seed_replicated_pair(sim, topology="active_standby")
    sim.load_start("node1", table="SYS.T1", interval=0.02)
    t0 = time.monotonic()
    airflow_ui.wait_ready(DAG_ID)
    print("ready after", time.monotonic() - t0)
    page = browser_page
    sign_in(page, airflow_ui)
    run_id = trigger(page, airflow_ui, "02_trigger_dry_run")
    print("run", run_id, time.monotonic() - t0)
    for _ in range(60):
        run = airflow_ui.api(f"dags/{DAG_ID}/dagRuns/{quote(run_id)}")
        if run["state"] in ("success", "failed"):
            break
        time.sleep(1)
    print("dry run", run["state"], time.monotonic() - t0)
    page.wait_for_timeout(3000)
    shot(page, "03_dry_run_done")
    open("/tmp/afx/dry_done.html", "w").write(page.content())
    run_id = trigger(page, airflow_ui, "04_trigger_real_run", real_run=True)
    print("run", run_id, time.monotonic() - t0)
    ti = f"{VARIANT}.O1_service_stop_on_active"
    for _ in range(120):
        st = airflow_ui.api(f"dags/{DAG_ID}/dagRuns/{quote(run_id)}/taskInstances/{ti}")["state"]
        run = airflow_ui.api(f"dags/{DAG_ID}/dagRuns/{quote(run_id)}")
        if st not in (None, "scheduled", "queued", "running") or run["state"] != "running":
            break
        time.sleep(1)
    print("O1", st, run["state"], time.monotonic() - t0)
    page.goto(f"{airflow_ui.url}/dags/{DAG_ID}/runs/{quote(run_id)}/tasks/{ti}")
    page.wait_for_timeout(3000)
    shot(page, "05_o1")
    open("/tmp/afx/o1.html", "w").write(page.content())
    page.goto(f"{airflow_ui.url}/required_actions")
    page.wait_for_timeout(3000)
    shot(page, "05_required")
    open("/tmp/afx/req.html", "w").write(page.content())
    raise AssertionError("explore")
