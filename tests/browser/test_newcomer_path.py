"""The newcomer path past the DDL DAG's first run, in a real browser on ``make ui``: the Connections page
lists what ``make ui`` created, ``altibase_provision`` with the form's defaults plans and then builds a
pair, the pair joins the fleet without a restart (the DDL DAG's Pair list, the health DAG's pairs), a
DDL run changes it, and the maintenance DAG's form previews by default. Screenshots go to
artifacts/browser/ as newcomer_*.png.
"""

from __future__ import annotations

import re
import time
from urllib.parse import quote, unquote

import pytest

from scripts.local_airflow import ARTIFACTS
from tests.browser.pages import sign_in, visit

pytestmark = pytest.mark.browser

RUN_TIMEOUT = 300  # seconds per run: provisioning and a real DDL run each take one to two minutes on 2 CPUs


def shot(page, name: str) -> None:
    page.screenshot(path=ARTIFACTS / f"newcomer_{name}.png", full_page=True)
    print(f"{time.strftime('%H:%M:%S')} newcomer_{name}.png")


def trigger_from_form(page, ui, dag_id: str, screenshot: str, *, section: str, untick_dry_run: bool) -> str:
    """Trigger from the DAG's form, its Dry run (in ``section``) ticked by default, unticked if asked;
    returns the new run's id (the UI opens the run)."""
    visit(page, f"{ui.url}/dags/{dag_id}")
    page.get_by_role("button", name="Trigger Dag").click()
    form = page.get_by_role("dialog")
    dry_run = form.locator("input[name='element_dry_run']")
    switch = form.locator("label:has(input[name='element_dry_run'])")
    dry_run.wait_for(state="attached")  # a switch: its input is not what is drawn
    if not switch.is_visible():
        form.get_by_text(section, exact=True).first.click()  # open the section, as a person would
    switch.wait_for()
    assert dry_run.is_checked(), f"{dag_id}: Dry run must be ticked by default"
    if untick_dry_run:
        switch.click()
        assert not dry_run.is_checked()
    shot(page, screenshot)
    form.get_by_role("button", name="Trigger", exact=True).click()
    page.wait_for_url(re.compile(rf"/dags/{dag_id}/runs/[^/]+$"), timeout=90_000)
    return unquote(page.url.rsplit("/runs/", 1)[1])


def run_ends(ui, dag_id: str, run_id: str) -> str:
    deadline = time.monotonic() + RUN_TIMEOUT
    while (state := ui.run_state(dag_id, run_id)) not in ("success", "failed"):
        assert time.monotonic() < deadline, f"{dag_id} {run_id} still {state} after {RUN_TIMEOUT}s"
        time.sleep(2)
    return state


def succeeded(ui, dag_id: str, run_id: str) -> None:
    assert run_ends(ui, dag_id, run_id) == "success", ui.failure_report(dag_id, run_id)


def parsed_with(ui, dag_id: str, param: str, wanted) -> dict:
    """The DAG's params once the dag-processor parsed it again with the fleet's file as it is now."""
    deadline = time.monotonic() + 120  # make ui re-parses every 30 s
    while True:
        params = ui.api(f"dags/{dag_id}/details")["params"]
        if wanted(params[param]):
            return params
        assert time.monotonic() < deadline, f"{dag_id}'s {param} never showed the new pair: {params[param]}"
        time.sleep(2)


def test_a_newcomer_provisions_a_pair_with_the_defaults_changes_it_and_previews_maintenance(newcomer, browser_page):
    ui, sim = newcomer
    page = browser_page
    sign_in(page, ui)

    # the Connections make ui created are in the metadata database: the Connections page lists them
    visit(page, f"{ui.url}/connections")
    for conn_id in ("altibase_node1", "altibase_node2", "altibase_svc_node1", "altibase_svc_node2"):
        page.get_by_text(conn_id, exact=True).first.wait_for(timeout=60_000)
    shot(page, "01_connections")

    # provisioning with the form's defaults: a dry run (the plan), then for real
    planned = trigger_from_form(page, ui, "altibase_provision", "02_provision_form",
                                section="Run Parameters", untick_dry_run=False)
    succeeded(ui, "altibase_provision", planned)
    built = trigger_from_form(page, ui, "altibase_provision", "03_provision_form_real",
                              section="Run Parameters", untick_dry_run=True)
    succeeded(ui, "altibase_provision", built)
    visit(page, f"{ui.url}/dags/altibase_provision/runs/{quote(built, safe='')}")
    page.get_by_test_id("state-badge").filter(has_text="Success").first.wait_for(timeout=60_000)
    shot(page, "04_provisioned")
    assert {"altibase-node1", "altibase-node2"} <= {s["name"] for s in sim.servers()}

    # the new pair is in the fleet without a restart: the DDL DAG's Pair list and the health DAG's pairs
    parsed_with(ui, "altibase_replicated_ddl", "pair", lambda p: "altibase" in p["schema"]["enum"])
    health = parsed_with(ui, "altibase_replication_health", "pairs",
                         lambda p: "altibase" in [pair["name"] for pair in p["value"]])
    changed = ui.api("dags/altibase_replicated_ddl/dagRuns", {"dag_run_id": "newcomer_on_altibase", "logical_date": None,
                                                              "conf": {"pair": "altibase", "dry_run": False}})
    succeeded(ui, "altibase_replicated_ddl", changed["dag_run_id"])
    for server in ("altibase-node1", "altibase-node2"):
        with sim.connect(server, sysdba=True) as conn:
            assert conn.cursor().execute("SELECT COUNT(C3) FROM SYS.T1").fetchall() == [(0,)], server
    checked = ui.api("dags/altibase_replication_health/dagRuns", {"dag_run_id": "newcomer_health", "logical_date": None,
                                                                  "conf": {"stall_check_seconds": 0}})
    succeeded(ui, "altibase_replication_health", checked["dag_run_id"])
    tis = ui.api("dags/altibase_replication_health/dagRuns/newcomer_health/taskInstances?limit=100")
    labels = {ti["rendered_map_index"] for ti in tis["task_instances"] if ti["task_id"] == "check_server"}
    assert {"altibase/node1", "altibase/node2"} <= labels, (labels, health["pairs"])

    # maintenance: the form's defaults only plan
    preview = trigger_from_form(page, ui, "altibase_maintenance", "05_maintenance_form",
                                section="Rollout", untick_dry_run=False)
    succeeded(ui, "altibase_maintenance", preview)
    ddl_runs = ui.api("dags/altibase_replicated_ddl/dagRuns?limit=100")["dag_runs"]
    assert not [r for r in ddl_runs if r["dag_run_id"].endswith(f"__{preview}")]
