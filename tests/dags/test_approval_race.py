"""An approval answered the moment it appears, under a real scheduler (LocalExecutor, separate
api-server, scheduler, dag-processor and triggerer on SQLite), never fails its task.

Airflow 3.3.2 fails a task resumed before the scheduler has processed the exit of the process that
parked it (apache/airflow#71580, #72716): "finished with state success, but the task instance's state
attribute is queued" — 5 of 20 such runs failed so with HITLOperator's own park. ``ServiceControlOperator``
asks, then steps aside rescheduled (an answer is only recorded), and collects the answer through a
trigger that reads no sooner than a margin after its deferral (``APPROVAL_FIRST_LOOK_SECONDS``). Here
a program answers each request through the REST API as soon as it can read it — faster than any
person — for five runs at once.
"""

from __future__ import annotations

import time
import urllib.error
from urllib.parse import quote

from scripts.local_airflow import AirflowUI, airflow_env, free_port

DAG_ID = "approval_race"
RUNS = 5  # 20, ten at a time, when the margins were measured; five at once keep the suite's budget
DAG_FILE = f'''
import pendulum
from airflow.sdk import DAG

from altibase_ops.service.operator import ServiceControlOperator

with DAG("{DAG_ID}", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False,
         max_active_runs=5, is_paused_upon_creation=False):
    ServiceControlOperator(task_id="O1_service_stop", step_id="O1", action="stop", control={{"mode": "manual"}},
                           server="node1", peer="node2")
'''


def hitl_path(run_id: str) -> str:
    return f"dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances/O1_service_stop/-1/hitlDetails"


def test_an_approval_answered_the_moment_it_appears_never_fails_the_task(tmp_path):
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / f"{DAG_ID}.py").write_text(DAG_FILE)
    home = tmp_path / "airflow"
    home.mkdir()
    ui = AirflowUI(home=home, port=free_port())
    env = airflow_env(home, ui.port)
    env["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags)
    try:
        ui.start(env)
        ui.wait_ready(DAG_ID)
        runs = [ui.api(f"dags/{DAG_ID}/dagRuns", {"dag_run_id": f"race_{n:02d}", "logical_date": None})["dag_run_id"]
                for n in range(RUNS)]
        answered: dict[str, float] = {}
        states: dict[str, str] = {}
        deadline = time.monotonic() + 600
        while len(states) < RUNS:
            assert time.monotonic() < deadline, f"runs not finished in time: answered {sorted(answered)}, {states}"
            ui.check_running()
            for run_id in runs:
                if run_id in states:
                    continue
                if run_id not in answered:
                    try:
                        ui.api(hitl_path(run_id))  # 404 until the task has written its request
                    except urllib.error.HTTPError as exc:
                        assert exc.code == 404, exc
                    else:
                        ui.api(hitl_path(run_id), {"chosen_options": ["Approve"], "params_input": {}}, method="PATCH")
                        answered[run_id] = time.monotonic()
                        continue
                state = ui.run_state(DAG_ID, run_id)
                if state in ("success", "failed"):
                    states[run_id] = state
            time.sleep(0.05)
        failed = {r: ui.failure_report(DAG_ID, r) for r, s in states.items() if s != "success"}
        assert not failed, failed
        assert sorted(answered) == sorted(runs)
        # every run asked, stepped aside, and collected the answer with one attempt
        for run_id in runs:
            folder = home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}" / "task_id=O1_service_stop"
            logs = sorted(p for p in folder.glob("attempt=*.log") if ".trigger." not in p.name)
            assert [p.name for p in logs] == ["attempt=1.log"], logs
            assert "the answer is collected from" in logs[0].read_text(), run_id
            # the wait's last reading, written by the trigger in the triggerer, where the UI shows it (XCom tab)
            progress = ui.api(f"dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances/O1_service_stop/"
                              "xcomEntries/progress")["value"]
            assert progress.startswith("approval of 'O1: stop the application service of node1': no answer yet · "
                                       "answered · "), progress
        mismatches = [line for line in ui.log("scheduler").read_text(errors="replace").splitlines()
                      if "state attribute is" in line]
        assert not mismatches, mismatches
    finally:
        leftovers = ui.stop()
        assert not leftovers, f"processes of this Airflow still running after stop: {leftovers}"
