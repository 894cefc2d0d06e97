"""The three sensors against the simulator, in poke mode and deferred (trigger) mode."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowSensorTimeout, TaskDeferred

from altibase_ops.sensors.altibase import (
    AltibaseCheckFailed,
    ReplicationGapSensor,
    SessionCountSensor,
    SqlApplySensor,
)
from altibase_ops.triggers.altibase import AltibaseCheckTrigger
from tests.sim.helpers import query, run, seed_pair, wait_until

FAST = {"poke_interval": 0.05, "in_process_first_seconds": 0, "deferral_margin_seconds": 0}


def run_trigger(trigger: AltibaseCheckTrigger) -> dict:
    """Run a trigger the way the triggerer does (its own event loop) and return its one event."""

    async def first_event():
        async for event in trigger.run():
            return event.payload

    return asyncio.run(first_event())


def defer(sensor) -> AltibaseCheckTrigger:
    """execute() must hand the wait to the triggerer: TaskDeferred, not a blocking loop."""
    with pytest.raises(TaskDeferred) as info:
        sensor.execute(context={})
    assert info.value.method_name == "execute_complete"
    assert isinstance(info.value.trigger, AltibaseCheckTrigger)
    return info.value.trigger


def resume(sensor, event: dict):
    """What the task runner does when the trigger fires: call the named method with the event."""
    return sensor.resume_execution("execute_complete", {"event": event}, context={})


def logged(capfd) -> str:
    """What the task log got so far (Airflow's structlog writes task logs to stdout here)."""
    out, err = capfd.readouterr()
    return out + err


def sessions_on(sim, server: str) -> list[tuple]:
    return query(sim, server, "SELECT CLIENT_APP_INFO FROM V$SESSION WHERE ID <> SESSION_ID()", sysdba=True)


# replication gap


def test_deferred_gap_sensor_holds_no_worker_slot_and_the_trigger_alone_sees_the_gap_drain(sim, altibase_conns,
                                                                                            capfd):
    seed_pair(sim)
    sim.pause_sender("node1", "REP1")
    run(sim, "node1", *[f"INSERT INTO t1 VALUES ({i}, {i})" for i in range(20)])
    sensor = ReplicationGapSensor(task_id="o3b_gap", altibase_conn_id=altibase_conns["node1"],
                                  replication_name="rep1", timeout=10, **FAST)
    trigger = defer(sensor)  # first poke saw REP_GAP > 0; the worker is released here
    assert "REP_GAP=20 " in logged(capfd)  # 7.1: the log records not yet acknowledged
    # the trigger survives a triggerer restart: it is rebuilt from its serialized form
    classpath, kwargs = trigger.serialize()
    assert classpath == "altibase_ops.triggers.altibase.AltibaseCheckTrigger"
    sim.resume_sender("node1", "REP1")
    event = run_trigger(AltibaseCheckTrigger(**kwargs))
    assert event["status"] == "done"
    result = resume(sensor, event)
    assert (result["replication_name"], result["rep_gap"]) == ("REP1", 0) and result["rep_sn"] > 0
    assert sessions_on(sim, "node1") == []  # every poke closed its SYSDBA session


def test_gap_sensor_in_poke_mode_waits_for_a_throttled_sender_and_logs_each_reading(sim, altibase_conns, capfd):
    seed_pair(sim)
    sim.set_sender_rate("node1", "REP1", 300)
    run(sim, "node1", *[f"INSERT INTO t1 VALUES ({i}, {i})" for i in range(60)])
    sensor = ReplicationGapSensor(task_id="r1b_gap", altibase_conn_id=altibase_conns["node1"],
                                  replication_name="REP1", deferrable=False, timeout=10, **FAST)
    assert sensor.execute(context={})["rep_gap"] == 0
    readings = [line for line in logged(capfd).splitlines() if "REP_GAP=" in line]
    assert len(readings) >= 2 and "REP_GAP=0" not in readings[0] and "REP_GAP=0" in readings[-1]


def test_gap_held_by_a_paused_sender_times_out_with_the_last_reading(sim, altibase_conns):
    seed_pair(sim)
    sim.pause_sender("node1", "REP1")
    run(sim, "node1", "INSERT INTO t1 VALUES (1, 1)")
    poke_mode = ReplicationGapSensor(task_id="gap", altibase_conn_id=altibase_conns["node1"],
                                     replication_name="REP1", deferrable=False, timeout=0.3, **FAST)
    with pytest.raises(AirflowSensorTimeout, match=r"Last reading: replication REP1 on altibase_node1: REP_GAP=1"):
        poke_mode.execute(context={})

    deferred = ReplicationGapSensor(task_id="gap", altibase_conn_id=altibase_conns["node1"],
                                    replication_name="REP1", timeout=0.3, **FAST)
    event = run_trigger(defer(deferred))
    assert event["status"] == "timeout"
    with pytest.raises(AirflowSensorTimeout, match=r"last reading: replication REP1 on altibase_node1: REP_GAP=1"):
        resume(deferred, event)


def test_stopped_replication_is_never_gap_zero(sim, altibase_conns):
    seed_pair(sim)
    run(sim, "node1", "ALTER REPLICATION rep1 STOP")
    for deferrable in (False, True):
        sensor = ReplicationGapSensor(task_id="gap", altibase_conn_id=altibase_conns["node1"],
                                      replication_name="REP1", deferrable=deferrable, timeout=5, **FAST)
        with pytest.raises(AltibaseCheckFailed, match="no row in V\\$REPGAP, so its sender is not running"):
            sensor.execute(context={})


def test_gap_trigger_reports_a_sender_that_stops_while_it_waits(sim, altibase_conns):
    seed_pair(sim)
    sim.pause_sender("node1", "REP1")
    run(sim, "node1", "INSERT INTO t1 VALUES (1, 1)")
    sensor = ReplicationGapSensor(task_id="gap", altibase_conn_id=altibase_conns["node1"],
                                  replication_name="REP1", timeout=10, **FAST)
    trigger = defer(sensor)
    run(sim, "node1", "ALTER REPLICATION rep1 STOP")
    event = run_trigger(trigger)
    assert event["status"] == "failed"
    with pytest.raises(AltibaseCheckFailed, match="sender is not running"):
        resume(sensor, event)


def test_sensors_work_in_admin_mode_and_wait_while_another_sysdba_session_is_open(sim, altibase_conns, capfd):
    seed_pair(sim)
    run(sim, "node1", "ALTER SYSTEM SET ADMIN_MODE = 1")
    held = sim.hold_session("node1", client_info="operator-console", sysdba=True)
    sensor = ReplicationGapSensor(task_id="gap", altibase_conn_id=altibase_conns["node1"],
                                  replication_name="REP1", timeout=10, **FAST)
    trigger = defer(sensor)  # ERR-41041 is "not yet", not a failure
    assert "ERR-41041" in logged(capfd)
    sim.release_session(held)
    assert run_trigger(trigger)["status"] == "done"


# sessions


def test_session_sensor_logs_who_is_connected_and_succeeds_once_the_load_stops(sim, altibase_conns, capfd):
    seed_pair(sim, start=False)
    sim.load_start("node1", table="SYS.T1", sessions=2)
    held = sim.hold_session("node1", user="SYS", client_info="report-batch")
    sensor = SessionCountSensor(task_id="o1_sessions", altibase_conn_id=altibase_conns["node1"], timeout=10, **FAST)
    trigger = defer(sensor)
    log = logged(capfd)
    assert "3 other session(s) on altibase_node1 (allowed 0)" in log
    assert "client_info='report-batch'" in log and "user=SYS" in log and "login_time=" in log
    sim.load_stop("node1")
    sim.release_session(held)
    event = run_trigger(trigger)
    assert event["status"] == "done"
    assert resume(sensor, event) == {"count": 0, "sessions": []}


def test_session_sensor_tolerates_max_sessions_and_times_out_with_who_blocks(sim, altibase_conns):
    held = sim.hold_session("node2", client_info="app-pool-1")
    tolerant = SessionCountSensor(task_id="s", altibase_conn_id=altibase_conns["node2"], max_sessions=1,
                                  deferrable=False, timeout=5, **FAST)
    assert tolerant.execute(context={})["count"] == 1
    strict = SessionCountSensor(task_id="s", altibase_conn_id=altibase_conns["node2"], deferrable=False,
                                timeout=0.2, **FAST)
    with pytest.raises(AirflowSensorTimeout, match="app-pool-1"):
        strict.execute(context={})
    sim.release_session(held)


# SQL apply


def test_sql_apply_sensor_waits_until_no_receiver_is_in_sql_apply_mode(sim, altibase_conns, capfd):
    """R11 after one rolling turn (node1 changed, node2 not yet), then node2's turn."""
    seed_pair(sim, tables=("T1", "T2"))
    for node in ("node1", "node2"):
        run(sim, node, "ALTER REPLICATION rep1 STOP")
    run(sim, "node1", "ALTER REPLICATION rep1 DROP TABLE FROM sys.t1 TO sys.t1",
        "ALTER TABLE t1 MODIFY COLUMN (c2 BIGINT)", "ALTER REPLICATION rep1 ADD TABLE FROM sys.t1 TO sys.t1")
    for node in ("node1", "node2"):
        run(sim, node, "ALTER SYSTEM SET REPLICATION_SQL_APPLY_ENABLE = 1")
    for node in ("node1", "node2"):
        run(sim, node, "ALTER REPLICATION rep1 START")
    assert wait_until(lambda: query(sim, "node1", "SELECT SQL_APPLY_TABLE_COUNT FROM V$REPRECEIVER") == [(1,)])

    waiting = SqlApplySensor(task_id="r11", altibase_conn_id=altibase_conns["node1"], replication_name="REP1",
                             deferrable=False, timeout=0.2, **FAST)
    with pytest.raises(AirflowSensorTimeout, match=r"SQL_APPLY_TABLE_COUNT per receiver \{'REP1': 1\}"):
        waiting.execute(context={})

    sensor = SqlApplySensor(task_id="r11", altibase_conn_id=altibase_conns["node1"], timeout=10, **FAST)
    trigger = defer(sensor)
    for node in ("node1", "node2"):
        run(sim, node, "ALTER REPLICATION rep1 STOP")
    run(sim, "node2", "ALTER REPLICATION rep1 DROP TABLE FROM sys.t1 TO sys.t1",
        "ALTER TABLE t1 MODIFY COLUMN (c2 BIGINT)", "ALTER REPLICATION rep1 ADD TABLE FROM sys.t1 TO sys.t1")
    for node in ("node1", "node2"):
        run(sim, node, "ALTER REPLICATION rep1 START")
    event = run_trigger(trigger)
    assert event["status"] == "done" and event["value"] == {"counts": {"REP1": 0}}


def test_sql_apply_sensor_on_a_named_replication_without_receiver_waits(sim, altibase_conns):
    seed_pair(sim, start=False)
    sensor = SqlApplySensor(task_id="r11", altibase_conn_id=altibase_conns["node1"], replication_name="REP1",
                            deferrable=False, timeout=0.2, **FAST)
    with pytest.raises(AirflowSensorTimeout, match="no row in V\\$REPRECEIVER"):
        sensor.execute(context={})
    # every replication, none receiving: nothing is in SQL apply mode
    assert SqlApplySensor(task_id="r11", altibase_conn_id=altibase_conns["node1"], deferrable=False,
                          **FAST).execute(context={}) == {"counts": {}}


# hook


def test_sensor_in_reschedule_mode_releases_the_worker_between_pokes(sim, altibase_conns):
    from airflow.sdk.exceptions import AirflowRescheduleException

    held = sim.hold_session("node1", client_info="app")
    sensor = SessionCountSensor(task_id="o1", altibase_conn_id=altibase_conns["node1"], deferrable=False,
                                mode="reschedule", poke_interval=30, timeout=600)
    # the task runner's view of a first try: no earlier reschedule
    context = {"ti": SimpleNamespace(get_first_reschedule_date=lambda context: None)}
    with pytest.raises(AirflowRescheduleException):
        sensor.execute(context=context)
    sim.release_session(held)
    assert sensor.execute(context=context) == {"count": 0, "sessions": []}


def test_a_wait_that_ends_within_seconds_never_defers(sim, altibase_conns):
    """Polled on the worker first: a gap that drains in a second costs no scheduler round trip."""
    import threading

    seed_pair(sim)
    sim.pause_sender("node1", "REP1")
    run(sim, "node1", *[f"INSERT INTO t1 VALUES ({i}, {i})" for i in range(5)])
    threading.Timer(1.0, sim.resume_sender, args=("node1", "REP1")).start()
    sensor = ReplicationGapSensor(task_id="o3b_gap", altibase_conn_id=altibase_conns["node1"],
                                  replication_name="rep1", timeout=30, poke_interval=0.2, in_process_first_seconds=10)
    result = sensor.execute(context={})  # no TaskDeferred
    assert result["rep_gap"] == 0


def test_a_trigger_never_fires_sooner_than_its_margin_after_the_deferral(sim, altibase_conns):
    """apache/airflow#71580, #72716: a trigger that fires before the scheduler drained the deferring
    process's exit fails the task; the sensor's trigger waits out a margin whatever it reads."""
    import time

    seed_pair(sim)
    sensor = SessionCountSensor(task_id="o1_sessions", altibase_conn_id=altibase_conns["node1"], timeout=30,
                                poke_interval=0.05, in_process_first_seconds=0, deferral_margin_seconds=1.5)
    held = sim.hold_session("node1", client_info="the application, for a moment")
    trigger = defer(sensor)
    sim.release_session(held)  # the condition holds at once
    deferred_at = time.time()
    event = run_trigger(trigger)
    assert event["status"] == "done" and time.time() - deferred_at >= 1.4
    assert trigger.serialize()[1]["not_before"] >= deferred_at + 1.3  # survives a triggerer restart
