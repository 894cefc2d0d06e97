"""Restore and recover at the level of the steps' own functions: a server restarted inside the admin
window, a peer down before the flush, a 7.3 pair, equal row counts with different keys. The steps run
through the code the DAG's tasks run (``ddl/steps.py``), without Airflow's scheduling; the fault matrix
of every step of every variant, under load and through the DAG itself, is
``tests/dags/test_fault_matrix.py``.
"""

from __future__ import annotations

import logging

import pytest

from altibase_ops.ddl.preflight import preflight
from altibase_ops.ddl.procedure import steps_in_order
from altibase_ops.ddl.records import take_lock
from altibase_ops.ddl.request import TOPOLOGY_ROLES, DdlRequest
from altibase_ops.ddl.restore import UnsafeToRestoreError, restore
from altibase_ops.ddl.steps import prepare_step, run_ddl_step, run_on, step_service_target, wait_in_process
from altibase_ops.ddl.verify import compare_table_data, post_checks
from altibase_ops.service.control import perform
from altibase_ops.sql.steps import StepKind
from altibase_sim.scenarios import connection_uri, seed_replicated_pair

log = logging.getLogger("restore-matrix")


def seed_pair_with_connections(sim, monkeypatch, topology):
    """The seed's pair as the topology runs it, and an Airflow Connection to each server."""
    seed_replicated_pair(sim, topology=topology)
    for server in sim.servers():
        monkeypatch.setenv(f"AIRFLOW_CONN_ALTIBASE_{server['name'].upper()}", connection_uri(server))


def request_for(sim, topology, mode, **extra):
    roles = TOPOLOGY_ROLES[topology]
    return DdlRequest.from_params({
        "servers": [{"name": "node1", "conn_id": "altibase_node1", "role": roles[0]},
                    {"name": "node2", "conn_id": "altibase_node2", "role": roles[1]}],
        "topology": topology, "service_mode": mode, "replication_name": "REP1", "tables": ["SYS.T1"],
        "ddl": ["ALTER TABLE SYS.T1 ADD COLUMN (C3 INTEGER)"], "flush_wait_seconds": 10,
        "service_control": {"mode": "simulator", "state_dir": str(sim.state_dir)}, "dry_run": False, **extra})


def run_step(step, request, history, started_at=None):
    """One step, through the functions its task calls."""
    server = request.server(step.role)
    if step.action in ("isql", "ddl"):
        script = prepare_step(step, request, started_at, log)
        if script and step.action == "ddl":
            run_ddl_step(step, request, script, "matrix-run",
                         lambda: run_on(server.conn_id, script, StepKind(step.step_kind)))
        elif script:
            run_on(server.conn_id, script, StepKind(step.step_kind))
    elif step.action in ("gap", "sessions", "sql_apply"):
        wait_in_process(step, request, started_at, log)  # as a block runs it; a sensor polls the same check
    elif step.action == "verify":
        assert compare_table_data(request, attempts=10)[1]
    else:
        target = step_service_target(step, request)
        history += perform(step.service, target.control, target.server, target.peer, list(history),
                           routes=target.routes)


def earlier_run_is_over(dag_id, run_id):
    """The Airflow state of the run these tests interrupted by hand: over (it ran in this process)."""
    return "failed"


def begin(request, run_id=None):
    """What the DAG does before its first step: preflight (read-only), then the pair's lock (a recover
    run takes over the lock of the earlier run, which is over)."""
    report = preflight(request, log)
    take_lock(request, run_id or f"matrix-{'recover' if request.recover else 'first'}", "restore-matrix", log,
              run_state=earlier_run_is_over)
    return report


def run_procedure(request, started_at=None, history=None, stop_at_step=None):
    """The variant's steps in order, as their tasks run them (the lanes of a segment one after the
    other: each ran whole or not at all, an order the parallel run is equivalent to); ``stop_at_step``:
    the task id of the step that fails (nothing of it ran)."""
    history = [] if history is None else history
    for step in steps_in_order(request.topology, request.service_mode):
        if step.task_id == stop_at_step:
            return history
        run_step(step, request, history, started_at)
    return history


def step_named(request, task_id):
    return next(s for s in steps_in_order(request.topology, request.service_mode) if s.task_id == task_id)


# A server restarted inside the admin-mode window: the next step on it fails closed before sending
# anything, restore sets the pair right but keeps the service stopped and says why, and a new run with
# recover=true finishes. (server restarted, the first step of the stage it meets)
RESTARTS = {
    ("active_standby", "can_stop"): ("node1", "O5_run_ddl_on_active"),
    ("active_active", "can_stop"): ("node2", "O5_run_ddl_on_active2"),
    ("active_active", "rolling"): ("node1", "t1_R5_run_ddl_on_active1"),
    ("active_standby", "rolling"): ("node1", "t2_R5_run_ddl_on_active"),
}


@pytest.mark.parametrize("topology, mode", list(RESTARTS), ids=[f"{m}-{t}" for t, m in RESTARTS])
def test_a_restart_inside_the_admin_window_fails_closed_and_recover_finishes(sim, monkeypatch, topology, mode):
    from altibase_ops.state.server import ServerRestartedError

    seed_pair_with_connections(sim, monkeypatch, topology)
    request = request_for(sim, topology, mode)
    started_at = begin(request)["started_at"]
    restarted, task_id = RESTARTS[(topology, mode)]
    history = run_procedure(request, stop_at_step=task_id, started_at=started_at)
    with sim.connect(restarted, sysdba=True) as conn:
        assert conn.cursor().execute("SELECT VALUE1 FROM V$PROPERTY WHERE NAME = 'ADMIN_MODE'").fetchall() == [("1",)]
    sim.restart_server(restarted)
    step = step_named(request, task_id)
    with pytest.raises(ServerRestartedError, match=f"{restarted} restarted at .*ADMIN_MODE is 0 now"):
        run_step(step, request, history, started_at)
    with pytest.raises(UnsafeToRestoreError) as info:
        restore(request, history, log, started_at=started_at)
    text = str(info.value)
    assert f"RESTARTED: {restarted} restarted" in text and "The application: the application writes on no server" in text
    assert "clearing this run's tasks would meet the restart again" in text
    # the new run: recover, preflight (new start times), the whole procedure, the post-checks
    again = request_for(sim, topology, mode, recover=True)
    restore(again, [], log, resumable_ok=True)
    run_procedure(again, started_at=begin(again)["started_at"])
    post_checks(again, log)


def test_a_peer_down_before_the_flush_times_it_out_and_nothing_after_it_runs(sim, monkeypatch):
    from altibase_ops.sql.steps import StepError

    seed_pair_with_connections(sim, monkeypatch, "active_standby")
    request = request_for(sim, "active_standby", "can_stop", flush_wait_seconds=1)
    started_at = begin(request)["started_at"]
    history = run_procedure(request, stop_at_step="O3a_flush_gap_on_active", started_at=started_at)
    sim.server_down("node2")
    with sim.connect("node1", sysdba=True) as conn:
        conn.cursor().execute("INSERT INTO SYS.T2 VALUES (1, 1)")  # a change the peer never acknowledges
    with pytest.raises(StepError, match="ERR-61075"):
        run_step(step_named(request, "O3a_flush_gap_on_active"), request, history, started_at)
    sim.server_up("node2")  # back: a restarted process, so restore says so and keeps the service stopped
    with pytest.raises(UnsafeToRestoreError, match="RESTARTED: node2 restarted"):
        restore(request, history, log, started_at=started_at)
    for node in ("node1", "node2"):
        with sim.connect(node, sysdba=True) as conn:
            assert conn.cursor().execute("SELECT VALUE1 FROM V$PROPERTY WHERE NAME = 'ADMIN_MODE'").fetchall() \
                == [("0",)], node
    again = request_for(sim, "active_standby", "can_stop", recover=True)
    restore(again, [], log, resumable_ok=True)
    run_procedure(again, started_at=begin(again)["started_at"])
    post_checks(again, log)  # nothing was lost: the change reached node2 once it was back


@pytest.mark.parametrize("topology, mode", [("active_active", "rolling"), ("active_standby", "can_stop")])
def test_the_procedure_runs_the_same_against_a_73_pair(sim, monkeypatch, topology, mode):
    """7.3 adds V$REPGAP.REP_GAP_SIZE and counts REP_GAP in REPLICATION_GAP_UNIT units: no step may depend
    on either (the default pair is 7.1, which has neither)."""
    for node in ("node1", "node2"):
        sim.remove_server(node, purge=True)
        sim.add_server(node, version="7.3")
    seed_pair_with_connections(sim, monkeypatch, topology)
    assert {server["version"] for server in sim.servers()} == {"7.3"}
    request = request_for(sim, topology, mode)
    run_procedure(request, started_at=begin(request)["started_at"])
    post_checks(request, log)


def test_equal_row_counts_with_different_keys_are_caught_and_the_service_stays_stopped(sim, monkeypatch):
    """O9 compares the data, not only the row counts; restore re-checks before it resumes the service."""
    seed_pair_with_connections(sim, monkeypatch, "active_standby")
    with sim.connect("node1", sysdba=True) as conn:
        for key in range(1, 6):
            conn.cursor().execute(f"INSERT INTO SYS.T1 VALUES ({key}, {key})")
    request = request_for(sim, "active_standby", "can_stop")
    started_at = begin(request)["started_at"]
    history = run_procedure(request, stop_at_step="O9_verify_row_counts_on_active", started_at=started_at)
    with sim.connect("node2", sysdba=True) as conn:  # the standby does not send: this stays on node2
        conn.cursor().execute("DELETE FROM SYS.T1 WHERE C1 = 1")
        conn.cursor().execute("INSERT INTO SYS.T1 (C1, C2) VALUES (100, 1)")
    data, equal = compare_table_data(request, attempts=2)
    assert not equal and data["SYS.T1"]["node1"]["ROW_COUNT"] == data["SYS.T1"]["node2"]["ROW_COUNT"] == "5"
    with pytest.raises(UnsafeToRestoreError, match="(?s)data differ between the servers.*The application: the application writes on no server"):
        restore(request, history, log, started_at=started_at)
