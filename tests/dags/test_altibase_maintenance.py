"""Scheduled maintenance under a real scheduler (LocalExecutor, the four components, SQLite) against
three simulator pairs, with notifications sent to a local SMTP server:

1. While the rollout below runs: a manual DDL run holds pair p4 (not in the fleet) while it waits for a
   person; a second run on p4 is refused naming the first; the person rejects; the pair is given back.
2. The maintenance DAG rolls two change files out to p1, p2 and p3: p1 as the canary, then p2 and p3 in
   two lanes side by side (their DDL runs overlap in time). Every change is applied once on every pair
   and recorded in each server's history.
3. A second maintenance run applies nothing; after a change file is edited, a third one reports it (red)
   and runs nothing.
4. The SMTP server received the four kinds of notification: started, approval (with the link to the
   Required Action), failed, succeeded (with the summary).

And, on two other pairs: a change that preflight refuses on the canary pair is recorded as failed with
preflight's own message, so the next window leaves it for a person and the other pair becomes the canary.
"""

from __future__ import annotations

import json
import logging
import re
import textwrap
import time
from datetime import UTC, datetime
from urllib.parse import quote

import pytest

from altibase_ops.ddl.preflight import PreflightError, preflight
from altibase_ops.ddl.request import DdlRequest
from altibase_ops.maintenance.changes import load_changes
from altibase_ops.pairs import validate_pairs
from altibase_sim.control import start_daemon, stop_daemon
from altibase_sim.scenarios import connection_uri, seed_replicated_pair
from scripts.local_airflow import AirflowUI, airflow_env, free_port
from tests.dags.ddl_harness import query
from tests.smtp_sink import SmtpSink

DDL = "altibase_replicated_ddl"
MAINTENANCE = "altibase_maintenance"
PAIRS = ("p1", "p2", "p3")
O1 = "can_stop_active_standby.O1_service_stop_on_active"
CHANGES = {
    "0001_add_c3": "ALTER TABLE SYS.T1 ADD COLUMN (C3 INTEGER)",
    "0002_index_c3": "CREATE INDEX SYS.T1_C3_IDX ON SYS.T1 (C3)",
}


def change_file(change_id: str, ddl: str) -> str:
    return textwrap.dedent(f"""\
        id: {change_id}
        approved_by: test (CHG-{change_id[:4]})
        pairs: all
        service_mode: can_stop
        tables: [SYS.T1]
        ddl: ["{ddl}"]
        """)


def fleet(state_dir: str, pairs: tuple[str, ...] = PAIRS) -> list[dict]:
    return [{"name": p, "replication_name": "REP1",
             "servers": [{"name": f"{p}a", "conn_id": f"altibase_{p}a", "role": "active"},
                         {"name": f"{p}b", "conn_id": f"altibase_{p}b", "role": "standby"}],
             "service_control": {"mode": "simulator", "state_dir": state_dir}} for p in pairs]


def when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def wait_for(ui: AirflowUI, what: str, check, timeout: float = 600):
    deadline = time.monotonic() + timeout
    while True:
        ui.check_running()
        if result := check():
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(1)


def run_to_end(ui: AirflowUI, dag_id: str, run_id: str, timeout: float = 600) -> str:
    return wait_for(ui, f"{dag_id} {run_id}", lambda: (s := ui.run_state(dag_id, run_id)) in ("success", "failed") and s,
                    timeout)


def ddl_runs(ui: AirflowUI) -> dict[str, dict]:
    return {r["dag_run_id"]: r for r in ui.api(f"dags/{DDL}/dagRuns?limit=100")["dag_runs"]}


def task_state(ui: AirflowUI, dag_id: str, run_id: str, task_id: str) -> str | None:
    return ui.api(f"dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}")["state"]


def task_log(ui: AirflowUI, dag_id: str, run_id: str, task_id: str) -> str:
    folder = ui.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
    return "\n".join(p.read_text(errors="replace") for p in sorted(folder.rglob("attempt=*.log")))


def test_maintenance_rolls_changes_out_to_a_fleet_with_a_canary_and_lanes_and_notifies(tmp_path):
    state_dir = tmp_path / "sim"
    sim = start_daemon(state_dir, [f"{p}{s}" for p in (*PAIRS, "p4") for s in "ab"])
    changes = tmp_path / "changes"
    changes.mkdir()
    for change_id, ddl in CHANGES.items():
        (changes / f"{change_id}.yaml").write_text(change_file(change_id, ddl))
    home = tmp_path / "airflow"
    home.mkdir()
    ui = AirflowUI(home=home, port=free_port())
    try:
        with SmtpSink() as smtp:
            for p in (*PAIRS, "p4"):
                seed_replicated_pair(sim, (f"{p}a", f"{p}b"))
            env = airflow_env(home, ui.port, sim)
            env.update({"ALTIBASE_PAIRS": json.dumps(fleet(str(state_dir))), "ALTIBASE_CHANGES_DIR": str(changes),
                        "ALTIBASE_MAINTENANCE_SCHEDULE": "none",
                        "ALTIBASE_NOTIFY_EMAIL": "dba@example.com", "AIRFLOW_CONN_SMTP_DEFAULT": smtp.connection()})
            ui.start(env)
            ui.wait_ready(MAINTENANCE)
            ui.wait_ready(DDL)
            for dag_id in (DDL, MAINTENANCE):  # the others (health) stay paused: no load beside the test
                ui.api(f"dags/{dag_id}", {"is_paused": False}, method="PATCH")

            # 2. the rollout: canary p1, then p2 and p3 side by side (checked below, once it ended)
            m1 = ui.api(f"dags/{MAINTENANCE}/dagRuns", {"dag_run_id": "window_1", "logical_date": None,
                                                         "conf": {"concurrency": 2, "canary_pairs": 1,
                                                                  "dry_run": False}})
            # 1. meanwhile, on p4 (not in the fleet): a run that waits for a person holds the pair; a second
            #    run on it is refused naming the first; the person rejects and the pair is given back
            p4 = {"servers": [{"name": "p4a", "conn_id": "altibase_p4a", "role": "active"},
                              {"name": "p4b", "conn_id": "altibase_p4b", "role": "standby"}],
                  "topology": "active_standby", "service_mode": "can_stop", "replication_name": "REP1",
                  "tables": ["SYS.T2"], "dry_run": False, "service_control": {"mode": "manual"}}
            ui.api(f"dags/{DDL}/dagRuns", {"dag_run_id": "manual_first", "logical_date": None,
                                          "conf": {**p4, "ddl": ["ALTER TABLE SYS.T2 ADD COLUMN (C9 INTEGER)"]}})
            wait_for(ui, "the first run to hold p4", lambda: task_state(ui, DDL, "manual_first", "hold_pair") == "success")
            ui.api(f"dags/{DDL}/dagRuns", {"dag_run_id": "manual_second", "logical_date": None,
                                          "conf": {**p4, "ddl": ["ALTER TABLE SYS.T2 ADD COLUMN (C8 INTEGER)"]}})
            assert run_to_end(ui, DDL, "manual_second") == "failed"
            assert "held by run 'manual_first'" in task_log(ui, DDL, "manual_second", "run_preflight")
            assert ui.run_state(DDL, "manual_first") == "running"
            hitl = f"dags/{DDL}/dagRuns/manual_first/taskInstances/{O1}/-1/hitlDetails"
            wait_for(ui, "the approval request", lambda: _exists(ui, hitl))
            # a person rejects — and rejects again should Airflow 3.3.2's race end the attempt from outside
            # and the step ask again (README, "Approvals"): the run must then end as rejected
            assert wait_for(ui, "manual_first to end rejected", lambda: _reject_open_request(ui, hitl)
                            or ((s := ui.run_state(DDL, "manual_first")) in ("success", "failed") and s)) == "failed"
            assert query(sim, "p4a", "SELECT COUNT(*) FROM SYS.AIRFLOW_DDL_LOCK") == [(0,)]  # given back

            state = run_to_end(ui, MAINTENANCE, m1["dag_run_id"], timeout=900)
            assert state == "success", ui.failure_report(MAINTENANCE, "window_1")
            runs = {rid: r for rid, r in ddl_runs(ui).items() if rid.startswith("maintenance__")}
            assert sorted(runs) == sorted(f"maintenance__{p}__{c}__window_1" for p in PAIRS for c in CHANGES)
            assert {r["state"] for r in runs.values()} == {"success"}
            span = {rid: (when(r["start_date"]), when(r["end_date"])) for rid, r in runs.items()}
            canary_end = max(end for rid, (_, end) in span.items() if "__p1__" in rid)
            assert all(start >= canary_end for rid, (start, _) in span.items() if "__p1__" not in rid), span
            overlap = [(a, b) for a in span for b in span if "__p2__" in a and "__p3__" in b
                       and span[a][0] < span[b][1] and span[b][0] < span[a][1]]
            assert overlap, f"the two lanes' DDL runs never overlapped: {span}"
            for p in PAIRS:
                for server in (f"{p}a", f"{p}b"):
                    assert ("C3",) in query(sim, server, "SELECT c.COLUMN_NAME FROM SYSTEM_.SYS_COLUMNS_ c, "
                                                        "SYSTEM_.SYS_TABLES_ t WHERE c.TABLE_ID = t.TABLE_ID AND "
                                                        "t.TABLE_NAME = 'T1'"), server
                    history = query(sim, server, "SELECT CHANGE_ID, OUTCOME, RUN_ID FROM SYS.AIRFLOW_CHANGE_HISTORY "
                                                "WHERE REPLICATION_NAME = 'REP1'")
                    mine = sorted((c, o, r) for c, o, r in history if not c.startswith("manual-"))
                    assert mine == sorted((c, "applied", f"maintenance__{p}__{c}__window_1") for c in CHANGES), server

            # 3. nothing twice; an edited file is reported, not re-run
            ui.api(f"dags/{MAINTENANCE}/dagRuns", {"dag_run_id": "window_2", "logical_date": None,
                                                    "conf": {"dry_run": False}})
            assert run_to_end(ui, MAINTENANCE, "window_2") == "success", ui.failure_report(MAINTENANCE, "window_2")
            assert "0001_add_c3: applied, 0002_index_c3: applied" in task_log(ui, MAINTENANCE, "window_2", "plan")
            (changes / "0001_add_c3.yaml").write_text(change_file("0001_add_c3", "ALTER TABLE SYS.T1 ADD COLUMN (C3 BIGINT)"))
            ui.api(f"dags/{MAINTENANCE}/dagRuns", {"dag_run_id": "window_3", "logical_date": None,
                                                    "conf": {"dry_run": False}})
            assert run_to_end(ui, MAINTENANCE, "window_3") == "failed"
            report = task_log(ui, MAINTENANCE, "window_3", "report")
            assert all(f"{p}/0001_add_c3: edited" in report for p in PAIRS), report
            assert len([r for r in ddl_runs(ui) if r.startswith("maintenance__")]) == len(runs)

            # 4. the four kinds of notification
            mails = smtp.received()
            kinds = {kind: [m for m in mails if f"] {kind}:" in m.subject] for kind in
                     ("STARTED", "APPROVAL", "FAILED", "SUCCEEDED")}
            assert all(kinds.values()), [m.subject for m in mails]
            assert all(m.to == ["dba@example.com"] for m in mails)
            assert any("/required_actions" in m.body and "manual_first" in m.body for m in kinds["APPROVAL"])
            assert any("held by run 'manual_first'" in m.body or "Nothing was changed" in m.body
                       for m in kinds["FAILED"])
            assert any("time in admin mode per server" in m.body and "change 0001_add_c3" in m.subject
                       for m in kinds["SUCCEEDED"])
    finally:
        leftovers = ui.stop()
        stop_daemon(state_dir)
        assert not leftovers, f"processes of this Airflow still running after stop: {leftovers}"


def _reject_open_request(ui: AirflowUI, path: str) -> bool:
    """Reject the step's approval request if it is open (not answered yet); always False (keep waiting)."""
    import urllib.error

    try:
        detail = ui.api(path)
    except urllib.error.HTTPError as exc:
        assert exc.code == 404, exc
        return False
    if not detail.get("response_received"):
        try:
            ui.api(path, {"chosen_options": ["Reject"], "params_input": {}}, method="PATCH")
        except urllib.error.HTTPError as exc:  # answered meanwhile, or not open to answers yet: look again
            assert exc.code in (400, 409), exc
    return False


def _exists(ui: AirflowUI, path: str) -> bool:
    import urllib.error

    try:
        ui.api(path)
        return True
    except urllib.error.HTTPError as exc:
        assert exc.code == 404, exc
        return False


def test_a_change_refused_in_preflight_is_recorded_as_failed_and_left_for_a_person(tmp_path, monkeypatch):
    state_dir = tmp_path / "sim"
    sim = start_daemon(state_dir, ["p1a", "p1b", "p2a", "p2b"])
    changes = tmp_path / "changes"
    changes.mkdir()
    (changes / "0001_add_c3.yaml").write_text(change_file("0001_add_c3", CHANGES["0001_add_c3"]))
    home = tmp_path / "airflow"
    home.mkdir()
    ui = AirflowUI(home=home, port=free_port())
    try:
        # p1, the fleet's first pair, replicates SYS.T1 alone: preflight refuses any DDL on it (a replication
        # cannot lose its last table, ERR-6106F) until a person adds a table; p2 is a pair like any
        seed_replicated_pair(sim, ("p1a", "p1b"), tables=("SYS.T1",))
        seed_replicated_pair(sim, ("p2a", "p2b"))
        pairs = fleet(str(state_dir), ("p1", "p2"))
        env = airflow_env(home, ui.port, sim)
        env.update({"ALTIBASE_PAIRS": json.dumps(pairs), "ALTIBASE_CHANGES_DIR": str(changes),
                    "ALTIBASE_MAINTENANCE_SCHEDULE": "none"})
        ui.start(env)
        ui.wait_ready(MAINTENANCE)
        ui.wait_ready(DDL)
        for dag_id in (DDL, MAINTENANCE):
            ui.api(f"dags/{dag_id}", {"is_paused": False}, method="PATCH")
        # what preflight says of this change on p1, asked here, in the test's own process
        for server in sim.servers():
            monkeypatch.setenv(f"AIRFLOW_CONN_ALTIBASE_{server['name'].upper()}", connection_uri(server))
        p1 = validate_pairs(pairs)[0]
        (change,) = load_changes(changes, [p1])
        with pytest.raises(PreflightError) as refused:
            preflight(DdlRequest.from_params(change.ddl_params(p1)), logging.getLogger("test"))
        assert "would lose its last table" in str(refused.value)

        # window 1: p1 is the canary, and preflight refuses the change there
        conf = {"canary_pairs": 1, "concurrency": 1, "dry_run": False}
        ui.api(f"dags/{MAINTENANCE}/dagRuns", {"dag_run_id": "window_1", "logical_date": None, "conf": conf})
        assert run_to_end(ui, MAINTENANCE, "window_1") == "failed"
        history = ("SELECT CHANGE_ID, OUTCOME, RUN_ID, DAG_ID, REASON FROM SYS.AIRFLOW_CHANGE_HISTORY "
                   "WHERE REPLICATION_NAME = 'REP1'")
        for node in ("p1a", "p1b"):  # recorded on both servers, with preflight's own message
            assert query(sim, node, history) == [("0001_add_c3", "failed", "window_1", MAINTENANCE,
                                                  str(refused.value))], node
        assert ddl_runs(ui) == {}  # refused before any DDL run; the rollout stopped, so p2 was not started
        assert "p1/0001_add_c3: refused, recorded failed: preflight found problems" in task_log(
            ui, MAINTENANCE, "window_1", "report")

        # window 2: p1's change waits for a person; p2 is the canary and gets the change
        ui.api(f"dags/{MAINTENANCE}/dagRuns", {"dag_run_id": "window_2", "logical_date": None, "conf": conf})
        assert run_to_end(ui, MAINTENANCE, "window_2") == "failed"  # red: p1 still needs a person
        assert re.search(r"p1 +0001_add_c3: failed", task_log(ui, MAINTENANCE, "window_2", "plan"))
        assert "p1/0001_add_c3: failed" in task_log(ui, MAINTENANCE, "window_2", "report")
        canary_run = "maintenance__p2__0001_add_c3__window_2"
        assert {rid: r["state"] for rid, r in ddl_runs(ui).items()} == {canary_run: "success"}
        assert f"triggering DDL run {canary_run}" in task_log(ui, MAINTENANCE, "window_2", "canary")
        for node in ("p2a", "p2b"):
            assert query(sim, node, "SELECT CHANGE_ID, OUTCOME, RUN_ID FROM SYS.AIRFLOW_CHANGE_HISTORY") == [
                ("0001_add_c3", "applied", canary_run)], node
        for node in ("p1a", "p1b"):  # p1 untouched since: the same one row, no C3
            assert len(query(sim, node, history)) == 1, node
            assert ("C3",) not in query(sim, node, "SELECT c.COLUMN_NAME FROM SYSTEM_.SYS_COLUMNS_ c, "
                                                   "SYSTEM_.SYS_TABLES_ t WHERE c.TABLE_ID = t.TABLE_ID AND "
                                                   "t.TABLE_NAME = 'T1'"), node
    finally:
        leftovers = ui.stop()
        stop_daemon(state_dir)
        assert not leftovers, f"processes of this Airflow still running after stop: {leftovers}"


def test_a_manual_trigger_with_the_form_defaults_only_plans_and_the_scheduled_run_applies(tmp_path):
    state_dir = tmp_path / "sim"
    sim = start_daemon(state_dir, ["p1a", "p1b"])
    changes = tmp_path / "changes"
    changes.mkdir()
    (changes / "0001_add_c3.yaml").write_text(change_file("0001_add_c3", CHANGES["0001_add_c3"]))
    home = tmp_path / "airflow"
    home.mkdir()
    ui = AirflowUI(home=home, port=free_port())
    try:
        seed_replicated_pair(sim, ("p1a", "p1b"))
        env = airflow_env(home, ui.port, sim)
        # daily at this minute, catchup off: the scheduler opens today's window (open for 120 min) once, as
        # soon as the DAG is unpaused; the next one is tomorrow's
        now = datetime.now(UTC)
        env.update({"ALTIBASE_PAIRS": json.dumps(fleet(str(state_dir), ("p1",))), "ALTIBASE_CHANGES_DIR": str(changes),
                    "ALTIBASE_MAINTENANCE_SCHEDULE": f"{now.minute} {now.hour} * * *"})
        ui.start(env)
        ui.wait_ready(MAINTENANCE)
        ui.wait_ready(DDL)
        for dag_id in (DDL, MAINTENANCE):
            ui.api(f"dags/{dag_id}", {"is_paused": False}, method="PATCH")

        def scheduled_run() -> str | None:
            runs = ui.api(f"dags/{MAINTENANCE}/dagRuns?limit=20")["dag_runs"]
            return next((r["dag_run_id"] for r in runs if r["run_type"] == "scheduled"), None)

        # the scheduled run takes the params' defaults (dry_run ticked) and applies
        scheduled = wait_for(ui, "the scheduled maintenance run", scheduled_run, timeout=180)
        assert run_to_end(ui, MAINTENANCE, scheduled) == "success", ui.failure_report(MAINTENANCE, scheduled)
        assert ddl_runs(ui)[f"maintenance__p1__0001_add_c3__{scheduled}"]["state"] == "success"
        for node in ("p1a", "p1b"):
            assert query(sim, node, "SELECT COUNT(C3) FROM SYS.T1") == [(0,)], node

        # a new change; a person presses Trigger and keeps the form's defaults (the REST API's empty conf)
        (changes / "0002_index_c3.yaml").write_text(change_file("0002_index_c3", CHANGES["0002_index_c3"]))
        ui.api(f"dags/{MAINTENANCE}/dagRuns", {"dag_run_id": "pressed_trigger", "logical_date": None, "conf": {}})
        assert run_to_end(ui, MAINTENANCE, "pressed_trigger") == "success", \
            ui.failure_report(MAINTENANCE, "pressed_trigger")
        plan = task_log(ui, MAINTENANCE, "pressed_trigger", "plan")
        assert "0001_add_c3: applied, 0002_index_c3: pending" in plan and "nothing is triggered" in plan, plan
        assert not [r for r in ddl_runs(ui) if r.endswith("__pressed_trigger")]
        for node in ("p1a", "p1b"):  # the preview changed nothing
            assert query(sim, node, "SELECT COUNT(*) FROM SYSTEM_.SYS_INDICES_ WHERE INDEX_NAME = 'T1_C3_IDX'") \
                == [(0,)], node
    finally:
        leftovers = ui.stop()
        stop_daemon(state_dir)
        assert not leftovers, f"processes of this Airflow still running after stop: {leftovers}"
