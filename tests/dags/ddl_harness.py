"""Run ``altibase_replicated_ddl`` in-process against the simulator and check the pair afterwards."""

from __future__ import annotations

from typing import Any

from altibase_sim.scenarios import connection_uri, seed_replicated_pair
from tests.dags.conftest import dag_test_with_defaults, load_dag, only_dag

ROLES = {"active_standby": ("active", "standby"), "active_active": ("active1", "active2")}
ADD_C3 = "ALTER TABLE SYS.T1 ADD COLUMN (C3 INTEGER DEFAULT 7)"


def prepare(sim: Any, monkeypatch: Any, topology: str, load: bool = True) -> None:
    """The seed's pair (T1, T2 replicated as the topology runs it), Connections, and the service load."""
    seed_replicated_pair(sim, topology=topology)
    for server in sim.servers():
        monkeypatch.setenv(f"AIRFLOW_CONN_ALTIBASE_{server['name'].upper()}", connection_uri(server))
    if load:
        sim.load_start("node1", table="SYS.T1", sessions=2, interval=0.02)
        if topology == "active_active":
            sim.load_start("node2", table="SYS.T1", sessions=2, interval=0.02)


def conf(sim: Any, topology: str, service_mode: str, **overrides: Any) -> dict[str, Any]:
    roles = ROLES[topology]
    base = {
        "servers": [{"name": "node1", "conn_id": "altibase_node1", "role": roles[0]},
                    {"name": "node2", "conn_id": "altibase_node2", "role": roles[1]}],
        "topology": topology, "service_mode": service_mode, "replication_name": "REP1", "tables": ["SYS.T1"],
        "ddl": [ADD_C3], "service_control": {"mode": "simulator", "state_dir": str(sim.state_dir)},
        "dry_run": False, "poke_interval_seconds": 0.2, "gap_timeout_seconds": 20,
        "sessions_timeout_seconds": 20, "flush_wait_seconds": 10,
    }
    base.update(overrides)
    return base


def run_dag(run_conf: dict[str, Any]) -> Any:
    load_dag("altibase_replicated_ddl")
    with only_dag("altibase_replicated_ddl"):
        # the defaults as the file declares them (taken at first import), not the params an earlier
        # dag.test call of this process left in the DAG object (a recover=true would leak into the next run)
        return dag_test_with_defaults("altibase_replicated_ddl", run_conf)


def task_states(dagrun: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dagrun.get_task_instances()}


def query(sim: Any, server: str, sql: str) -> list[tuple]:
    with sim.connect(server, sysdba=True) as conn:
        return conn.cursor().execute(sql).fetchall()


def columns(sim: Any, server: str, table: str = "T1") -> list[str]:
    return [r[0] for r in query(sim, server, "SELECT c.COLUMN_NAME FROM SYSTEM_.SYS_COLUMNS_ c, SYSTEM_.SYS_TABLES_ t "
                                f"WHERE c.TABLE_ID = t.TABLE_ID AND t.TABLE_NAME = '{table}' ORDER BY c.COLUMN_ORDER")]


def assert_pair_healthy(sim: Any, topology: str, expect_columns: list[str]) -> None:
    """On every server: the DDL applied, replication running (as the topology runs it) with gap 0,
    admin mode 0, SQL apply off and count 0, and every committed row of the load present."""
    senders = ("node1", "node2") if topology == "active_active" else ("node1",)
    sim.load_stop()
    for node in senders:
        query(sim, node, "ALTER REPLICATION REP1 FLUSH ALL WAIT 20")
    keys = {k for load in sim.load_status(with_keys=True) for k in load["committed_keys"]}
    assert keys, "the application load committed nothing"
    for node in ("node1", "node2"):
        assert columns(sim, node) == expect_columns, node
        props = dict(query(sim, node, "SELECT NAME, VALUE1 FROM V$PROPERTY WHERE NAME IN "
                                      "('ADMIN_MODE', 'REPLICATION_SQL_APPLY_ENABLE')"))
        assert props == {"ADMIN_MODE": "0", "REPLICATION_SQL_APPLY_ENABLE": "0"}, node
        running = query(sim, node, "SELECT REP_NAME, REP_GAP FROM V$REPGAP")
        assert running == ([("REP1", 0)] if node in senders else []), node
        assert all(r[0] == 0 for r in query(sim, node, "SELECT SQL_APPLY_TABLE_COUNT FROM V$REPRECEIVER")), node
        present = {r[0] for r in query(sim, node, "SELECT C1 FROM SYS.T1")}
        assert keys <= present, f"{node} lost {len(keys - present)} committed rows"
    counts = {n: query(sim, n, "SELECT COUNT(*) FROM SYS.T1")[0][0] for n in ("node1", "node2")}
    assert counts["node1"] == counts["node2"], counts
