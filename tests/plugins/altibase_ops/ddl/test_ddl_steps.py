"""What each step does (``ddl/steps.py``) and how its task takes it from the run's params
(``ddl/operators.py``): server, SQL and waits come from the request, never from another task's XCom."""

from __future__ import annotations

import logging

import pytest

from altibase_ops.ddl.operators import (
    DdlBlockOperator,
    DdlGapSensor,
    DdlServiceStepOperator,
    DdlSqlApplySensor,
    build_block,
)
from altibase_ops.ddl.procedure import procedure, steps_in_order
from altibase_ops.ddl.records import take_lock
from altibase_ops.ddl.request import DdlRequest
from altibase_ops.ddl.steps import (
    ItemsDifferError,
    prepare_step,
    step_check,
    step_script,
    step_service_target,
)
from altibase_ops.state.server import ServerRestartedError, read_state
from tests.sim.helpers import query, run, seed_pair

log = logging.getLogger("ddl-steps")
PARAMS = {
    "servers": [{"name": "node1", "conn_id": "altibase_node1", "role": "active"},
                {"name": "node2", "conn_id": "altibase_node2", "role": "standby"}],
    "topology": "active_standby", "service_mode": "can_stop", "replication_name": "REP1",
    "tables": ["SYS.T3"], "ddl": ["ALTER TABLE SYS.T3 ADD COLUMN (C3 INTEGER)"], "runner": "local",
    "service_control": {"mode": "manual"}, "gap_timeout_seconds": 42, "poke_interval_seconds": 0.5,
    "approval_timeout_minutes": 7,
}
STEPS = {s.task_id: s for s in steps_in_order("active_standby", "can_stop")}
BLOCKS = {b.task_id: b for stage in procedure("active_standby", "can_stop") for b in stage}


def test_the_ddl_step_reads_its_server_first_and_sends_only_what_is_missing(sim, altibase_conns):
    for node in ("node1", "node2"):
        run(sim, node, "CREATE TABLE SYS.T3 (C1 INTEGER PRIMARY KEY, C2 INTEGER)")
    run(sim, "node1", "ALTER TABLE SYS.T3 ADD COLUMN (C3 INTEGER)")  # node1 already has it
    request = DdlRequest.from_params(PARAMS)
    on_active, on_standby = STEPS["O5_run_ddl_on_active"], STEPS["O5_run_ddl_on_standby"]
    assert prepare_step(on_active, request, None, log) == ""
    assert prepare_step(on_standby, request, None, log).strip() == "ALTER TABLE SYS.T3 ADD COLUMN (C3 INTEGER);"
    # the plan, the rendered template: the whole DDL, nothing read
    assert step_script(on_active, request).strip() == "ALTER TABLE SYS.T3 ADD COLUMN (C3 INTEGER);"


def two_table_request() -> DdlRequest:
    return DdlRequest.from_params({**PARAMS, "tables": ["SYS.T1", "SYS.T2"],
                                   "ddl": ["ALTER TABLE SYS.T1 ADD COLUMN (C3 INTEGER)"]})


def test_every_step_reads_its_server_first_and_sends_only_what_is_not_done(sim, altibase_conns):
    seed_pair(sim, tables=("T1", "T2", "T3"), start=False)
    run(sim, "node1", "ALTER REPLICATION REP1 START")
    request = two_table_request()
    stop, drop = STEPS["O3c_stop_replication_on_active"], STEPS["O4_drop_table_on_active"]
    add, start = STEPS["O6_add_table_on_active"], STEPS["O7_start_replication_on_active"]
    admin_on, admin_off = STEPS["O2_admin_mode_on_on_active"], STEPS["O8_admin_mode_off_on_active"]
    assert prepare_step(admin_off, request, None, log) == ""  # ADMIN_MODE is already 0
    assert prepare_step(admin_on, request, None, log).strip() == "ALTER SYSTEM SET ADMIN_MODE = 1;"
    assert prepare_step(start, request, None, log) == ""  # the sender runs
    run(sim, "node1", "ALTER REPLICATION REP1 STOP")
    assert prepare_step(stop, request, None, log) == ""  # already stopped
    run(sim, "node1", "ALTER REPLICATION REP1 DROP TABLE FROM SYS.T1 TO SYS.T1")
    assert prepare_step(drop, request, None, log).strip() == "ALTER REPLICATION REP1 DROP TABLE FROM SYS.T2 TO SYS.T2;"
    assert prepare_step(add, request, None, log).strip() == "ALTER REPLICATION REP1 ADD TABLE FROM SYS.T1 TO SYS.T1;"


def test_add_or_drop_table_waits_for_the_receiver_and_sends_nothing_while_the_peer_still_sends(
        sim, altibase_conns, monkeypatch):
    """ERR-6109F: ADD/DROP TABLE is refused while the server's receiver runs. The standby's O4 follows
    the active's STOP at once inside the block: it waits for the receiver to end, and fails closed,
    sending nothing, when the peer keeps sending."""
    import threading

    monkeypatch.setattr("altibase_ops.ddl.steps.RECEIVER_END_SECONDS", 1.0)
    seed_pair(sim, tables=("T1", "T2", "T3"), start=False)
    run(sim, "node1", "ALTER REPLICATION REP1 START")  # the active sends: node2's receiver runs
    drop = STEPS["O4_drop_table_on_standby"]
    with pytest.raises(Exception, match="receiver of replication REP1 still runs after 1 s.*ERR-6109F"):
        prepare_step(drop, two_table_request(), None, log)
    assert query(sim, "node2", "SELECT COUNT(*) FROM SYSTEM_.SYS_REPL_ITEMS_")[0][0] == 3  # nothing was sent
    # the active's STOP lands while the step waits: the step goes on
    monkeypatch.setattr("altibase_ops.ddl.steps.RECEIVER_END_SECONDS", 10.0)
    threading.Timer(0.5, run, args=(sim, "node1", "ALTER REPLICATION REP1 STOP")).start()
    assert "DROP TABLE FROM SYS.T1" in prepare_step(drop, two_table_request(), None, log)


def test_start_is_not_sent_while_the_peer_holds_a_different_item_list(sim, altibase_conns):
    seed_pair(sim, tables=("T1", "T2", "T3"), start=False)
    run(sim, "node2", "ALTER REPLICATION REP1 DROP TABLE FROM SYS.T1 TO SYS.T1")  # the standby's O4 ran, O6 not
    with pytest.raises(ItemsDifferError, match=r"node1 and node2 hold different items .*SYS\.T1"):
        prepare_step(STEPS["O7_start_replication_on_active"], two_table_request(), None, log)
    run(sim, "node2", "ALTER REPLICATION REP1 ADD TABLE FROM SYS.T1 TO SYS.T1")
    assert "START" in prepare_step(STEPS["O7_start_replication_on_active"], two_table_request(), None, log)


def test_a_server_restarted_since_preflight_fails_the_step_before_anything_is_sent(sim, altibase_conns):
    seed_pair(sim, tables=("T1", "T2", "T3"), start=False)
    started = {n: query(sim, n, "SELECT STARTUP_TIME_SEC FROM V$INSTANCE")[0][0] for n in ("node1", "node2")}
    step = STEPS["O4_drop_table_on_standby"]
    assert "DROP TABLE" in prepare_step(step, two_table_request(), started, log)
    run(sim, "node2", "ALTER SYSTEM SET ADMIN_MODE = 1")
    sim.restart_server("node2")
    with pytest.raises(ServerRestartedError) as info:
        prepare_step(step, two_table_request(), started, log)
    text = str(info.value)
    assert "node2 restarted at" in text and "ADMIN_MODE is 0 now" in text and "recover=true" in text
    assert query(sim, "node2", "SELECT COUNT(*) FROM SYSTEM_.SYS_REPL_ITEMS_")[0][0] == 3  # nothing was sent


def test_a_block_takes_server_runner_and_sql_from_the_params_and_shows_every_step():
    operator = build_block(BLOCKS["O1_O9_change_tables_on_both"], [])
    assert isinstance(operator, DdlBlockOperator) and not operator.deferrable
    operator.render_template_fields({"params": {**PARAMS, "runner": "kubernetes"}})
    assert operator.altibase_conn_id == "altibase_node1" and operator.runner == "kubernetes"
    shown = operator.sql
    for line in ("-- O2 on the active: admin mode on", "ALTER SYSTEM SET ADMIN_MODE = 1;",
                 "-- O3b on the active: confirm the replication gap is 0", "ALTER REPLICATION REP1 STOP;",
                 "-- O4 on the standby: remove the tables from replication", "-- O9 on the active: verify"):
        assert line in shown
    assert shown.index("ADMIN_MODE = 1") < shown.index("FLUSH") < shown.index("REP1 STOP") < \
        shown.index("O4 on the standby") < shown.index("REP1 START") < shown.index("ADMIN_MODE = 0")


def test_a_sensor_step_takes_its_server_check_and_timeout_from_the_params():
    rolling = {b.task_id: b for stage in procedure("active_standby", "rolling") for b in stage}
    params = {**PARAMS, "service_mode": "rolling"}
    gap = build_block(rolling["t2_R1b_confirm_gap_zero_on_active"], [])
    assert isinstance(gap, DdlGapSensor)
    gap.render_template_fields({"params": params})
    assert (gap.altibase_conn_id, gap.poke_interval, gap.timeout) == ("altibase_node1", 0.5, 42)
    assert gap.check_arguments() == {"replication_name": "REP1"}
    sql_apply = build_block(rolling["R11_confirm_sql_apply_zero_on_standby"], [])
    assert isinstance(sql_apply, DdlSqlApplySensor)
    sql_apply.render_template_fields({"params": params})
    assert sql_apply.altibase_conn_id == "altibase_node2"
    assert step_check(STEPS["O3b_confirm_gap_zero_on_active"], DdlRequest.from_params(PARAMS)) == \
        ("replication_gap", {"replication_name": "REP1"}, 42)
    assert step_check(STEPS["O1_confirm_no_sessions_on_active"], DdlRequest.from_params(PARAMS))[:2] == \
        ("sessions", {"max_sessions": 0})


def test_a_service_step_acts_on_its_roles_server_with_the_runs_approval_timeout():
    step = STEPS["O1_service_stop_on_active"]
    operator = build_block(BLOCKS["O1_service_stop_on_active"], [])
    assert isinstance(operator, DdlServiceStepOperator)
    target = operator.service_target({"params": PARAMS})
    assert target == step_service_target(step, DdlRequest.from_params(PARAMS))
    assert (target.server, target.peer, target.approval_timeout.total_seconds()) == ("node1", "node2", 420)
    assert "REP1" in target.context_md and target.control == {"mode": "manual"}


def test_an_isql_step_waits_out_a_sysdba_session_held_for_a_moment(sim, altibase_conns):
    """A START step reads its peer as SYSDBA; the peer's own step, refused at login meanwhile (ERR-41041,
    nothing ran), tries again instead of failing the stage."""
    import threading

    seed_pair(sim, tables=("T1", "T2", "T3"), start=False)
    operator = build_block(BLOCKS["O1_O9_change_tables_on_both"], [])
    operator.render_template_fields({"params": {**PARAMS, "tables": ["SYS.T1"], "ddl": ["TRUNCATE TABLE SYS.T1"]}})
    operator.sql = "ALTER REPLICATION REP1 START;"  # the block's O7 alone (its other steps are not under test)
    held = sim.hold_session("node1", sysdba=True, client_info="the peer's START step reading node1")
    threading.Timer(1.5, sim.release_session, args=(held,)).start()
    operator._execute_when_free(context={})
    assert query(sim, "node1", "SELECT REP_NAME FROM V$REPSENDER") == [("REP1",)]
    # anything else is not retried: a real failure fails at once
    bad = build_block(BLOCKS["O1_O9_change_tables_on_both"], [])
    bad.render_template_fields({"params": {**PARAMS, "tables": ["SYS.T1"], "ddl": ["TRUNCATE TABLE SYS.T1"]}})
    bad.sql = "ALTER REPLICATION NOPE START;"
    with pytest.raises(Exception, match="ERR-6111B"):
        bad._execute_when_free(context={})


def test_a_blocks_opening_wait_defers_when_it_goes_on_and_the_block_starts_over_when_it_ends(
        sim, altibase_conns, monkeypatch):
    """O1's wait for the application opens the block that sets admin mode: polled in the task first,
    then handed to the triggerer (no worker held), with the trigger's margin against the deferral race."""
    import asyncio

    from airflow.sdk.exceptions import TaskDeferred

    monkeypatch.setattr("altibase_ops.ddl.operators.IN_PROCESS_FIRST_SECONDS", 0.3)
    monkeypatch.setattr("altibase_ops.ddl.operators.DEFERRAL_MARGIN_SECONDS", 0.5)
    seed_pair(sim, tables=("T1", "T2"), start=False)
    run(sim, "node1", "ALTER REPLICATION REP1 START")  # Active-Standby: only the active sends
    params = {**PARAMS, "tables": ["SYS.T1"], "ddl": ["ALTER TABLE SYS.T1 ADD COLUMN (C3 INTEGER)"],
              "poke_interval_seconds": 0.1}
    operator = build_block(BLOCKS["O1_O9_change_tables_on_both"], [])
    operator.render_template_fields({"params": params})
    held = sim.hold_session("node1", client_info="the application, still connected")
    context = {"params": params, "ti": FakeTi()}
    take_lock(DdlRequest.from_params(params), context["ti"].run_id, "test", log)  # as hold_pair does first
    with pytest.raises(TaskDeferred) as info:
        operator.execute(context)
    assert info.value.method_name == "execute_after_wait"
    assert query(sim, "node1", "SELECT VALUE1 FROM V$PROPERTY WHERE NAME = 'ADMIN_MODE'") == [("0",)]  # not yet
    sim.release_session(held)

    async def fired():
        async for event in info.value.trigger.run():
            return event.payload

    event = asyncio.run(fired())
    assert event["status"] == "done"
    operator.execute_after_wait(context, event)  # the block from its start: the wait passes, then O2…O9
    assert query(sim, "node1", "SELECT VALUE1 FROM V$PROPERTY WHERE NAME = 'ADMIN_MODE'") == [("0",)]
    assert query(sim, "node1", "SELECT REP_NAME FROM V$REPSENDER") == [("REP1",)]
    for node in ("node1", "node2"):
        assert list(read_state(f"altibase_{node}", "REP1", ["SYS.T1"]).tables["SYS.T1"].columns) == \
            ["C1", "C2", "C3"], node
    audits = context["ti"].pushed["audit"]  # one record per iSQL step, the lanes' interleaved
    assert [a["step_id"] for a in audits if a["server_role"] == "active"] == \
        ["O2", "O3a", "O3c", "O4", "O5", "O6", "O7", "O8"]
    assert [a["step_id"] for a in audits if a["server_role"] == "standby"] == ["O4", "O5", "O6"]
    assert all(a["outcome"] == "success" for a in audits)


class FakeTi:
    """What a block reads and writes through its task instance: XCom (no preflight in this test)."""

    dag_id = "altibase_replicated_ddl"
    task_id = "a_block"
    run_id = "steps-test"
    map_index = -1

    def __init__(self):
        self.pushed = {}

    def xcom_pull(self, task_ids=None, key="return_value", **_):
        return None

    def xcom_push(self, key, value):
        self.pushed[key] = list(value) if isinstance(value, list) else value
