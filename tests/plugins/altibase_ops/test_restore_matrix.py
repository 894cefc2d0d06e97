"""A failure before each step of each variant: the restore path leaves the servers safe or says
exactly why not, and a run with recover=true then finishes the job.

The steps here run without Airflow (the same statements from the procedure model, the same
"already done" table, checks, service control, DDL skip and restore/preflight functions the DAG's
tasks call), so the whole matrix fits in the suite; tests/dags/ runs the DAG itself with faults.
"""

from __future__ import annotations

import logging
import os

import pytest

from altibase_ops import checks
from altibase_ops.ddl_procedure import build_plan, procedure, render_step, validate_request
from altibase_ops.ddl_tasks import (
    UnsafeToRestoreError,
    compare_row_counts,
    ddl_to_run,
    post_checks,
    preflight,
    restore,
)
from altibase_ops.hooks import AltibaseHook, error_code
from altibase_ops.isql import ALREADY_DONE, StepKind
from altibase_ops.service_control import perform
from altibase_sim.scenarios import connection_uri, seed_replicated_pair
from altibase_sim.simulation import wait_until

log = logging.getLogger("restore-matrix")
ROLES = {"active_standby": ("active", "standby"), "active_active": ("active1", "active2")}


def request_for(sim, topology, mode, **extra):
    roles = ROLES[topology]
    return validate_request({
        "servers": [{"name": "node1", "conn_id": "altibase_node1", "role": roles[0]},
                    {"name": "node2", "conn_id": "altibase_node2", "role": roles[1]}],
        "topology": topology, "service_mode": mode, "replication_name": "REP1", "tables": ["SYS.T1"],
        "ddl": ["ALTER TABLE SYS.T1 ADD COLUMN (C3 INTEGER)"], "flush_wait_seconds": 10,
        "service_control": {"mode": "simulator", "state_dir": str(sim.state_dir)}, "dry_run": False, **extra})


def run_step(step, request, history):
    """One step, as its task does it."""
    server = request.server(step.role)
    if step.action in ("isql", "ddl"):
        statements = (ddl_to_run(request, server.conn_id, log) if step.action == "ddl"
                      else [s.rstrip(";") for s in render_step(step, request)])
        hook = AltibaseHook(altibase_conn_id=server.conn_id, sysdba=True)
        conn = hook.get_conn()
        try:
            for statement in statements:
                try:
                    conn.cursor().execute(statement)
                except Exception as exc:
                    code, _ = error_code(exc)
                    if code not in ALREADY_DONE[StepKind(step.step_kind)]:
                        raise
        finally:
            conn.close()
    elif step.action in ("gap", "sessions", "sql_apply"):
        check, args = {"gap": ("replication_gap", {"replication_name": "REP1"}),
                       "sessions": ("sessions", {"max_sessions": 0}),
                       "sql_apply": ("sql_apply", {"replication_name": "REP1"})}[step.action]
        assert wait_until(lambda: checks.run_check(check, server.conn_id, args, client_info="t").status
                          == checks.DONE, timeout=20), (step.task_id, checks.run_check(check, server.conn_id, args,
                                                                                       client_info="t").message)
    elif step.action == "verify":
        assert compare_row_counts(request)[1]
    else:
        peer = next(s.name for s in request.servers if s.role != step.role)
        history += perform(step.service, request.service_control, server.name, peer, list(history))


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
def test_failure_before_each_step_is_restored_or_explained_and_recover_finishes(sim, topology, mode,
                                                                                 stop_before):
    engine = sim
    seed_replicated_pair(engine, topology=topology)
    for server in engine.servers():
        os.environ[f"AIRFLOW_CONN_ALTIBASE_{server['name'].upper()}"] = connection_uri(server)
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
    assert all(p.statements for p in build_plan(again))
