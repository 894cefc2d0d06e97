"""The DDL run's cluster gates (``ddl/cluster.py``), checked in validate_params before anything changes:
kubernetes service control never names a Service of the database's own. The pair is the simulator's
(its Connections reach the servers by the names ``node1``/``node2``, as Connections reach Services in a
cluster; its replication sends to ``'node2'``/``'node1'``); the cluster is the fake API server under the
real client."""

from __future__ import annotations

import json
import logging

import pytest
from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
from kubernetes.client import ApiClient, Configuration

from altibase_ops.ddl.cluster import check_cluster
from altibase_ops.ddl.preflight import PreflightError
from altibase_ops.service.guard import names_service
from altibase_sim.scenarios import seed_replicated_pair
from tests.fakes.kubernetes_api import FakeApiServer, pod
from tests.plugins.altibase_ops.ddl.test_restore_matrix import request_for

log = logging.getLogger("cluster-gates")
DB_LABELS = {"app.kubernetes.io/name": "altibase", "app.kubernetes.io/instance": "altibase",
             "app.kubernetes.io/component": "database", "app.kubernetes.io/managed-by": "altibase-airflow-ops"}


def pod_labels(node: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "altibase", "altibase.io/node": node}


@pytest.fixture
def pair(sim, monkeypatch):
    """The pair, with Connections whose host is the server's name (a Service name in a cluster)."""
    seed_replicated_pair(sim, topology="active_active")
    for server in sim.servers():
        monkeypatch.setenv(f"AIRFLOW_CONN_ALTIBASE_{server['name'].upper()}", json.dumps({
            "conn_type": "altibase", "host": server["name"], "port": 20300, "login": "SYS", "password": "manager",
            "extra": {"backend": "simulator"}}))
    return sim


@pytest.fixture
def cluster(monkeypatch):
    """Namespace db: each server's own Service (named as the server, made by provisioning) and a client
    Service of the application's own per server, both selecting the server's pods. Every KubernetesHook
    of the test talks to it."""
    server = FakeApiServer()
    client = ApiClient(Configuration(host="https://kubernetes.invalid"))
    client.rest_client.pool_manager = server
    monkeypatch.setattr(KubernetesHook, "get_conn", lambda hook: client)
    for node in ("node1", "node2"):
        server.put("pods", {**pod(f"altibase-{node}-0", pod_labels(node), ready=True),
                            "metadata": {"name": f"altibase-{node}-0", "namespace": "db", "labels": pod_labels(node)}})
        server.put("services", {"metadata": {"name": node, "namespace": "db", "labels": DB_LABELS},
                                "spec": {"selector": pod_labels(node), "clusterIP": f"10.96.0.{node[-1]}"}})
        server.put("services", {"metadata": {"name": f"app-{node}", "namespace": "db"},
                                "spec": {"selector": pod_labels(node), "clusterIP": f"10.96.1.{node[-1]}"}})
    return server


def control(services: dict[str, str]) -> dict:
    return {"mode": "kubernetes", "namespace": "db", "services": services,
            "server_selectors": {n: pod_labels(n) for n in ("node1", "node2")}, "endpoint_timeout_seconds": 2}


def test_service_control_on_a_service_the_connections_and_replication_use_is_refused_naming_why(pair, cluster):
    request = request_for(pair, "active_active", "rolling", service_control=control({"node1": "node1",
                                                                                      "node2": "app-node2"}))
    with pytest.raises(PreflightError) as info:
        check_cluster(request, log)
    text = str(info.value)
    assert "service_control.services.node1: Service node1 in db is the database's own Service" in text
    assert "node1's Connection altibase_node1 reaches the database through it (node1)" in text
    assert "node2's replication REP1 (SYS_REPL_HOSTS_) reaches the database through it (node1)" in text
    assert "altibase_provision made it for the database itself" in text
    assert "services.node2" not in text  # the application's own Service is fine
    assert not cluster.calls("PATCH")  # nothing was changed


def test_a_service_provisioning_made_for_the_database_is_refused_even_under_another_name(pair, cluster):
    cluster.put("services", {"metadata": {"name": "altibase-svc-node1", "namespace": "db", "labels": DB_LABELS},
                             "spec": {"selector": pod_labels("node1")}})
    request = request_for(pair, "active_active", "can_stop", service_control=control({"node1": "altibase-svc-node1"}))
    with pytest.raises(PreflightError, match=r"services.node1: Service altibase-svc-node1 in db is the database's "
                                             r"own Service: altibase_provision made it for the database itself"):
        check_cluster(request, log)


def test_client_services_of_the_applications_own_pass(pair, cluster):
    request = request_for(pair, "active_active", "rolling",
                          service_control=control({"node1": "app-node1", "node2": "app-node2"}))
    check_cluster(request, log)
    assert [r.name for r in cluster.calls("GET")] == ["app-node1", "app-node2"]


@pytest.mark.parametrize("host, reached", [
    ("altibase-svc-node1", True), ("altibase-svc-node1.db", True), ("altibase-svc-node1.db.svc", True),
    ("ALTIBASE-SVC-NODE1.db.svc.cluster.local.", True), ("10.96.0.1", True), ("altibase-svc-node1.other.svc", False),
    ("altibase-svc-node10", False), ("10.96.0.2", False), ("", False)])
def test_a_service_is_recognised_by_every_name_and_address_that_reaches_it(host, reached):
    assert names_service(host, "altibase-svc-node1", "db", ["10.96.0.1", "None"]) is reached
