"""altibase_replication_health: parsing and configuration, the judging rules, and two in-process runs
against the simulator — a healthy pair under load (green), and one run over pairs that each show one
finding (stuck gap, stopped sender, server down, admin mode and SQL apply left on), where exactly the
servers that need a DBA are red and every message names the pair, the server and the value.

Two runs rather than one per scenario: every ``dag.test`` re-parses the whole dags/ folder, and
the scenarios are independent pairs, so one run checks them all (as production checks many pairs).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from altibase_ops.health.config import (
    DEFAULT_SCHEDULE,
    InvalidPairsError,
    pairs_from_env,
    schedule_from_env,
)
from altibase_ops.health.judgement import report_table
from altibase_sim.scenarios import connection_uri, seed_replicated_pair
from tests.dags.conftest import DAGS, dag_test_with_defaults

DAG_ID = "altibase_replication_health"


def pair(name: str, first: str, second: str, roles: tuple[str, str] = ("active", "standby")) -> dict[str, Any]:
    return {"name": name, "replication_name": "REP1",
            "servers": [{"name": first, "conn_id": f"altibase_{first}", "role": roles[0]},
                        {"name": second, "conn_id": f"altibase_{second}", "role": roles[1]}]}


def connect_all(sim, monkeypatch) -> None:
    for server in sim.servers():
        monkeypatch.setenv(f"AIRFLOW_CONN_ALTIBASE_{server['name'].upper()}", connection_uri(server))


def run(run_conf: dict[str, Any], dag: Any = None) -> tuple[Any, dict[str, dict[str, Any]], dict[str, str]]:
    """(dag run, result per server label, state per server label) of one in-process run."""
    dagrun = dag_test_with_defaults(DAG_ID, run_conf, dag)
    results, states = {}, {}
    for ti in dagrun.get_task_instances():
        if ti.task_id == "check_server":
            result = ti.xcom_pull(task_ids="check_server", key="health", map_indexes=ti.map_index)
            results[ti.rendered_map_index] = result
            states[ti.rendered_map_index] = str(ti.state)
    return dagrun, results, states


def parse_dag_file():
    """A fresh import of the DAG file (the module-level code runs again, with today's environment)."""
    spec = importlib.util.spec_from_file_location(f"fresh_{DAG_ID}", DAGS / f"{DAG_ID}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


# ------------------------------------------------------------------------------ parse and config
def test_the_dag_parses_with_nothing_running_and_follows_the_house_rules(monkeypatch):
    for var in ("ALTIBASE_HEALTH_SCHEDULE", "ALTIBASE_HEALTH_PAIRS"):
        monkeypatch.delenv(var, raising=False)
    dag = parse_dag_file()  # no simulator, no Connection defined: parsing must not need either
    assert dag.dag_id == DAG_ID == Path(dag.fileloc).stem
    assert dag.timetable.expression == DEFAULT_SCHEDULE == "*/10 * * * *"
    assert dag.catchup is False and dag.max_active_runs == 1 and "altibase" in dag.tags
    assert dag.default_args == {"owner": "dba", "retries": 0}
    assert dag.doc_md and "ALTIBASE_HEALTH_SCHEDULE" in dag.doc_md
    assert set(dag.task_dict) == {"list_servers", "check_server", "report"}
    assert dag.task_dict["report"].trigger_rule == "all_done"
    assert dag.params["pairs"] == pairs_from_env({})
    assert {"max_rep_gap", "stall_check_seconds"} <= set(dag.params)


def test_schedule_and_scheduled_pairs_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("ALTIBASE_HEALTH_SCHEDULE", "@hourly")
    monkeypatch.setenv("ALTIBASE_HEALTH_PAIRS", '[{"name": "billing", "replication_name": "rep_bill", "servers": '
                       '[{"name": "a1", "conn_id": "alt_a1", "role": "active1"}, '
                       '{"name": "a2", "conn_id": "alt_a2", "role": "active2"}]}]')
    dag = parse_dag_file()
    assert dag.timetable.expression in ("@hourly", "0 * * * *")
    assert dag.params["pairs"][0]["name"] == "billing"
    assert schedule_from_env({"ALTIBASE_HEALTH_SCHEDULE": "  "}) == DEFAULT_SCHEDULE


def test_a_malformed_pairs_variable_is_an_import_error_naming_it(monkeypatch):
    monkeypatch.setenv("ALTIBASE_HEALTH_PAIRS", "[{'name': 'x'}]")
    with pytest.raises(InvalidPairsError, match="ALTIBASE_HEALTH_PAIRS is not JSON"):
        parse_dag_file()


# ---------------------------------------------------------------------------- runs (simulator)
@pytest.mark.e2e
def test_a_healthy_pair_under_load_is_green(sim, airflow_db, monkeypatch):
    seed_replicated_pair(sim)
    connect_all(sim, monkeypatch)
    sim.load_start("node1", table="SYS.T1", sessions=2, interval=0.01)
    try:
        # the default pairs (altibase_node1/2), from a fresh parse: a run's conf stays in the params of
        # the DAG object it ran on, so the cached one may hold another test's pairs
        dagrun, results, states = run({"stall_check_seconds": 0.5}, parse_dag_file())
    finally:
        sim.load_stop()
    assert str(dagrun.state) == "success", results
    assert states == {"pair1/node1": "success", "pair1/node2": "success"}
    active, standby = results["pair1/node1"]["reading"], results["pair1/node2"]["reading"]
    assert active["sender_status"] == 1 and active["admin_mode"] == 0 and active["sql_apply_enable"] == 0
    assert active["rep_gap"] is not None and active["stalled_rep_sn"] is None
    assert active["sessions"] >= 2  # the application load's sessions
    assert standby["receivers"] == [{"PEER_IP": "node1", "SQL_APPLY_TABLE_COUNT": 0}]
    assert standby["sender_status"] is None  # Active-Standby: the standby does not send, and that is fine


@pytest.mark.e2e
def test_red_exactly_where_a_dba_must_look(sim, airflow_db, monkeypatch):
    for n in range(3, 11):
        sim.add_server(f"node{n}")
    for first, second in (("node1", "node2"), ("node3", "node4"), ("node5", "node6"), ("node7", "node8"),
                          ("node9", "node10")):
        seed_replicated_pair(sim, (first, second), tables=("SYS.T1",))
    connect_all(sim, monkeypatch)
    # stuck gap: node3's sender is paused with rows waiting
    sim.pause_sender("node3", "REP1")
    with sim.connect("node3") as conn:
        for key in range(20):
            conn.cursor().execute(f"INSERT INTO SYS.T1 VALUES ({key}, {key})")
    # stopped sender: node5's replication stopped
    with sim.connect("node5", sysdba=True) as conn:
        conn.cursor().execute("ALTER REPLICATION REP1 STOP")
    # server down: node8 (the standby); node7 is still checked
    sim.server_down("node8")
    # left on after maintenance: admin mode on node9, SQL apply on node10
    with sim.connect("node10", sysdba=True) as conn:
        conn.cursor().execute("ALTER SYSTEM SET REPLICATION_SQL_APPLY_ENABLE = 1")
    with sim.connect("node9", sysdba=True) as conn:
        conn.cursor().execute("ALTER SYSTEM SET ADMIN_MODE = 1")

    pairs = [pair("ok", "node1", "node2"), pair("stuck", "node3", "node4"), pair("stopped", "node5", "node6"),
             pair("down", "node7", "node8"), pair("maint", "node9", "node10")]
    dagrun, results, states = run({"pairs": pairs, "max_rep_gap": 0, "stall_check_seconds": 0.5})

    assert str(dagrun.state) == "failed"
    red = {label for label, state in states.items() if state == "failed"}
    assert red == {"stuck/node3", "stopped/node5", "down/node7", "down/node8", "maint/node9", "maint/node10"}
    assert states["ok/node1"] == states["ok/node2"] == "success"

    def problems(label: str) -> str:
        return "\n".join(results[label]["problems"])

    assert "pair stuck, server node3 (active, altibase_node3): REP_GAP=20 exceeds max_rep_gap=0" in problems("stuck/node3")
    assert "the gap of REP1 is stuck — REP_SN stayed at" in problems("stuck/node3")
    assert "pair stopped, server node5 (active, altibase_node5): the sender of REP1 is not running" in \
        problems("stopped/node5")
    assert "pair down, server node8 (standby, altibase_node8): could not be read" in problems("down/node8")
    assert "ERR-50032" in problems("down/node8")
    # the other server of that pair was still read, and its own finding is the consequence
    assert results["down/node7"]["reading"]["reachable"] is True
    assert "STATUS=2 (RETRY), not 1 (RUN) — it cannot reach node8" in problems("down/node7")
    assert "pair maint, server node9 (active, altibase_node9): ADMIN_MODE=1" in problems("maint/node9")
    assert "pair maint, server node10 (standby, altibase_node10): REPLICATION_SQL_APPLY_ENABLE=1" in \
        problems("maint/node10")
    assert "ERR-4106E" in results["maint/node9"]["reading"]["error"]  # refused plain login; no SYSDBA taken

    report = {ti.task_id: str(ti.state) for ti in dagrun.get_task_instances()}["report"]
    assert report == "failed"
    table = report_table(list(results.values()))
    assert "down/node8" in table and "DOWN" in table

