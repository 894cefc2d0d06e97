"""``altibase_replicated_ddl`` the way a newcomer meets it: ``make ui``, then the Airflow UI in a real browser.

``make ui`` (the ``newcomer`` fixture runs ``scripts/ui.py``) starts the simulator's pair and Airflow;
sign in, open the DAG, trigger it from the parameter form (in sections) with the defaults — a dry run —
and read its plan on the plan task's Rendered Templates tab; then a real run with manual service control:
answer the two human-in-the-loop approvals (O1 stop the service, O9 resume it) while doing to the
application load what ``make ui`` says to do, wait for the run's success in the grid, and find the
summary on the summary task's XCom tab. ``make ui-stop`` then leaves no process behind. Screenshots go to
artifacts/browser/ (numbered in the order a person sees them; failure.png when the test fails).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from urllib.parse import quote, unquote

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from altibase_sim.dbapi import ProgrammingError
from scripts.local_airflow import ARTIFACTS
from tests.browser.pages import sign_in, visit

pytestmark = pytest.mark.browser

DAG_ID = "altibase_replicated_ddl"
VARIANT = "can_stop_active_standby"
RUN_TIMEOUT = 180  # seconds per wait; a whole real run takes about two minutes on a busy 2-CPU machine
LOAD = {"table": "SYS.T1", "sessions": 2, "interval": 0.2}  # as scripts/ui.py starts it


def shot(page, name: str) -> None:
    page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)
    print(f"{time.strftime('%H:%M:%S')} {name}.png")  # the test's timeline, shown when it fails


def trigger(page, ui, screenshot: str, *, real_run: bool) -> str:
    """Trigger from the DAG page's parameter form; returns the new run's id (the UI opens the run)."""
    visit(page, f"{ui.url}/dags/{DAG_ID}")
    page.get_by_role("button", name="Trigger Dag").click()
    form = page.get_by_role("dialog")
    form.get_by_text("What", exact=True).first.click()  # the first section: what this run changes
    dry_run = form.locator("input[name='element_dry_run']")
    dry_run.wait_for(state="attached")  # a switch: its input is not what is drawn
    assert dry_run.is_checked(), "dry_run must default to true"
    for section in ("What", "Where", "How", "Safety"):  # the form in the order a DBA fills it in
        assert form.get_by_text(section, exact=True).count() >= 1, f"no section {section!r} in the form"
    if real_run:
        form.locator("label:has(input[name='element_dry_run'])").click()  # the switch, as a person clicks it
        assert not dry_run.is_checked()
        poke = form.locator("input[name='element_poke_interval_seconds']")
        if not poke.is_visible():
            form.get_by_text("Safety", exact=True).first.click()  # open the section, as a person would
        poke.fill("0.5")
    if not form.locator("#element_service_control_mode").is_visible():
        form.get_by_text("How", exact=True).first.click()  # open the section, as a person would
    # the empty choice says what it means, not "null"
    assert form.get_by_text("the pair's (else manual)").count() >= 1
    shot(page, screenshot)
    form.get_by_role("button", name="Trigger", exact=True).click()
    # the UI refreshes its queries, closes the form and opens the new run: slow on a busy machine
    page.wait_for_url(re.compile(rf"/dags/{DAG_ID}/runs/[^/]+$"), timeout=90_000)
    return unquote(page.url.rsplit("/runs/", 1)[1])


def fail_if_over(ui, run_id: str, deadline: float, waiting_for: str) -> None:
    state = ui.run_state(DAG_ID, run_id)
    if state == "failed":
        raise AssertionError(f"run {run_id} failed while waiting for {waiting_for}:\n"
                             f"{ui.failure_report(DAG_ID, run_id)}")
    if time.monotonic() > deadline:
        raise AssertionError(f"run {run_id} ({state}): no {waiting_for} within {RUN_TIMEOUT}s:\n"
                             f"{ui.failure_report(DAG_ID, run_id)}")


def wait_for_success_in_grid(page, ui, run_id: str) -> None:
    """On the DAG's page, hover the run's bar in the grid until its tooltip says ``State: Success``
    (and leave it shown for the screenshot)."""
    visit(page, f"{ui.url}/dags/{DAG_ID}")
    bar = page.locator(f'a[href="/dags/{DAG_ID}/runs/{run_id}/"]')
    tooltip = page.locator("div", has_text=f"Run ID: {run_id}").filter(has_text="State:").last
    deadline = time.monotonic() + RUN_TIMEOUT
    while True:
        bar.hover()
        if "State: Success" in tooltip.inner_text():
            return
        page.mouse.move(1, 1)
        fail_if_over(ui, run_id, deadline, "success in the grid")
        page.wait_for_timeout(2000)  # the grid refreshes itself while the run is active


def approve(page, ui, run_id: str, task_id: str, screenshot: str, person_does: Callable[[], object]) -> None:
    """On the task's page, wait for its Required Action tab, do what the question asks, then Approve the
    moment the button lets us (no wait for the scheduler). Should Airflow 3.3.2's race end the attempt
    anyway (apache/airflow#72716: an answer within a few seconds of the button enabling), the step's new
    attempt takes the answer already recorded, or — when the first attempt ended before it could record
    one — asks again, and a person answers again: the test does either, and says which."""
    task_page = f"{ui.url}/dags/{DAG_ID}/runs/{quote(run_id, safe='')}/tasks/{VARIANT}.{task_id}"
    ti_path = f"dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances/{VARIANT}.{task_id}"
    tab = page.get_by_role("link", name=re.compile(r"^Required Action"))
    deadline = time.monotonic() + RUN_TIMEOUT
    for attempt in range(1, 4):
        # the UI lets a person answer only while the step waits for it (deferred): until then its button
        # is disabled, and the page does not re-read the state by itself
        while (state := ui.api(ti_path)["state"]) not in ("deferred", "awaiting_input"):
            if attempt > 1 and state == "success":  # the new attempt took the answer already given
                print(f"{time.strftime('%H:%M:%S')} {task_id}: attempt {attempt} took the recorded answer")
                return
            fail_if_over(ui, run_id, deadline, f"the approval of {task_id}")
            time.sleep(0.5)
        button = page.get_by_role("button", name="Approve")
        while True:
            visit(page, task_page)  # the tab shows once the task asks
            try:
                tab.wait_for(timeout=10_000)
                tab.click()
                button.wait_for(timeout=10_000)
                for _ in range(20):  # the page may render before it has read the task's state
                    if button.is_enabled():
                        break
                    page.wait_for_timeout(250)
                if button.is_enabled():
                    break
            except PlaywrightTimeoutError:
                pass
            if attempt > 1 and ui.api(ti_path)["state"] == "success":  # answered already (see above)
                print(f"{time.strftime('%H:%M:%S')} {task_id}: attempt {attempt} took the recorded answer")
                return
            fail_if_over(ui, run_id, deadline, f"the approval of {task_id}")  # else reload, as a person would
        shot(page, screenshot if attempt == 1 else f"{screenshot}_asked_again_{attempt}")
        person_does()
        button.click()
        page.get_by_text("Response received").wait_for(timeout=60_000)
        while (ti := ui.api(ti_path))["state"] not in ("success", "failed", "up_for_retry") and ti["try_number"] == attempt:
            fail_if_over(ui, run_id, deadline, f"{task_id} to take the answer")
            time.sleep(1)
        if ti["state"] == "success" or ti["try_number"] == attempt and ti["state"] == "failed":
            return
        print(f"{time.strftime('%H:%M:%S')} {task_id}: attempt {attempt} was ended by Airflow; asked again")
    raise AssertionError(f"{task_id} asked three times")


def query(sim, server: str, sql: str) -> list[tuple]:
    with sim.connect(server, sysdba=True) as conn:
        return conn.cursor().execute(sql).fetchall()


def open_task_tab(page, ui, run_id: str, task_id: str, tab: str, expect: str, screenshot: str) -> None:
    """A task's tab (rendered_templates, xcom) on the run's page, until it shows ``expect``."""
    visit(page, f"{ui.url}/dags/{DAG_ID}/runs/{quote(run_id, safe='')}/tasks/{task_id}/{tab}")
    page.get_by_text(expect).first.wait_for(timeout=60_000)
    shot(page, screenshot)


def test_the_newcomer_path_make_ui_dry_run_plan_approvals_and_summary(newcomer, browser_page):
    ui, sim = newcomer  # `make ui`: the pair seeded as the DDL DAG expects, its load running, Airflow up
    page = browser_page

    sign_in(page, ui)
    visit(page, f"{ui.url}/dags/{DAG_ID}")
    page.get_by_role("button", name="Trigger Dag").wait_for()
    shot(page, "01_dag")

    dry_run = trigger(page, ui, "02_trigger_form_dry_run", real_run=False)
    wait_for_success_in_grid(page, ui, dry_run)
    shot(page, "03_dry_run_success_grid")
    # the plan, where the UI shows it without a log: the plan task's rendered `plan` field
    open_task_tab(page, ui, dry_run, "plan", "rendered_templates", "ALTER TABLE SYS.T1 ADD COLUMN (C3 INTEGER)",
                  "04_dry_run_plan")
    assert page.get_by_text("DRY RUN").count() >= 1
    with pytest.raises(ProgrammingError, match="31058"):  # a dry run changes nothing: no C3 yet
        query(sim, "node1", "SELECT C3 FROM SYS.T1 WHERE C1 = -1")

    def stop_as_told() -> None:  # the request says what "stop the application service" means here
        # the command as it can be pasted: with the state directory the worker uses
        assert page.get_by_text(f"ALTIBASE_SIM_STATE_DIR={sim.state_dir} altibase-sim load stop --server node1").count() >= 1
        sim.load_stop("node1")

    real_run = trigger(page, ui, "05_trigger_form_real_run", real_run=True)
    approve(page, ui, real_run, "O1_service_stop_on_active", "06_approval_O1_stop_service", stop_as_told)
    approve(page, ui, real_run, "O9_service_resume_on_active", "07_approval_O9_resume_service",
            lambda: sim.load_start("node1", **LOAD))
    wait_for_success_in_grid(page, ui, real_run)
    shot(page, "08_real_run_success_grid")
    page.locator(f'a[href="/dags/{DAG_ID}/runs/{real_run}/"]').click()  # the run, from its bar in the grid
    page.get_by_test_id("state-badge").filter(has_text="Success").first.wait_for()
    page.get_by_role("button", name="Show Graph (Press g)").click()
    page.get_by_role("button", name="Collapse Details Panel").click()  # the graph across the whole width
    page.get_by_text("choose_variant").first.wait_for()
    shot(page, "09_real_run_graph")
    # the summary: every statement per server with UTC times, time in admin mode, where the data stand
    open_task_tab(page, ui, real_run, "summary", "xcom", "return_value", "10_real_run_summary_xcom")

    summary = ui.api(f"dags/{DAG_ID}/dagRuns/{quote(real_run, safe='')}/taskInstances/summary/xcomEntries/"
                     "return_value?deserialize=true&stringify=false")["value"]
    assert "time in admin mode per server" in summary["text"] and summary["steps"], summary
    assert all(step["started"].endswith("Z") for step in summary["steps"])  # ISO 8601, UTC

    # the DDL is on both servers, and the rows of the load committed since the resume reach the standby
    sim.load_stop("node1")
    query(sim, "node1", "ALTER REPLICATION REP1 FLUSH ALL WAIT 30")
    for server in ("node1", "node2"):
        assert query(sim, server, "SELECT C3 FROM SYS.T1 WHERE C1 = -1") == [], server
        assert query(sim, server, "SELECT VALUE1 FROM V$PROPERTY WHERE NAME = 'ADMIN_MODE'") == [("0",)], server
    counts = {s: query(sim, s, "SELECT COUNT(*) FROM SYS.T1")[0][0] for s in ("node1", "node2")}
    assert counts["node1"] == counts["node2"] > 0, counts
