"""The tasks of altibase_provision / altibase_teardown, one at a time.

Kubernetes target: the tasks build their clients from a real ``KubernetesHook`` whose API client talks
to ``FakeApiServer`` (test_kube_apply's stand-in for the API server under the kubernetes client), so
the assertions are on the HTTP calls a cluster would receive. Simulator target and the SQL: a real
simulator daemon, reached through the Service names as in a cluster.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
from airflow.sdk.exceptions import AirflowSkipException
from kubernetes.client import ApiClient, Configuration

from altibase_ops.provision.inspect import NodeState, plan_teardown, state_problems
from altibase_ops.provision.kube_apply import ApplyError, PodStartupError
from altibase_ops.provision.operators import (
    ApplyInstanceOperator,
    DeleteInstanceOperator,
    InstanceDeletedSensor,
    InstanceReadySensor,
    ProofRowOperator,
    ProvisionIsqlOperator,
)
from altibase_ops.provision.plan import plan_provisioning
from altibase_ops.provision.request import (
    ProvisionError,
    ProvisionRequest,
    connection_problems,
    provision_params,
    teardown_params,
)
from altibase_ops.provision.simulator_target import simulator_apply, simulator_teardown
from altibase_ops.provision.spec import ProvisionSpec
from altibase_sim.control import SimulatorControl, start_daemon, stop_daemon
from altibase_sim.registry import STATE_DIR_ENV
from tests.fakes.kubernetes_api import (
    FakeApiServer,
    deployment_pod_labels,
    pod,
    rolled_out,
)

CONN_IDS = ["prov_unit_node1", "prov_unit_node2"]
SECRET = {"metadata": {"name": "altibase-sys-password", "namespace": "default"}, "data": {"password": "bWFuYWdlcg=="}}


# The seed's pair (one table, both sending); the form's defaults build the DDL DAG's Active-Standby pair
SEED = {"replication_roles": "active_active", "tables": ["t1 (c1 INTEGER PRIMARY KEY, c2 INTEGER)"]}


def params(**overrides: Any) -> dict[str, Any]:
    """The provisioning form's defaults, as a run would carry them, for the seed's pair, with ``overrides``."""
    values = {name: param.value for name, param in provision_params().items()}
    values |= {"altibase_conn_ids": CONN_IDS, "dry_run": False, "poke_interval_seconds": 0.1, **SEED}
    return values | overrides


def context(**overrides: Any) -> dict[str, Any]:
    return {"params": params(**overrides)}


def request(**overrides: Any) -> ProvisionRequest:
    return ProvisionRequest.from_params(params(**overrides))


@pytest.fixture
def conns(monkeypatch) -> None:
    """Each node's Connection, host = its Service name (as a cluster's DNS knows it)."""
    for node, conn_id in zip(("node1", "node2"), CONN_IDS, strict=True):
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({
            "conn_type": "altibase", "host": f"altibase-svc-{node}", "port": 20300, "login": "SYS",
            "password": "manager", "extra": {"backend": "simulator"}}))


@pytest.fixture
def sim(tmp_path, monkeypatch, conns) -> Iterator[SimulatorControl]:
    """An empty simulator that resolves the Service names once servers are registered under them."""
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path / "sim"))
    control = start_daemon(tmp_path / "sim")
    try:
        yield control
    finally:
        stop_daemon(tmp_path / "sim")


@pytest.fixture
def api(monkeypatch) -> FakeApiServer:
    """The Kubernetes API every KubernetesHook of the test talks to; records which connection asked."""
    server = FakeApiServer()
    server.conn_ids = []
    client = ApiClient(Configuration(host="https://kubernetes.invalid"))
    client.rest_client.pool_manager = server

    def get_conn(hook: KubernetesHook) -> ApiClient:
        server.conn_ids.append(hook.conn_id)
        return client

    monkeypatch.setattr(KubernetesHook, "get_conn", get_conn)
    return server


def calls(api: FakeApiServer) -> list[tuple[str, str, str | None]]:
    return [(r.method, r.plural, r.name or (r.body or {}).get("metadata", {}).get("name")) for r in api.calls()]


# --- plan and parameters ----------------------------------------------------------------------------


def test_plan_of_a_pair_maps_each_step_to_its_node(conns):
    plan = plan_provisioning(request())
    node1, node2 = plan["nodes"]
    assert node1["altibase_conn_id"] == CONN_IDS[0] and node1["target_host"] == "altibase-svc-node1.default.svc"
    assert node1["create_objects"] == (
        "CREATE TABLE T1 (C1 INTEGER PRIMARY KEY, C2 INTEGER);\n"
        "CREATE REPLICATION REP1 WITH 'altibase-svc-node2', 20301 FROM SYS.T1 TO SYS.T1;")
    assert "WITH 'altibase-svc-node1', 20301" in node2["create_objects"]
    assert node1["start_replication"] == node2["start_replication"] == "ALTER REPLICATION REP1 START;"
    assert node1["proof"] == {"peer": "node2", "peer_conn_id": CONN_IDS[1], "insert": "INSERT INTO T1 VALUES (1, 1);",
                              "select": "SELECT * FROM T1 WHERE C1 = 1;", "delete": "DELETE FROM T1 WHERE C1 = 1;"}
    assert node2["proof"]["insert"] == "INSERT INTO T1 VALUES (2, 2);"
    assert "kind: Deployment" in plan["manifests"] and "SLAVE_REP_PORT" in plan["manifests"]
    assert "P7 node2 -> node1" in plan["text"]


def test_the_forms_defaults_plan_the_pair_the_ddl_dag_expects(conns):
    defaults = {name: param.value for name, param in provision_params().items()}
    plan = plan_provisioning(request(replication_roles=defaults["replication_roles"], tables=defaults["tables"]))
    node1, node2 = plan["nodes"]
    for node in (node1, node2):  # two tables: the DDL DAG never has to take out a replication's last one
        assert "FROM SYS.T1 TO SYS.T1, FROM SYS.T2 TO SYS.T2;" in node["create_objects"]
    # Active-Standby: only the active sends, and P7 proves active -> standby
    assert node1["start_replication"] == "ALTER REPLICATION REP1 START;" and node2["start_replication"] is None
    assert node1["proof"]["peer"] == "node2" and node2["proof"] is None


def test_the_form_keeps_the_database_across_pod_deletions_and_emptydir_is_loud(conns):
    form = provision_params()
    assert form["storage"].value == "pvc" and "deletes its database" in form["storage"].description
    kept = plan_provisioning(request(target="kubernetes"))
    assert kept["warnings"] == []
    assert ("Storage: a pod deletion loses nothing: dbs and logs live on the claims altibase-data-node1, "
            "altibase-data-node2") in kept["text"]
    lost = plan_provisioning(request(target="kubernetes", storage="emptydir"))
    assert lost["warnings"] == [line for line in lost["text"].splitlines() if line.startswith("WARNING")]
    (warning,) = lost["warnings"]
    assert warning.startswith("WARNING: storage emptydir — a pod deletion loses EVERYTHING on that server")
    assert "replication objects" in warning
    stateful = plan_provisioning(request(target="kubernetes", workload="statefulset"))["text"]
    assert "the claims data-altibase-0, data-altibase-1" in stateful  # the StatefulSet's template names them


def test_plan_of_a_single_server_has_tables_only(conns):
    (node1,) = plan_provisioning(request(topology="single"))["nodes"]
    assert node1["create_objects"] == "CREATE TABLE T1 (C1 INTEGER PRIMARY KEY, C2 INTEGER);"
    assert node1["start_replication"] is None and node1["proof"] is None


def test_a_connection_must_point_at_its_nodes_service(conns, monkeypatch):
    monkeypatch.setenv(STATE_DIR_ENV, "/tmp/state")
    assert connection_problems(request()) == []
    monkeypatch.setenv("AIRFLOW_CONN_PROV_UNIT_NODE2", json.dumps({
        "conn_type": "altibase", "host": "other-svc-node2.default.svc", "port": 20400,
        "extra": {"backend": "simulator"}}))
    assert connection_problems(request()) == [
        "node2: Connection 'prov_unit_node2' has host 'other-svc-node2.default.svc', not node2's Service "
        "altibase-svc-node2 (or altibase-svc-node2.default.svc)",
        "node2: Connection 'prov_unit_node2' has port 20400, not the service port 20300",
    ]
    monkeypatch.setenv("AIRFLOW_CONN_PROV_UNIT_NODE2", json.dumps({
        "conn_type": "altibase", "host": "altibase-svc-node2.default.svc.cluster.local", "port": 20300}))
    assert connection_problems(request()) == [  # a Connection must name its backend
        "node2: Connection prov_unit_node2 has no 'backend' extra: set its extra 'backend' to 'odbc' (a real "
        "Altibase: also 'driver', the Altibase ODBC driver library) or 'simulator' (the embedded simulator), e.g. "
        '{"backend": "odbc", "driver": "/opt/altibase/lib/libaltibase_odbc-64bit-ul64.so"}']
    monkeypatch.setenv("AIRFLOW_CONN_PROV_UNIT_NODE2", json.dumps({
        "conn_type": "altibase", "host": "altibase-svc-node2.default.svc.cluster.local", "port": 20300,
        "extra": {"backend": "odbc", "driver": "x.so"}}))
    # the local runner needs the real client for an odbc Connection; the kubernetes runner does not
    assert "ALTIBASE_ISQL_BINARY" in connection_problems(request())[0]
    assert connection_problems(request(runner="kubernetes")) == []
    monkeypatch.setenv("AIRFLOW_CONN_PROV_UNIT_NODE2", json.dumps({
        "conn_type": "altibase", "host": "altibase-svc-node2", "port": 20300, "extra": {"backend": "simulator"}}))
    problems = connection_problems(request(altibase_conn_ids=["prov_unit_node1", "prov_unit_missing"]))
    assert problems == ["node2: Airflow Connection 'prov_unit_missing' not found; create it (type altibase, "
                        "host altibase-svc-node2, port 20300, login SYS)"]
    monkeypatch.delenv(STATE_DIR_ENV)
    assert "ALTIBASE_SIM_STATE_DIR" in connection_problems(request(target="simulator"))[0]
    assert connection_problems(request(target="kubernetes")) == []


def test_params_are_validated_together():
    with pytest.raises(ProvisionError, match="altibase_conn_ids: 2 needed for topology pair"):
        request(altibase_conn_ids=["one"])
    with pytest.raises(ProvisionError, match="target 'cloud'"):
        request(target="cloud")


def test_existing_objects_that_differ_are_refused(conns):
    wanted = request()
    same = NodeState("node1", {"T1": [("C1", 4), ("C2", 4)]},
                     {"started": True, "items": ["SYS.T1"], "hosts": [("altibase-svc-node2", 20301)]})
    assert state_problems(wanted, same) == []
    resolved = NodeState("node1", {}, {"started": False, "items": ["SYS.T1"], "hosts": [("10.0.0.7", 20301)]})
    assert state_problems(wanted, resolved) == []  # an address the server resolved cannot be compared
    other = NodeState("node1", {"T1": [("C1", 4), ("C2", 12)]},
                      {"started": True, "items": ["SYS.T1", "SYS.T2"], "hosts": [("altibase-svc-node9", 20999)]})
    assert state_problems(wanted, other) == [
        "node1: table SYS.T1 exists with columns [('C1', 4), ('C2', 12)] (name, type code), not [('C1', 4), ('C2', 4)]",
        "node1: replication REP1 exists with tables ['SYS.T1', 'SYS.T2'], not ['SYS.T1']",
        "node1: replication REP1 sends to port 20999, not 20301",
        "node1: replication REP1 sends to 'altibase-svc-node9', not node2's Service altibase-svc-node2",
    ]
    assert state_problems(request(topology="single"), same) == [
        "node1: replication REP1 exists, but topology single creates none; tear it down first"]


# --- kubernetes target --------------------------------------------------------------------------------


def test_apply_checks_the_secret_then_creates_and_a_rerun_changes_nothing(api, conns):
    api.put("secrets", SECRET)
    ApplyInstanceOperator(task_id="apply").execute(context(target="kubernetes", kubernetes_conn_id="k8s_prod"))
    assert set(api.conn_ids) == {"k8s_prod"}  # the access review and the writes alike
    writes = [c for c in calls(api) if c[0] != "GET"]
    # the form's default storage: a claim per node, first
    assert writes == [("POST", "persistentvolumeclaims", "altibase-data-node1"),
                      ("POST", "persistentvolumeclaims", "altibase-data-node2"),
                      ("POST", "services", "altibase-svc-node1"), ("POST", "services", "altibase-svc-node2"),
                      ("POST", "deployments", "altibase-node1"), ("POST", "deployments", "altibase-node2")]
    assert calls(api)[0] == ("GET", "secrets", "altibase-sys-password")  # before anything is created

    api.requests.clear()
    result = ApplyInstanceOperator(task_id="apply").execute(context(target="kubernetes"))
    assert {c[0] for c in calls(api)} == {"GET"}  # create-or-update: read, found unchanged, nothing written
    assert result == ["PersistentVolumeClaim/altibase-data-node1: unchanged",
                      "PersistentVolumeClaim/altibase-data-node2: unchanged",
                      "Service/altibase-svc-node1: unchanged", "Service/altibase-svc-node2: unchanged",
                      "Deployment/altibase-node1: unchanged", "Deployment/altibase-node2: unchanged"]

    api.requests.clear()
    ApplyInstanceOperator(task_id="apply").execute(context(target="kubernetes", image="altibase/altibase:7.3.0.1"))
    assert [c for c in calls(api) if c[0] != "GET"] == [("PATCH", "deployments", "altibase-node1"),
                                                        ("PATCH", "deployments", "altibase-node2")]


def test_apply_without_the_secret_creates_nothing(api, conns):
    with pytest.raises(ApplyError, match="Secret altibase-sys-password not found"):
        ApplyInstanceOperator(task_id="apply").execute(context(target="kubernetes"))
    assert [c[0] for c in calls(api)] == ["GET"]


def test_readiness_waits_for_ready_pods_then_for_logins(api, sim):
    spec = ProvisionSpec()
    api.put("secrets", SECRET)
    ApplyInstanceOperator(task_id="apply").execute(context(target="kubernetes"))
    sensor = InstanceReadySensor(task_id="wait_until_ready")
    assert sensor.mode == "reschedule"  # minutes of image pulls hold no worker slot
    api.requests.clear()
    assert sensor.poke(context(target="kubernetes")) is False
    assert [(c[0], c[1]) for c in calls(api)] == [("GET", "pods"), ("GET", "pods")]  # each node's pods

    rolled_out(api)
    for node in spec.nodes:
        api.put("pods", pod(f"altibase-{node}-abc", deployment_pod_labels(node), ready=True))
    assert sensor.poke(context(target="kubernetes")) is False  # pods Ready, but nothing answers the Services yet
    for node in spec.nodes:  # the pods' servers, reachable under the Service names
        sim.add_server(f"altibase-{node}", aliases=[f"altibase-svc-{node}"])
    assert sensor.poke(context(target="kubernetes")) is True


def test_readiness_fails_at_once_on_a_bad_image(api, conns):
    api.put("secrets", SECRET)
    ApplyInstanceOperator(task_id="apply").execute(context(target="kubernetes"))
    api.put("pods", pod("altibase-node1-abc", deployment_pod_labels("node1"), waiting="InvalidImageName"))
    with pytest.raises(PodStartupError, match="InvalidImageName"):
        InstanceReadySensor(task_id="wait_until_ready").poke(context(target="kubernetes"))


def test_teardown_deletes_workloads_and_services_and_keeps_claims_unless_asked(api, conns):
    api.put("secrets", SECRET)
    ApplyInstanceOperator(task_id="apply").execute(context(target="kubernetes", storage="pvc"))
    teardown_context = {"params": {name: p.value for name, p in teardown_params().items()}
                        | {"target": "kubernetes", "altibase_conn_ids": CONN_IDS}}
    api.requests.clear()
    DeleteInstanceOperator(task_id="delete_instance").execute(teardown_context)
    assert sorted(c for c in calls(api) if c[0] == "DELETE") == [
        ("DELETE", "deployments", "altibase-node1"), ("DELETE", "deployments", "altibase-node2"),
        ("DELETE", "services", "altibase-svc-node1"), ("DELETE", "services", "altibase-svc-node2")]
    assert api.names("persistentvolumeclaims") == {"altibase-data-node1", "altibase-data-node2"}
    assert InstanceDeletedSensor(task_id="wait").poke(teardown_context) is True

    teardown_context["params"]["delete_data"] = True
    DeleteInstanceOperator(task_id="delete_instance").execute(teardown_context)
    assert api.names("persistentvolumeclaims") == set()


def test_teardown_refuses_to_strand_the_replication_of_a_node_that_does_not_answer(api, sim):
    api.put("secrets", SECRET)
    ApplyInstanceOperator(task_id="apply").execute(context(target="kubernetes"))
    teardown_request = ProvisionRequest.from_params(
        {name: p.value for name, p in teardown_params().items()} | {"target": "kubernetes",
                                                                   "altibase_conn_ids": CONN_IDS})
    with pytest.raises(ProvisionError, match="node1: the server does not answer .* its replication cannot be dropped"):
        plan_teardown(teardown_request, SimpleNamespace(info=lambda *a: None))
    for name in ("deployments", "services"):
        for obj in list(api.names(name)):
            api.objects.pop((name, "default", obj))
    planned = plan_teardown(teardown_request, SimpleNamespace(info=lambda *a: None))
    assert planned["nodes"] == [] and planned["objects"] == []


def test_the_kubernetes_runner_reaches_each_node_by_its_service_with_the_secret(conns):
    """A P6 step as the DAG builds it (runner and Secret from params), rendered, then its pod."""
    (node1, _) = plan_provisioning(request())["nodes"]
    step = ProvisionIsqlOperator(task_id="p6_create_objects", node="node1", altibase_conn_id=node1["altibase_conn_id"],
                                 sql=node1["create_objects"], target_host=node1["target_host"],
                                 step_kind="provision_create")
    step.render_template_fields(context(runner="kubernetes", namespace="dbs", password_secret_name="sys-pw"))
    assert (step.runner, step.namespace, step.sysdba) == ("kubernetes", "dbs", False)
    ti = SimpleNamespace(dag_id="altibase_provision", task_id=step.task_id, map_index=0, try_number=1)
    built = step.build_pod_operator().build_pod_request_obj(
        {"ti": ti, "run_id": "manual__2026-01-01", "dag": SimpleNamespace()}, dry_run=True)
    pod_spec = ApiClient().sanitize_for_serialization(built)
    (container,) = [c for c in pod_spec["spec"]["containers"] if c["name"] == "base"]
    env = {e["name"]: e for e in container["env"]}
    assert pod_spec["metadata"]["namespace"] == "dbs"
    assert container["image"] == "altibase/altibase:7.1.0.5.1"
    assert env["ALTIBASE_HOST"]["value"] == "altibase-svc-node1.default.svc"
    assert env["ALTIBASE_PASSWORD"]["valueFrom"] == {"secretKeyRef": {"name": "sys-pw", "key": "password"}}
    assert "manager" not in json.dumps(pod_spec)


# --- simulator target and the SQL -----------------------------------------------------------------------


def test_simulator_apply_registers_the_service_names_once(sim):
    spec = ProvisionSpec()
    assert simulator_apply(spec) == ["simulator server altibase-node1 (altibase-svc-node1): created",
                                     "simulator server altibase-node2 (altibase-svc-node2): created"]
    assert simulator_apply(spec) == ["simulator server altibase-node1 (altibase-svc-node1): unchanged",
                                     "simulator server altibase-node2 (altibase-svc-node2): unchanged"]
    with pytest.raises(ProvisionError, match=r"servers \['altibase-node2'\] .*another topology"):
        simulator_apply(ProvisionSpec(topology="single"))
    with pytest.raises(ProvisionError, match="another namespace"):
        simulator_apply(ProvisionSpec(namespace="staging"))
    sim.add_server("squatter", aliases=["other-svc-node1"])
    with pytest.raises(ProvisionError, match=r"other-svc-node1 already names simulator server\(s\) \['squatter'\]"):
        simulator_apply(ProvisionSpec(name="other"))


def test_simulator_teardown_keeps_the_files_unless_asked(sim):
    spec = ProvisionSpec()
    simulator_apply(spec)
    with sim.connect("altibase-node1") as conn:
        conn.cursor().execute("CREATE TABLE T9 (C1 INTEGER PRIMARY KEY)")
    assert simulator_teardown(spec, delete_data=False) == [
        "simulator server altibase-node1: removed, files kept", "simulator server altibase-node2: removed, files kept"]
    assert sim.servers() == []
    simulator_apply(spec)  # provisioning again finds the data
    with sim.connect("altibase-node1") as conn:
        assert conn.cursor().execute("SELECT COUNT(*) FROM T9").fetchall() == [(0,)]
    simulator_teardown(spec, delete_data=False)
    assert simulator_teardown(spec, delete_data=True) == [  # a later teardown can still delete what was kept
        "simulator server altibase-node1: absent; any kept files deleted",
        "simulator server altibase-node2: absent; any kept files deleted"]
    simulator_apply(spec)
    with sim.connect("altibase-node1") as conn:
        tables = conn.cursor().execute("SELECT COUNT(*) FROM SYSTEM_.SYS_TABLES_ WHERE TABLE_NAME = 'T9'").fetchall()
    assert tables == [(0,)]


def test_a_proof_row_never_claims_a_row_that_is_already_there(sim):
    simulator_apply(ProvisionSpec())
    with sim.connect("altibase-node1") as conn:
        conn.cursor().execute("CREATE TABLE T1 (C1 INTEGER PRIMARY KEY, C2 INTEGER)")
        conn.cursor().execute("INSERT INTO T1 VALUES (1, 42)")
    insert = ProofRowOperator(task_id="insert_proof_row", altibase_conn_id=CONN_IDS[0],
                              sql="INSERT INTO T1 VALUES (1, 1);")
    with pytest.raises(ProvisionError, match=r"ERR-11058 .* the proof never overwrites it"):
        insert.execute(context())
    with sim.connect("altibase-node1") as conn:
        assert conn.cursor().execute("SELECT C1, C2 FROM T1").fetchall() == [(1, 42)]


def test_steps_a_single_server_does_not_have_are_skipped():
    with pytest.raises(AirflowSkipException, match="topology single"):
        ProvisionIsqlOperator(task_id="p6_start_replication", node="node1", altibase_conn_id="x",
                              sql=None).execute(context(topology="single"))
    with pytest.raises(AirflowSkipException, match="no proof"):
        ProofRowOperator(task_id="insert_proof_row", altibase_conn_id=None, sql=None).execute(
            context(topology="single"))
