"""RBAC (``kube_access.py``): each feature's Role is all it takes — the fake API server enforces it on every
request — and a run whose identity lacks one permission is refused, naming it, before anything changes.
The README gives the same Roles."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
import yaml
from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
from airflow.sdk.exceptions import AirflowNotFoundException
from kubernetes.client import ApiClient, Configuration

from altibase_ops import kube_access
from altibase_ops.ddl.cluster import check_cluster
from altibase_ops.ddl.preflight import PreflightError
from altibase_ops.provision.inspect import plan_teardown
from altibase_ops.provision.manifests import render_manifests
from altibase_ops.provision.operators import (
    ApplyInstanceOperator,
    DeleteInstanceOperator,
    InstanceReadySensor,
)
from altibase_ops.provision.request import ProvisionError, ProvisionRequest, provision_params, teardown_params
from altibase_ops.service.control import perform
from altibase_sim.scenarios import seed_replicated_pair
from tests.fakes.kubernetes_api import FakeApiServer, pod, rolled_out
from tests.plugins.altibase_ops.ddl.test_restore_matrix import request_for

log = logging.getLogger("kube-access")
README = Path(__file__).parents[3] / "README.md"
SECRET = {"metadata": {"name": "altibase-sys-password", "namespace": "default"}, "data": {"password": "bWFuYWdlcg=="}}
POD_LABELS = {n: {"app.kubernetes.io/name": "altibase", "altibase.io/node": n} for n in ("node1", "node2")}


def without(needs: list[kube_access.Permission], verb: str, resource: str) -> list[dict]:
    """The Role of ``needs`` minus one permission."""
    return kube_access.role_rules([n for n in needs if (n.verb, n.resource) != (verb, resource)])


@pytest.fixture
def api(monkeypatch) -> FakeApiServer:
    """The cluster every KubernetesHook of the test talks to."""
    server = FakeApiServer()
    client = ApiClient(Configuration(host="https://kubernetes.invalid"))
    client.rest_client.pool_manager = server
    monkeypatch.setattr(KubernetesHook, "get_conn", lambda hook: client)
    return server


def test_a_missing_permission_is_named_by_verb_resource_and_namespace(api):
    api.grant("db", without(kube_access.ISQL_PODS, "create", "pods/exec"))
    assert kube_access.access_problems("kubernetes_default", {"db": kube_access.ISQL_PODS}, "feature") == [
        "feature: the Kubernetes identity of Connection 'kubernetes_default' may not: create pods/exec in "
        "namespace db. Grant them (README, 'RBAC'); a run that went ahead would fail where it first needs one, "
        "possibly after it changed a server"]
    assert {"namespace": "db", "verb": "create", "group": "", "resource": "pods", "subresource": "exec"} \
        in api.access_reviews  # asked as the API server knows the subresource
    api.grant("db", kube_access.role_rules(kube_access.ISQL_PODS))
    assert kube_access.access_problems("kubernetes_default", {"db": kube_access.ISQL_PODS}, "feature") == []
    assert kube_access.access_problems("kubernetes_default", {"other": kube_access.ISQL_PODS[:1]}, "f") != []


# --- the DDL DAG --------------------------------------------------------------------------------------


def service_cluster(api: FakeApiServer) -> dict:
    for node, labels in POD_LABELS.items():
        api.put("pods", {**pod(f"altibase-{node}-0", labels, ready=True),
                         "metadata": {"name": f"altibase-{node}-0", "namespace": "db", "labels": labels}})
        api.put("services", {"metadata": {"name": f"app-{node}", "namespace": "db"}, "spec": {"selector": labels}})
        api.put("deployments", {"metadata": {"name": f"shop-{node}", "namespace": "db"}, "spec": {
            "replicas": 2, "selector": {"matchLabels": {"app": f"shop-{node}"}},
            "template": {"metadata": {"labels": {"app": f"shop-{node}"}},
                         "spec": {"containers": [{"name": "web", "image": "shop:1"}]}}}})
    return {"mode": "kubernetes", "namespace": "db", "services": {n: f"app-{n}" for n in POD_LABELS},
            "deployments": {n: f"shop-{n}" for n in POD_LABELS}, "server_selectors": POD_LABELS,
            "endpoint_timeout_seconds": 2}


def test_service_controls_role_is_all_it_takes_to_move_the_traffic_and_put_it_back(api):
    control = service_cluster(api)
    api.grant("db", kube_access.role_rules(kube_access.SERVICE_CONTROL))
    perform("move_to_peer", control, "node1", "node2", [], routes={"node1": "node2", "node2": "node2"})
    perform("stop", control, "node2", "node1", [])
    perform("restore", control, "", "", [])
    assert all(api.objects[("services", "db", f"app-{n}")]["spec"]["selector"] == POD_LABELS[n] for n in POD_LABELS)
    api.grant("db", without(kube_access.SERVICE_CONTROL, "list", "endpointslices"))
    with pytest.raises(Exception, match="403"):  # the fake enforces the Role: nothing in the list is spare
        perform("stop", control, "node1", "node2", [])


@pytest.mark.parametrize("runner, service_control, lacking", [
    ("kubernetes", False, ("create", "pods/exec")), ("kubernetes", False, ("get", "pods/log")),
    ("local", True, ("patch", "deployments")), ("local", True, ("list", "endpointslices"))])
def test_a_ddl_run_lacking_a_permission_stops_in_validate_params_naming_it(sim, monkeypatch, api, runner,
                                                                          service_control, lacking):
    seed_replicated_pair(sim, topology="active_active")
    for server in sim.servers():
        monkeypatch.setenv(f"AIRFLOW_CONN_ALTIBASE_{server['name'].upper()}", json.dumps({
            "conn_type": "altibase", "host": server["host"], "port": server["port"], "login": "SYS",
            "password": "manager", "extra": {"backend": "simulator"}}))
    control = service_cluster(api) if service_control else {"mode": "manual"}
    request = request_for(sim, "active_active", "rolling", runner=runner, pod_namespace="db", service_control=control)
    needs = kube_access.ISQL_PODS if runner == "kubernetes" else kube_access.SERVICE_CONTROL
    api.grant("db", without(needs, *lacking))
    with pytest.raises(PreflightError, match=re.escape(f"may not: {lacking[0]} {lacking[1]}")):
        check_cluster(request, log)
    assert api.calls() == []  # only access reviews: nothing read, nothing changed
    api.grant("db", kube_access.role_rules(needs))
    check_cluster(request, log)


# --- provisioning and teardown ------------------------------------------------------------------------


def provision_context(**overrides) -> dict:
    values = {name: param.value for name, param in provision_params().items()}
    return {"params": values | {"altibase_conn_ids": ["n1", "n2"], "target": "kubernetes", "dry_run": False,
                                **overrides}}


def test_provisioning_with_its_role_applies_and_waits_and_without_one_permission_creates_nothing(api):
    api.put("secrets", SECRET)
    spec = ProvisionRequest.from_params(provision_context()["params"]).spec
    needs = kube_access.provisioning({m["kind"] for m in render_manifests(spec)}, runner="local")
    api.grant("default", without(needs, "create", "persistentvolumeclaims"))
    with pytest.raises(ProvisionError, match=r"may not: create persistentvolumeclaims in namespace default"):
        ApplyInstanceOperator(task_id="apply").execute(provision_context())
    assert api.calls() == []
    api.grant("default", kube_access.role_rules(needs))  # enforced on every request from here on
    ApplyInstanceOperator(task_id="apply").execute(provision_context())
    assert api.names("persistentvolumeclaims") == {"altibase-data-node1", "altibase-data-node2"}
    rolled_out(api)
    for node in ("node1", "node2"):
        labels = {**POD_LABELS[node], "app.kubernetes.io/instance": "altibase"}
        api.put("pods", {**pod(f"altibase-{node}-x", labels, ready=True),
                         "metadata": {"name": f"altibase-{node}-x", "namespace": "default", "labels": labels}})
    api.requests.clear()
    with pytest.raises(AirflowNotFoundException, match="n1"):  # past the cluster's reads, at the first login
        InstanceReadySensor(task_id="wait").poke(provision_context())
    assert {(r.method, r.plural) for r in api.calls()} == {("GET", "pods"), ("GET", "deployments")}


def test_teardown_is_refused_before_it_reads_anything_without_its_role_and_runs_with_it(api):
    params = {name: p.value for name, p in teardown_params().items()} | {
        "target": "kubernetes", "altibase_conn_ids": ["n1", "n2"], "topology": "single", "delete_data": True}
    request = ProvisionRequest.from_params(params)
    needs = kube_access.teardown(delete_data=True, runner="local")
    api.grant("default", without(needs, "delete", "persistentvolumeclaims"))
    with pytest.raises(ProvisionError, match="may not: delete persistentvolumeclaims in namespace default"):
        plan_teardown(request, log)
    assert api.calls() == []
    api.grant("default", kube_access.role_rules(needs))
    api.put("persistentvolumeclaims", {"metadata": {"name": "altibase-data-node1", "namespace": "default", "labels": {
        "app.kubernetes.io/instance": "altibase", "app.kubernetes.io/managed-by": "altibase-airflow-ops"}},
        "spec": {}})
    DeleteInstanceOperator(task_id="delete").execute({"params": params})
    assert api.names("persistentvolumeclaims") == set()


# --- the README -----------------------------------------------------------------------------------------


def readme_roles() -> dict[str, list[dict]]:
    """Each ``# Role: <feature>`` YAML block of the README: its rules."""
    blocks = re.findall(r"```yaml\n# Role: (?P<feature>[^\n]+)\n(?P<body>.*?)```", README.read_text(), re.S)
    return {feature.strip(): yaml.safe_load(body)["rules"] for feature, body in blocks}


def test_the_readme_gives_each_features_complete_role():
    assert readme_roles() == {
        "service control (altibase_replicated_ddl, service_control mode kubernetes)":
            kube_access.role_rules(kube_access.SERVICE_CONTROL),
        "iSQL pods (runner kubernetes, every DAG)": kube_access.role_rules(kube_access.ISQL_PODS),
        "altibase_provision (target kubernetes; add the iSQL pods' Role for runner kubernetes)":
            kube_access.role_rules(kube_access.provisioning(
                ["PersistentVolumeClaim", "Service", "Deployment", "StatefulSet", "Pod"], runner="local")),
        "altibase_teardown (target kubernetes; add the iSQL pods' Role for runner kubernetes)":
            kube_access.role_rules(kube_access.teardown(delete_data=True, runner="local")),
    }
