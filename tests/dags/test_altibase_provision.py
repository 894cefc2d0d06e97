"""Run ``altibase_provision`` and ``altibase_teardown`` in-process (``dag.test``) against the simulator.

The servers are reached the way a cluster reaches them: one Airflow Connection per node whose host is
the node's Service name, resolved by the simulator's registry (ALTIBASE_SIM_STATE_DIR).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from altibase_sim.control import SimulatorControl, start_daemon, stop_daemon
from altibase_sim.registry import STATE_DIR_ENV
from tests.dags.conftest import DAGS, dag_test_with_defaults, load_dag
from tests.fakes.kubernetes_api import FakeApiServer, pod, rolled_out

pytestmark = pytest.mark.e2e
CONN_IDS = ["provision_node1", "provision_node2"]
# The seed's pair: one table, both servers sending (the DAG's defaults build the pair the DDL DAG expects:
# two tables, Active-Standby; test_a_provisioned_pair_goes_to_the_ddl_dag_and_the_health_dag_as_it_is)
SEED = {"replication_roles": "active_active", "tables": ["t1 (c1 INTEGER PRIMARY KEY, c2 INTEGER)"]}
FAST = {"poke_interval_seconds": 0.2, "ready_timeout_seconds": 20, "proof_timeout_seconds": 20,
        "deleted_timeout_seconds": 20}


@pytest.fixture
def run(tmp_path, monkeypatch, airflow_db) -> Callable[..., Any]:
    """``run(dag_id, **conf)``: one ``dag.test`` of a DAG, with the simulator target and the test's Connection ids.

    ``dag.test`` parses and serialises every DAG of the DAGs folder on each call (Airflow 3.3); each
    call here gets a folder holding only the DAG it runs, which keeps a call at a few seconds."""
    from airflow import settings

    for name in ("altibase_provision", "altibase_teardown", "altibase_replicated_ddl", "altibase_replication_health"):
        (tmp_path / name).mkdir()
        shutil.copy(DAGS / f"{name}.py", tmp_path / name)

    def run_dag(dag_id: str, **overrides: Any) -> Any:
        monkeypatch.setattr(settings, "DAGS_FOLDER", str(tmp_path / dag_id))
        dag = load_dag(dag_id)
        conf = {"target": "simulator", "altibase_conn_ids": CONN_IDS, "dry_run": False}
        conf |= {k: v for k, v in FAST.items() if k in dag.params} | overrides
        return dag_test_with_defaults(dag_id, conf, dag)

    return run_dag


@pytest.fixture
def cluster(tmp_path, monkeypatch) -> Iterator[SimulatorControl]:
    """An empty simulator (the "cluster"), and each node's Connection pointing at its Service name."""
    state_dir = tmp_path / "sim"
    monkeypatch.setenv(STATE_DIR_ENV, str(state_dir))
    for node, conn_id in zip(("node1", "node2"), CONN_IDS, strict=True):
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({
            "conn_type": "altibase", "host": f"altibase-svc-{node}", "port": 20300, "login": "SYS",
            "password": "manager", "extra": {"backend": "simulator"}}))
    control = start_daemon(state_dir)
    try:
        yield control
    finally:
        stop_daemon(state_dir)


def states(dagrun: Any) -> dict[str, str]:
    found: dict[str, str] = {}
    for ti in dagrun.get_task_instances():
        key = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
        found[key] = str(ti.state)
    return found


def dagrun_tis(dagrun: Any, task_id: str) -> list[Any]:
    return [ti for ti in dagrun.get_task_instances() if ti.task_id == task_id]


def assert_success(dagrun: Any) -> dict[str, str]:
    found = states(dagrun)
    assert str(dagrun.state) == "success", {t: s for t, s in found.items() if s != "success"}
    return found


def query(sim: SimulatorControl, server: str, sql: str) -> list[tuple]:
    with sim.connect(server) as conn:
        return conn.cursor().execute(sql).fetchall()


def replications(sim: SimulatorControl, server: str) -> list[tuple]:
    return query(sim, server, "SELECT REPLICATION_NAME, IS_STARTED, ITEM_COUNT FROM SYSTEM_.SYS_REPLICATIONS_")


def test_pair_provisioned_proven_reprovisioned_and_torn_down(cluster, run):
    first_run = run("altibase_provision", **SEED)
    first = assert_success(first_run)
    assert all(s == "success" for s in first.values()), first
    servers = {s["name"]: s["aliases"] for s in cluster.servers()}
    assert servers == {
        "altibase-node1": ["altibase-svc-node1", "altibase-svc-node1.default", "altibase-svc-node1.default.svc",
                           "altibase-svc-node1.default.svc.cluster.local"],
        "altibase-node2": ["altibase-svc-node2", "altibase-svc-node2.default", "altibase-svc-node2.default.svc",
                           "altibase-svc-node2.default.svc.cluster.local"],
    }
    for server, peer in (("altibase-node1", "altibase-svc-node2"), ("altibase-node2", "altibase-svc-node1")):
        assert replications(cluster, server) == [("REP1", 1, 1)]
        assert query(cluster, server, "SELECT HOST_IP, PORT_NO FROM SYSTEM_.SYS_REPL_HOSTS_") == [(peer, 20301)]
        assert query(cluster, server, "SELECT COUNT(*) FROM T1") == [(0,)]  # proof rows removed
    # P7 both ways: each proof row was read on the other node
    assert first["p7_proof.read_on_peer[0]"] == first["p7_proof.read_on_peer[1]"] == "success"
    assert sorted(ti.rendered_map_index for ti in dagrun_tis(first_run, "p6_create_objects")) == ["node1", "node2"]

    # The replication really works after the run, both ways.
    query(cluster, "altibase-node2", "INSERT INTO T1 VALUES (10, 10)")
    query(cluster, "altibase-node2", "ALTER REPLICATION REP1 FLUSH WAIT 10")
    assert query(cluster, "altibase-node1", "SELECT C1, C2 FROM T1") == [(10, 10)]
    query(cluster, "altibase-node1", "DELETE FROM T1 WHERE C1 = 10")
    query(cluster, "altibase-node1", "ALTER REPLICATION REP1 FLUSH WAIT 10")

    again = assert_success(run("altibase_provision", **SEED))
    assert all(s == "success" for s in again.values()), again
    assert [s["name"] for s in cluster.servers()] == ["altibase-node1", "altibase-node2"]
    for server in ("altibase-node1", "altibase-node2"):
        assert replications(cluster, server) == [("REP1", 1, 1)]  # nothing duplicated
        assert query(cluster, server, "SELECT COUNT(*) FROM SYSTEM_.SYS_TABLES_ WHERE TABLE_NAME = 'T1'") == [(1,)]
        assert query(cluster, server, "SELECT COUNT(*) FROM T1") == [(0,)]

    looked = run("altibase_teardown", dry_run=True)
    assert states(looked)["delete_instance"] == "skipped"
    plan = looked.get_task_instance("plan").xcom_pull(task_ids="plan", key="plan")
    assert "on node2 (provision_node2): ALTER REPLICATION REP1 STOP; then DROP REPLICATION REP1;" in plan["text"]
    assert plan["objects"] == ["simulator server altibase-node1", "simulator server altibase-node2"]
    assert len(cluster.servers()) == 2 and replications(cluster, "altibase-node2") == [("REP1", 1, 1)]

    gone = assert_success(run("altibase_teardown"))
    assert gone["stop_replication[0]"] == gone["drop_replication[1]"] == "success"
    assert cluster.servers() == []
    # The data was kept: the same server opened again has its table, and no replication.
    cluster.add_server("altibase-node1")
    assert replications(cluster, "altibase-node1") == []
    assert query(cluster, "altibase-node1", "SELECT COUNT(*) FROM T1") == [(0,)]
    cluster.remove_server("altibase-node1")


def test_dry_run_shows_manifests_and_sql_and_changes_nothing(cluster, run):
    dagrun = run("altibase_provision", dry_run=True, **SEED)
    found = assert_success(dagrun)
    assert found["plan"] == "success" and found["apply"] == "skipped"
    plan = dagrun.get_task_instance("plan").xcom_pull(task_ids="plan", key="plan")
    assert "kind: Deployment" in plan["manifests"] and "name: altibase-svc-node2" in plan["manifests"]
    assert "CREATE REPLICATION REP1 WITH 'altibase-svc-node2', 20301 FROM SYS.T1 TO SYS.T1;" in plan["text"]
    assert "INSERT INTO T1 VALUES (1, 1);" in plan["text"]
    assert cluster.servers() == []


class FakeCluster(FakeApiServer):
    """The fake API server plus a controller: a created Deployment gets its Ready pod at once, and the
    pod's server is a simulator server answering the node's Service names."""

    def __init__(self, sim: SimulatorControl):
        super().__init__()
        self.sim = sim

    def request(self, method, url, body=None, fields=None, headers=None, **kwargs):
        response = super().request(method, url, body=body, fields=fields, headers=headers, **kwargs)
        created = json.loads(body) if method == "POST" and body else None
        if created and created["kind"] == "Deployment":
            labels = created["spec"]["template"]["metadata"]["labels"]
            name, node = created["metadata"]["name"], labels["altibase.io/node"]
            self.put("pods", pod(f"{name}-7d9f", labels, ready=True))
            rolled_out(self)
            self.sim.add_server(name, aliases=[f"altibase-svc-{node}", f"altibase-svc-{node}.default.svc"])
        return response


def test_kubernetes_target_applies_waits_and_runs_the_sql_through_the_services(cluster, run, monkeypatch):
    """The kubernetes target end to end without a cluster: the Kubernetes API is a fake (asserted
    below), the pods' servers are simulator servers reached through the Service names."""
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
    from kubernetes.client import ApiClient, Configuration

    api = FakeCluster(cluster)
    api.put("secrets", {"metadata": {"name": "altibase-sys-password", "namespace": "default"},
                        "data": {"password": "bWFuYWdlcg=="}})
    client = ApiClient(Configuration(host="https://kubernetes.invalid"))
    client.rest_client.pool_manager = api
    monkeypatch.setattr(KubernetesHook, "get_conn", lambda hook: client)

    found = assert_success(run("altibase_provision", target="kubernetes", topology="single"))
    assert found["p6_start_replication[0]"] == "skipped"  # a single server: no replication, no proof
    assert {s for t, s in found.items() if t.startswith("p7_proof.")} == {"skipped"}
    writes = [(r.method, r.plural, r.body["metadata"]["name"]) for r in api.calls() if r.method != "GET"]
    assert writes == [("POST", "persistentvolumeclaims", "altibase-data-node1"),  # the form's storage: pvc
                      ("POST", "services", "altibase-svc-node1"), ("POST", "deployments", "altibase-node1")]
    reads = [(r.plural, r.name) for r in api.calls("GET")]
    assert reads[0] == ("secrets", "altibase-sys-password")  # the Secret is checked before anything is made
    assert ("pods", None) in reads and ("deployments", "altibase-node1") in reads  # the readiness wait
    assert query(cluster, "altibase-node1", "SELECT COUNT(*) FROM SYSTEM_.SYS_TABLES_ WHERE TABLE_NAME = 'T1'") \
        == [(1,)]


def test_provisioning_with_its_defaults_uses_connections_named_after_its_services_and_the_pair_joins_the_fleet(
        cluster, run, monkeypatch, tmp_path):
    """As under ``make ui``: altibase_node1/2 belong to another pair (the DDL DAG's defaults), so the default
    instance is reached through altibase_svc_node1/2 (make ui creates them); the pair it built joins the
    fleet's file, and the DDL and health DAGs use it by name in the same process — no restart."""
    import importlib.util

    from airflow import settings

    from altibase_ops.provision.request import provision_params

    for node in ("node1", "node2"):
        monkeypatch.setenv(f"AIRFLOW_CONN_ALTIBASE_{node.upper()}", json.dumps({  # another pair's: not touched
            "conn_type": "altibase", "host": "127.0.0.1", "port": 1, "login": "SYS", "password": "manager",
            "extra": {"backend": "simulator"}}))
        monkeypatch.setenv(f"AIRFLOW_CONN_ALTIBASE_SVC_{node.upper()}", json.dumps({
            "conn_type": "altibase", "host": f"altibase-svc-{node}", "port": 20300, "login": "SYS",
            "password": "manager", "extra": {"backend": "simulator"}}))
    fleet_file = tmp_path / "pairs.json"
    monkeypatch.setenv("ALTIBASE_PAIRS_FILE", str(fleet_file))
    monkeypatch.delenv("ALTIBASE_PAIRS", raising=False)

    defaults = {name: param.value for name, param in provision_params().items()}
    assert defaults["altibase_conn_ids"] == []  # the form's default: named after the Services
    assert_success(run("altibase_provision", **{**defaults, **FAST, "dry_run": False}))
    (pair,) = json.loads(fleet_file.read_text())
    assert pair == {"name": "altibase", "replication_name": "REP1", "service_control": {"mode": "simulator"},
                    "servers": [{"name": "node1", "conn_id": "altibase_svc_node1", "role": "active"},
                                {"name": "node2", "conn_id": "altibase_svc_node2", "role": "standby"}]}

    def parsed_now(dag_id: str) -> Any:  # as the dag-processor's next parse: the file read again
        monkeypatch.setattr(settings, "DAGS_FOLDER", str(tmp_path / dag_id))
        spec = importlib.util.spec_from_file_location(f"fresh_{dag_id}", tmp_path / dag_id / f"{dag_id}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.dag

    ddl_dag = parsed_now("altibase_replicated_ddl")
    assert "altibase" in ddl_dag.params.get_param("pair").schema["enum"]  # the form's Pair list
    changed = dag_test_with_defaults("altibase_replicated_ddl", {"pair": "altibase", "dry_run": False,
                                                                 "poke_interval_seconds": 0.2}, ddl_dag)
    assert str(changed.state) == "success", states(changed)
    for server in ("altibase-node1", "altibase-node2"):
        assert ("C3",) in query(cluster, server, "SELECT c.COLUMN_NAME FROM SYSTEM_.SYS_COLUMNS_ c, "
                                                 "SYSTEM_.SYS_TABLES_ t WHERE c.TABLE_ID = t.TABLE_ID AND "
                                                 "t.TABLE_NAME = 'T1'"), server

    health_dag = parsed_now("altibase_replication_health")
    assert [p["name"] for p in health_dag.params["pairs"]] == ["pair1", "altibase"]  # the fleet, as parsed now
    only_new = [p for p in health_dag.params["pairs"] if p["name"] == "altibase"]
    checked = dag_test_with_defaults("altibase_replication_health", {"pairs": only_new, "stall_check_seconds": 0},
                                     health_dag)
    assert str(checked.state) == "success", states(checked)
    assert sorted(ti.rendered_map_index for ti in dagrun_tis(checked, "check_server")) == \
        ["altibase/node1", "altibase/node2"]

    assert_success(run("altibase_teardown", altibase_conn_ids=[]))  # and the teardown takes it out again
    assert json.loads(fleet_file.read_text()) == []


def test_a_provisioned_pair_goes_to_the_ddl_dag_and_the_health_dag_as_it_is(cluster, run, monkeypatch):
    """Provisioning with its defaults builds the pair the DDL DAG's defaults expect (two tables;
    Active-Standby: node1 sends, node2 does not), reached through the same Connections (altibase_node1/2,
    the Service names): provision → DDL → health, no new Connection, no manual step between."""
    conn_ids = ["altibase_node1", "altibase_node2"]
    for node, conn_id in zip(("node1", "node2"), conn_ids, strict=True):
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({
            "conn_type": "altibase", "host": f"altibase-svc-{node}", "port": 20300, "login": "SYS",
            "password": "manager", "extra": {"backend": "simulator"}}))
    from altibase_ops.provision.request import provision_params

    # the form's defaults, given in full: dag.test keeps an earlier call's conf in the DAG object's params
    defaults = {name: param.value for name, param in provision_params().items()}
    provisioned = run("altibase_provision", **{**defaults, **FAST, "altibase_conn_ids": conn_ids, "dry_run": False})
    found = assert_success(provisioned)
    # P7 from the active only (node1 → node2); the standby sends nothing, so its proof skips itself
    assert (found["p7_proof.read_on_peer[0]"], found["p7_proof.read_on_peer[1]"]) == ("success", "skipped")
    assert replications(cluster, "altibase-node1") == [("REP1", 1, 2)]
    assert replications(cluster, "altibase-node2") == [("REP1", 0, 2)]  # the standby receives only
    verified = provisioned.get_task_instance("verify").xcom_pull(task_ids="verify")
    assert verified["pair"]["servers"] == [{"name": "node1", "conn_id": "altibase_node1", "role": "active"},
                                           {"name": "node2", "conn_id": "altibase_node2", "role": "standby"}]

    # the DDL DAG's defaults (given in full, as above), the service stopped by the simulator, a real run
    changed = run("altibase_replicated_ddl", servers=[{"name": "node1", "conn_id": "altibase_node1", "role": "active"},
                                                      {"name": "node2", "conn_id": "altibase_node2", "role": "standby"}],
                  topology="active_standby", service_mode="can_stop", replication_name="REP1", tables=["SYS.T1"],
                  ddl=["ALTER TABLE SYS.T1 ADD COLUMN (C3 INTEGER)"], pair="", recover=False, not_before=None,
                  not_after=None, service_control={"mode": "simulator"}, poke_interval_seconds=0.2)
    assert str(changed.state) == "success", states(changed)
    for server in ("altibase-node1", "altibase-node2"):
        assert ("C3",) in query(cluster, server, "SELECT c.COLUMN_NAME FROM SYSTEM_.SYS_COLUMNS_ c, "
                                                 "SYSTEM_.SYS_TABLES_ t WHERE c.TABLE_ID = t.TABLE_ID AND "
                                                 "t.TABLE_NAME = 'T1'"), server

    from altibase_ops.pairs import DEFAULT_PAIRS

    checked = run("altibase_replication_health", pairs=DEFAULT_PAIRS, stall_check_seconds=0)
    assert str(checked.state) == "success", states(checked)
