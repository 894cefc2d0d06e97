"""A failure before each step of each variant: the restore path leaves the servers safe or says
exactly why not, and a run with recover=true then finishes the job.

The steps run without Airflow's scheduling but through the code the DAG's tasks run
(``ddl/steps.py``: each step's script with the DDL's read-first, its check, its service target; the
same "already done" table; the same preflight, restore and post-checks), so the whole matrix fits in
the suite. Only the transport differs: an iSQL step's script goes through the hook here
(``run_on``), through the ``is`` client in the DAG; tests/dags/ runs the DAG itself with faults.
"""

from __future__ import annotations

import logging

import pytest

from altibase_ops.ddl.plan import plan_ddl_run
from altibase_ops.ddl.preflight import preflight
from altibase_ops.ddl.procedure import procedure
from altibase_ops.ddl.request import TOPOLOGY_ROLES, DdlRequest
from altibase_ops.ddl.restore import UnsafeToRestoreError, restore
from altibase_ops.ddl.steps import run_on, step_check, step_script, step_service_target
from altibase_ops.ddl.verify import compare_row_counts, post_checks
from altibase_ops.service.control import perform
from altibase_ops.sql.steps import StepKind
from altibase_ops.state.checks import DONE, run_check
from altibase_sim.scenarios import connection_uri, seed_replicated_pair
from altibase_sim.simulation import wait_until

log = logging.getLogger("restore-matrix")


def request_for(sim, topology, mode, **extra):
    roles = TOPOLOGY_ROLES[topology]
    return DdlRequest.from_params({
        "servers": [{"name": "node1", "conn_id": "altibase_node1", "role": roles[0]},
                    {"name": "node2", "conn_id": "altibase_node2", "role": roles[1]}],
        "topology": topology, "service_mode": mode, "replication_name": "REP1", "tables": ["SYS.T1"],
        "ddl": ["ALTER TABLE SYS.T1 ADD COLUMN (C3 INTEGER)"], "flush_wait_seconds": 10,
        "service_control": {"mode": "simulator", "state_dir": str(sim.state_dir)}, "dry_run": False, **extra})


def run_step(step, request, history):
    """One step, through the functions its task calls."""
    server = request.server(step.role)
    if step.action in ("isql", "ddl"):
        script = step_script(step, request, log)
        if script:
            run_on(server.conn_id, script, StepKind(step.step_kind))
    elif step.action in ("gap", "sessions", "sql_apply"):
        check, arguments, timeout = step_check(step, request)
        assert wait_until(lambda: run_check(check, server.conn_id, arguments, client_info="t").status == DONE,
                          timeout=min(timeout, 20)), \
            (step.task_id, run_check(check, server.conn_id, arguments, client_info="t").message)
    elif step.action == "verify":
        assert compare_row_counts(request, attempts=10)[1]
    else:
        target = step_service_target(step, request)
        history += perform(step.service, target.control, target.server, target.peer, list(history))


def run_procedure(request, stop_before=None):
    history: list[dict] = []
    for number, stage in enumerate(procedure(request.topology, request.service_mode)):
        if number == stop_before:
            return history
        for step in stage:
            run_step(step, request, history)
    return history


def cases():
    for topology, mode in (("active_standby", "can_stop"), ("active_active", "can_stop"),
                           ("active_active", "rolling"), ("active_standby", "rolling")):
        for number, stage in enumerate(procedure(topology, mode)):
            if number:
                yield pytest.param(topology, mode, number, id=f"{mode}-{topology}-before-{stage[0].task_id}")


@pytest.mark.parametrize("topology, mode, stop_before", list(cases()))
def test_failure_before_each_step_is_restored_or_explained_and_recover_finishes(sim, monkeypatch, topology, mode,
                                                                                 stop_before):
    engine = sim
    seed_replicated_pair(engine, topology=topology)
    for server in engine.servers():
        monkeypatch.setenv(f"AIRFLOW_CONN_ALTIBASE_{server['name'].upper()}", connection_uri(server))
    request = request_for(engine, topology, mode)
    preflight(request, log)
    history = run_procedure(request, stop_before)
    try:
        report = restore(request, history, log)
    except UnsafeToRestoreError as exc:
        text = str(exc)
        # precise: what it did, what is not safe (table, servers), the service, what to do next
        assert "What is not safe" in text and "SYS.T1" in text and "clear this run" in text
        assert "node1" in text and "node2" in text
    else:
        for name, state in report["servers"].items():
            assert state["admin_mode"] == 0, name
            assert "SYS.T1" in state["tables_in_replication"], name
    # whatever happened, admin mode is off everywhere (the service can log in again)
    for node in ("node1", "node2"):
        with engine.connect(node, sysdba=True) as conn:
            assert conn.cursor().execute("SELECT VALUE1 FROM V$PROPERTY WHERE NAME = 'ADMIN_MODE'").fetchall() \
                == [("0",)], node
    # the next run (recover=true) finishes the job from wherever this one stopped
    again = request_for(engine, topology, mode, recover=True)
    restore(again, [], log, resumable_ok=True)
    preflight(again, log)
    run_procedure(again)
    post_checks(again, log)
    assert all(p.statements for p in plan_ddl_run(again))
