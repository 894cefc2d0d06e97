"""The fault matrix: a failure at every step that changes something, in every variant, under a live
application load that records every committed key — through the DAG itself (``dag.test``: the real
block runner with its lanes, the real restore and summary) — then a ``recover=true`` run.

After the failed run (its restore included) it asserts the pair's invariant as the simulator shows it,
not as the DAG reports it: every server the application writes on has a running sender; no committed
key is on one server only once the writers' senders flushed; either the pair is whole and released,
or the lock is kept and restore said why; and the summary names exactly the servers the application
writes on. After the recover run: the DDL on both servers, replication as the topology runs it, no
admin mode, no SQL apply, every committed key on both servers, the same rows.

CI runs ``SAMPLE`` (the steps where the rolling variants used to strand writes, and one of each kind
elsewhere); ``make test-faults`` runs every case (``ALTIBASE_FAULT_MATRIX=full``).
"""

from __future__ import annotations

import os
import re

import pytest

from altibase_ops.ddl.procedure import procedure, steps_in_order, variant_id
from altibase_ops.ddl.request import TOPOLOGY_ROLES
from tests.dags.ddl_harness import assert_pair_healthy, conf, prepare, query, run_dag, task_states

pytestmark = pytest.mark.e2e

SERVER_OF = {"active": "node1", "standby": "node2", "active1": "node1", "active2": "node2"}
# the statement each iSQL step's template sends (include/sql/ddl), as the simulator sees it
STATEMENTS = {
    "flush_gap": r"^ALTER REPLICATION REP1 FLUSH", "stop_replication": r"^ALTER REPLICATION REP1 STOP",
    "start_replication": r"^ALTER REPLICATION REP1 START", "admin_mode_on": r"^ALTER SYSTEM SET ADMIN_MODE = 1",
    "admin_mode_off": r"^ALTER SYSTEM SET ADMIN_MODE = 0", "drop_table": r"^ALTER REPLICATION REP1 DROP TABLE",
    "add_table": r"^ALTER REPLICATION REP1 ADD TABLE", "run_ddl": r"^ALTER TABLE SYS\.T1",
    "sql_apply_on": r"^ALTER SYSTEM SET REPLICATION_SQL_APPLY_ENABLE = 1",
    "sql_apply_off": r"^ALTER SYSTEM SET REPLICATION_SQL_APPLY_ENABLE = 0",
}
VARIANTS = [("active_standby", "can_stop"), ("active_active", "can_stop"), ("active_active", "rolling"),
            ("active_standby", "rolling")]


def sent_steps(topology: str, service_mode: str) -> list[tuple[object, int]]:
    """(step, how many earlier statements of the same text its server received in this run) for every
    step that sends a statement on a fresh pair. Each step reads its server first and sends nothing
    when its work is done; on a fresh pair that is: STOP of a sender not running, START of one running,
    a property already at its value. A wrong count fails the case loudly (the expected step does not fail)."""
    senders = {SERVER_OF[r] for r in TOPOLOGY_ROLES[topology] if topology == "active_active" or r == "active"}
    running, admin, sql_apply = set(senders), set(), set()
    counts: dict[tuple[str, str], int] = {}
    out = []
    for step in steps_in_order(topology, service_mode):
        if step.action not in ("isql", "ddl"):
            continue
        server = SERVER_OF[step.role]
        name = step.name
        skip = ((name == "stop_replication" and server not in running)
                or (name == "start_replication" and server in running)
                or (name == "admin_mode_on" and server in admin) or (name == "admin_mode_off" and server not in admin)
                or (name == "sql_apply_on" and server in sql_apply)
                or (name == "sql_apply_off" and server not in sql_apply))
        if skip:
            continue
        {"stop_replication": running.discard, "start_replication": running.add, "admin_mode_on": admin.add,
         "admin_mode_off": admin.discard, "sql_apply_on": sql_apply.add,
         "sql_apply_off": sql_apply.discard}.get(name, lambda _: None)(server)
        key = (server, STATEMENTS[name])
        out.append((step, counts.get(key, 0)))
        counts[key] = counts.get(key, 0) + 1
    return out


def cases() -> list:
    """Every statement-sending step and every service step of every variant."""
    params = []
    for topology, mode in VARIANTS:
        for step, skip in sent_steps(topology, mode):
            params.append(pytest.param(topology, mode, step.task_id, skip,
                                       id=f"{mode}-{topology}-{step.task_id}"))
        for step in steps_in_order(topology, mode):
            if step.action == "service":
                params.append(pytest.param(topology, mode, step.task_id, 0, id=f"{mode}-{topology}-{step.task_id}"))
    return params


# The CI sample: the rolling steps after the switchover that once stranded the standby's writes (SW3,
# the active's turn, R13d), a turn-2 DDL in Active-Active, a service step, and the can_stop windows.
SAMPLE = {
    "rolling-active_standby-SW3_start_replication_on_standby",
    "rolling-active_standby-t2_R5_run_ddl_on_active",
    "rolling-active_standby-R13d_stop_replication_on_standby",
    "rolling-active_standby-SW2_service_move_to_peer_on_active",
    "rolling-active_active-t2_R5_run_ddl_on_active2",
    "can_stop-active_standby-O5_run_ddl_on_standby",
    "can_stop-active_active-O7_start_replication_on_active2",
}
FULL = os.environ.get("ALTIBASE_FAULT_MATRIX") == "full"
CASES = [c for c in cases() if FULL or c.id in SAMPLE]


def loads(sim) -> dict[str, dict]:
    return {load["server"]: load for load in sim.load_status(with_keys=True) if load["running"]}


def committed_keys(sim) -> set[int]:
    return {k for load in sim.load_status(with_keys=True) for k in load["committed_keys"]}


def assert_no_write_stranded(sim) -> None:
    """Every server the application writes on sends; every key committed so far reaches both servers once
    the running senders flushed (the load keeps running: nothing is stopped to make this true)."""
    writers = set(loads(sim))
    for node in writers:
        assert query(sim, node, "SELECT REP_NAME FROM V$REPSENDER") == [("REP1",)], \
            f"the application writes on {node} but its sender is not running"
    keys = committed_keys(sim)
    for node in ("node1", "node2"):
        if query(sim, node, "SELECT REP_NAME FROM V$REPSENDER"):
            query(sim, node, "ALTER REPLICATION REP1 FLUSH WAIT 20")
    for node in ("node1", "node2"):
        present = {r[0] for r in query(sim, node, "SELECT C1 FROM SYS.T1")}
        assert keys <= present, f"{len(keys - present)} committed rows never reached {node}"


def task_of(topology: str, mode: str, step) -> str:
    """The task (a block, a sensor or a service step) that runs ``step``."""
    return next(f"{variant_id(topology, mode)}.{block.task_id}" for stage in procedure(topology, mode)
                for block in stage if step in block.steps)


@pytest.mark.parametrize("topology, mode, task_id, skip", CASES)
def test_a_failure_at_each_step_under_load_strands_nothing_and_recover_finishes(
        sim, monkeypatch, airflow_db, topology, mode, task_id, skip):
    prepare(sim, monkeypatch, topology)
    step = next(s for s in steps_in_order(topology, mode) if s.task_id == task_id)
    server = SERVER_OF[step.role]
    if step.action == "service":
        # the first load command of its kind on that server is this step's: stopping and moving stop the
        # step's server's load; resuming starts it; restoring starts the load the run stopped (the active's
        # after a switchover, the second server's in Active-Active rolling)
        command = "stop" if step.service in ("stop", "move_to_peer") else "start"
        if step.service == "restore":
            server = "node2" if topology == "active_active" else "node1"
        sim.fail_load_once(server, f"the service step {task_id} is refused", command=command)
    else:
        sim.fail_once(server, STATEMENTS[step.name], "11075", skip=skip)  # lock timeout: a real server code
    dagrun = run_dag(conf(sim, topology, mode))
    assert str(dagrun.state) == "failed"
    states = task_states(dagrun)
    assert states[task_of(topology, mode, step)] == "failed", states  # the fault met the step it was meant for
    # after the failed run's restore: nothing stranded, and the summary says where the application writes
    assert_no_write_stranded(sim)
    summary = dagrun.get_task_instance("summary").xcom_pull(task_ids="summary", key="summary")
    writers = sorted(loads(sim))
    assert re.search(rf"writes on {', '.join(writers) or 'no server'}\b", summary["service"]), (summary["service"],
                                                                                                 writers)
    restored = dagrun.get_task_instance("run_restore")
    held = query(sim, "node1", "SELECT COUNT(*) FROM SYS.AIRFLOW_DDL_LOCK")[0][0]
    if str(restored.state) == "success" and restored.xcom_pull(task_ids="run_restore")["whole"]:
        assert held == 0 and summary["whole"], summary["pair"]  # whole: released, and said so
        for node in ("node1", "node2"):  # and whole as the servers show it
            props = dict(query(sim, node, "SELECT NAME, VALUE1 FROM V$PROPERTY WHERE NAME IN "
                                          "('ADMIN_MODE', 'REPLICATION_SQL_APPLY_ENABLE')"))
            assert props == {"ADMIN_MODE": "0", "REPLICATION_SQL_APPLY_ENABLE": "0"}, (node, props)
            items = {r[0] for r in query(sim, node, "SELECT LOCAL_TABLE_NAME FROM SYSTEM_.SYS_REPL_ITEMS_")}
            assert items == {"T1", "T2"}, (node, items)
        assert sorted(loads(sim)) == (["node1", "node2"] if topology == "active_active" else ["node1"])
    else:
        assert held == 1, "restore did not make the pair whole but released it"
        assert not summary["whole"]
    # the recover run finishes the job from wherever this one stopped, with the application live
    recovered = run_dag(conf(sim, topology, mode, recover=True))
    assert str(recovered.state) == "success", task_states(recovered)
    final = recovered.get_task_instance("summary").xcom_pull(task_ids="summary")
    assert final["whole"] and final["service"].startswith("application service: as before the run"), final["service"]
    expected_writers = ["node1", "node2"] if topology == "active_active" else ["node1"]
    assert sorted(loads(sim)) == expected_writers
    assert_pair_healthy(sim, topology, ["C1", "C2", "C3"])


def test_the_matrix_covers_every_changing_step_of_every_variant():
    """The full matrix leaves no step out: every step that sends a statement or moves the service."""
    ids = {c.id for c in cases()}
    for topology, mode in VARIANTS:
        for step in steps_in_order(topology, mode):
            if step.action == "service" or step.action == "ddl" or step.action == "isql":
                sent = {s.task_id for s, _ in sent_steps(topology, mode)}
                if step.action != "service" and step.task_id not in sent:
                    continue  # sends nothing on a fresh pair (e.g. the standby's STOP): nothing to fail
                assert f"{mode}-{topology}-{step.task_id}" in ids
    assert SAMPLE <= ids


def test_a_switchback_that_fails_puts_the_application_back_on_the_sending_standby(sim, monkeypatch, airflow_db):
    """Active-Standby rolling, the active's DDL fails after the switchover; restore's own R13 then fails
    too (the standby's STOP): a service that cannot stop does not stay down — the application runs on the
    standby again, whose sender carries its writes, the lock stays, and recover finishes."""
    prepare(sim, monkeypatch, "active_standby")
    sim.fail_once("node1", STATEMENTS["run_ddl"], "11075")  # t2_R5 on the active
    sim.fail_once("node2", STATEMENTS["stop_replication"], "11075", skip=1)  # t2_R3 passes; restore's R13d fails
    dagrun = run_dag(conf(sim, "active_standby", "rolling"))
    states = task_states(dagrun)
    assert states["rolling_active_standby.t2_R1d_R9_change_tables_on_active"] == "failed"
    assert states["run_restore"] == "failed", states  # not whole: the application is not back on the active
    assert sorted(loads(sim)) == ["node2"]
    assert_no_write_stranded(sim)
    assert query(sim, "node1", "SELECT COUNT(*) FROM SYS.AIRFLOW_DDL_LOCK")[0][0] == 1
    summary = dagrun.get_task_instance("summary").xcom_pull(task_ids="summary", key="summary")
    assert summary["service"].startswith("application service: NOT as before the run — the application writes "
                                         "on node2"), summary["service"]
    # restore turned the active's admin mode off: its time in admin mode counts restore's statement too
    assert summary["admin_mode_seconds"].get("node1", 0) > 0, summary["admin_mode_seconds"]
    recovered = run_dag(conf(sim, "active_standby", "rolling", recover=True))
    assert str(recovered.state) == "success", task_states(recovered)
    assert sorted(loads(sim)) == ["node1"]
    assert_pair_healthy(sim, "active_standby", ["C1", "C2", "C3"])
