"""Faults injected into altibase_replicated_ddl runs: each ends with the servers restored or a precise
operator message (never silently half-done), and a run after the fault is cleared completes."""

from __future__ import annotations

import pytest

from tests.dags.ddl_harness import assert_pair_healthy, columns, conf, prepare, query, run_dag, task_states

pytestmark = pytest.mark.e2e


def run_with_fault(sim, monkeypatch, topology: str, service_mode: str, server: str, statement: str, fault: str):
    """The seed's pair under load, a fault armed on ``server``'s next ``statement``, a run that fails."""
    prepare(sim, monkeypatch, topology)
    sim.fail_once(server, statement, fault)
    dagrun = run_dag(conf(sim, topology, service_mode))
    assert str(dagrun.state) == "failed"
    return dagrun


def failed_tasks(dagrun) -> list[str]:
    return sorted(t for t, s in task_states(dagrun).items() if s == "failed")


def assert_back_to_normal(sim, topology: str) -> None:
    """What a successful restore leaves: admin mode 0 everywhere, the tables in replication, the senders
    the topology needs running."""
    senders = ("node1", "node2") if topology == "active_active" else ("node1",)
    for node in ("node1", "node2"):
        assert query(sim, node, "SELECT VALUE1 FROM V$PROPERTY WHERE NAME = 'ADMIN_MODE'") == [("0",)]
        items = {r[0] for r in query(sim, node, "SELECT LOCAL_TABLE_NAME FROM SYSTEM_.SYS_REPL_ITEMS_")}
        assert items == {"T1", "T2"}, node
        assert bool(query(sim, node, "SELECT REP_NAME FROM V$REPSENDER")) == (node in senders), node


def test_sessions_that_never_drain_abort_before_admin_mode_and_the_service_comes_back(sim, monkeypatch, airflow_db):
    prepare(sim, monkeypatch, "active_standby")
    held = sim.hold_session("node1", client_info="forgotten batch job")
    dagrun = run_dag(conf(sim, "active_standby", "can_stop", sessions_timeout_seconds=2))
    assert str(dagrun.state) == "failed"
    # the block's opening wait fails before its O2: admin mode never went on
    assert failed_tasks(dagrun) == ["can_stop_active_standby.O1_O9_change_tables_on_both", "summary"]
    assert_back_to_normal(sim, "active_standby")
    assert any(load["running"] and load["server"] == "node1" for load in sim.load_status())  # service resumed
    assert columns(sim, "node1") == ["C1", "C2"]
    sim.release_session(held)
    assert str(run_dag(conf(sim, "active_standby", "can_stop")).state) == "success"
    assert_pair_healthy(sim, "active_standby", ["C1", "C2", "C3"])


def test_a_gap_that_does_not_drain_times_out_the_flush_and_restore_leaves_admin_mode_off(sim, monkeypatch, airflow_db):
    prepare(sim, monkeypatch, "active_active")
    sim.pause_sender("node2", "REP1")
    dagrun = run_dag(conf(sim, "active_active", "can_stop", flush_wait_seconds=1))
    assert str(dagrun.state) == "failed"
    # restore puts admin mode back, but does not resume the service onto a pair whose gap does not
    # drain (its data cannot be shown to agree): it fails saying so
    assert failed_tasks(dagrun) == ["can_stop_active_active.O1_O9_change_tables_on_both", "run_restore", "summary"]
    assert_back_to_normal(sim, "active_active")
    assert not any(load["running"] for load in sim.load_status())
    sim.resume_sender("node2", "REP1")
    # the failed run still holds the pair: a plain re-run is refused, recover=true takes it over
    refused = run_dag(conf(sim, "active_active", "can_stop"))
    assert failed_tasks(refused)[:1] == ["run_preflight"]
    assert str(run_dag(conf(sim, "active_active", "can_stop", recover=True)).state) == "success"
    sim.load_start("node1", table="SYS.T1", interval=0.02)  # the operator restarts the stopped service
    sim.load_start("node2", table="SYS.T1", interval=0.02)
    assert_pair_healthy(sim, "active_active", ["C1", "C2", "C3"])


def test_a_statement_error_after_the_ddl_on_one_server_gives_an_operator_message_and_recover_finishes(
        sim, monkeypatch, airflow_db):
    prepare(sim, monkeypatch, "active_standby")
    sim.fail_once("node2", r"^ALTER TABLE", "11075")  # the standby's DDL fails (lock timeout)
    dagrun = run_dag(conf(sim, "active_standby", "can_stop"))
    assert str(dagrun.state) == "failed"
    assert "can_stop_active_standby.O1_O9_change_tables_on_both" in failed_tasks(dagrun)
    assert "run_restore" in failed_tasks(dagrun)  # not safe to restart replication of T1: it says so
    restore_ti = dagrun.get_task_instance("run_restore")
    assert restore_ti.state == "failed"
    # nothing half-done silently: T2 still replicates, T1 is out on both servers, so the active stays in
    # admin mode (a write to T1 there would never reach the standby); the standby never left it off
    assert query(sim, "node1", "SELECT VALUE1 FROM V$PROPERTY WHERE NAME = 'ADMIN_MODE'") == [("1",)]
    assert query(sim, "node2", "SELECT VALUE1 FROM V$PROPERTY WHERE NAME = 'ADMIN_MODE'") == [("0",)]
    assert columns(sim, "node1") == ["C1", "C2", "C3"] and columns(sim, "node2") == ["C1", "C2"]
    # the fault was once: a new run with recover=true finishes the job (the DDL is skipped on node1)
    assert str(run_dag(conf(sim, "active_standby", "can_stop", recover=True)).state) == "success"
    sim.load_start("node1", table="SYS.T1", interval=0.02)  # the operator restarts the stopped service
    assert_pair_healthy(sim, "active_standby", ["C1", "C2", "C3"])


def test_a_server_that_goes_down_mid_turn_is_reported_and_the_run_recovers_when_it_is_back(sim, monkeypatch, airflow_db):
    prepare(sim, monkeypatch, "active_active")
    sim.fail_once("node1", r"^ALTER TABLE", "DOWN")  # active1 crashes on its DDL (t1_R5)
    dagrun = run_dag(conf(sim, "active_active", "rolling"))
    assert str(dagrun.state) == "failed"
    assert "rolling_active_active.t1_R1d_R9_change_tables_on_active1" in failed_tasks(dagrun)
    assert dagrun.get_task_instance("run_restore").state == "failed"  # cannot reach node1: says so
    sim.server_up("node1")
    assert str(run_dag(conf(sim, "active_active", "rolling", recover=True)).state) == "success"
    sim.load_start("node1", table="SYS.T1", interval=0.02)
    assert_pair_healthy(sim, "active_active", ["C1", "C2", "C3"])


def test_preflight_refuses_a_sending_standby_and_changes_nothing(sim, monkeypatch, airflow_db):
    prepare(sim, monkeypatch, "active_standby", load=False)
    query(sim, "node2", "ALTER REPLICATION REP1 START")  # the standby sends: ADD/DROP TABLE would fail
    dagrun = run_dag(conf(sim, "active_standby", "can_stop"))
    assert failed_tasks(dagrun) == ["run_preflight", "summary"] or failed_tasks(dagrun) == ["run_preflight"]
    # the run ends at once: choose_variant skips every variant's tasks in one go, none is upstream_failed
    states = task_states(dagrun)
    assert {s for t, s in states.items() if "." in t} == {"skipped"}, states
    for node in ("node1", "node2"):
        assert columns(sim, node) == ["C1", "C2"]
        assert query(sim, node, "SELECT VALUE1 FROM V$PROPERTY WHERE NAME = 'ADMIN_MODE'") == [("0",)]


def test_a_server_restarted_inside_the_admin_window_fails_the_run_closed_and_recover_finishes(
        sim, monkeypatch, airflow_db):
    # O4 runs on the active, then the active restarts: it comes back with ADMIN_MODE 0 (its file's value)
    dagrun = run_with_fault(sim, monkeypatch, "active_standby", "can_stop", "node1",
                            r"^ALTER REPLICATION REP1 DROP TABLE", "RESTART")
    assert "can_stop_active_standby.O1_O9_change_tables_on_both" in failed_tasks(dagrun)
    assert "run_restore" in failed_tasks(dagrun)  # fails closed: says the server restarted
    block = dagrun.get_task_instance("can_stop_active_standby.O1_O9_change_tables_on_both")
    audits = [a for a in block.xcom_pull(task_ids=block.task_id, key="audit") if a["server_role"] == "active"]
    assert [(a["step_id"], a["outcome"]) for a in audits] == [
        ("O2", "success"), ("O3a", "success"), ("O3c", "success"), ("O4", "success"), ("O5", "failed")]
    assert audits[-1]["statements"] == []  # O5 read the restart first and sent nothing
    assert columns(sim, "node1") == ["C1", "C2"]
    # the service stays stopped: the application may have written on the restarted server; the summary
    # says so (it is the last task a DBA reads)
    assert not any(load["running"] for load in sim.load_status())
    summary_ti = dagrun.get_task_instance("summary")
    summary = summary_ti.xcom_pull(task_ids="summary", key="summary")
    assert summary_ti.state == "failed" and summary["service"].startswith(
        "application service: NOT as before the run — the application writes on no server"), summary["service"]
    for node in ("node1", "node2"):
        assert query(sim, node, "SELECT VALUE1 FROM V$PROPERTY WHERE NAME = 'ADMIN_MODE'") == [("0",)]
    # a new run with recover=true finishes (new start times), and nothing committed is lost
    assert str(run_dag(conf(sim, "active_standby", "can_stop", recover=True)).state) == "success"
    sim.load_start("node1", table="SYS.T1", interval=0.02)
    assert_pair_healthy(sim, "active_standby", ["C1", "C2", "C3"])


def test_the_server_carrying_the_service_dies_mid_turn_and_the_survivor_takes_the_service(
        sim, monkeypatch, airflow_db):
    # turn 1: active1 is in admin mode with T1 out of the replication and the service moved onto
    # active2 — which then dies (on its R7)
    dagrun = run_with_fault(sim, monkeypatch, "active_active", "rolling", "node2",
                            r"^ALTER SYSTEM SET REPLICATION_SQL_APPLY_ENABLE", "DOWN")
    assert "run_restore" in failed_tasks(dagrun)  # it says what it could not do
    # no total outage: the survivor has T1 back in the replication, is out of admin mode, and serves
    assert query(sim, "node1", "SELECT VALUE1 FROM V$PROPERTY WHERE NAME = 'ADMIN_MODE'") == [("0",)]
    items = {r[0] for r in query(sim, "node1", "SELECT LOCAL_TABLE_NAME FROM SYSTEM_.SYS_REPL_ITEMS_")}
    assert items == {"T1", "T2"}
    assert any(load["running"] and load["server"] == "node1" for load in sim.load_status())
    # the dead server returns; recover finishes the job, and nothing committed anywhere is lost
    sim.server_up("node2")
    assert str(run_dag(conf(sim, "active_active", "rolling", recover=True)).state) == "success"
    sim.load_start("node2", table="SYS.T1", interval=0.02)
    assert_pair_healthy(sim, "active_active", ["C1", "C2", "C3"])


def test_a_truncate_the_server_refused_is_recorded_as_failed_and_recover_runs_it_once(sim, monkeypatch, airflow_db):
    """The standby's TRUNCATE fails with an error the client reported: it is recorded FAILED (nothing
    applied), not "began and never reported", so recover finishes it; the same request again has
    nothing to do and says when it ran; a new change id runs it again."""
    prepare(sim, monkeypatch, "active_standby", load=False)

    def fill(*keys):
        for key in keys:
            query(sim, "node1", f"INSERT INTO SYS.T1 VALUES ({key}, {key})")
        query(sim, "node1", "ALTER REPLICATION REP1 FLUSH WAIT 10")

    def rows():
        return {n: query(sim, n, "SELECT COUNT(*) FROM SYS.T1")[0][0] for n in ("node1", "node2")}

    def records():
        return {n: query(sim, n, "SELECT STATE FROM SYS.AIRFLOW_DDL_APPLIED") for n in ("node1", "node2")}

    fill(1, 2, 3)
    sim.fail_once("node2", r"^TRUNCATE", "11075")
    truncate = conf(sim, "active_standby", "can_stop", ddl=["TRUNCATE TABLE SYS.T1"])
    assert str(run_dag(truncate).state) == "failed"
    assert rows() == {"node1": 0, "node2": 3}
    assert records() == {"node1": [("DONE",)], "node2": [("FAILED",)]}
    # restore never replicated two contents: T1 stays out of the replication on both until recover
    items = {n: sorted(r[0] for r in query(sim, n, "SELECT LOCAL_TABLE_NAME FROM SYSTEM_.SYS_REPL_ITEMS_"))
             for n in ("node1", "node2")}
    assert items == {"node1": ["T2"], "node2": ["T2"]}
    recovered = run_dag({**truncate, "recover": True})
    assert str(recovered.state) == "success", task_states(recovered)
    assert rows() == {"node1": 0, "node2": 0} and records() == {"node1": [("DONE",)], "node2": [("DONE",)]}
    fill(10, 11)
    again = run_dag(truncate)
    assert task_states(again)["hold_pair"] == "skipped" and rows() == {"node1": 2, "node2": 2}
    ran = again.get_task_instance("run_preflight").xcom_pull(task_ids="run_preflight")["ran_earlier"]
    assert ran and ran[0].startswith("'TRUNCATE TABLE SYS.T1' ran on node1 in run ") and " UTC, node2 in run " in ran[0]
    assert str(run_dag({**truncate, "change_id": "truncate-again"}).state) == "success"
    assert rows() == {"node1": 0, "node2": 0}
