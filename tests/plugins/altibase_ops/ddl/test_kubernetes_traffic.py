"""The procedure's traffic model on Kubernetes: in every variant, after every step, each client
Service reaches exactly the pods the model says (``procedure.Step.routes``), never a server in admin
mode, and everything ends as it was — also after a crash between two writes, from a run with no XCom
history. The pair is the simulator's; the cluster is the fake API server under the real client."""

from __future__ import annotations

import logging

import pytest

from altibase_ops.ddl.procedure import procedure
from altibase_ops.ddl.records import release_lock
from altibase_ops.ddl.restore import restore
from altibase_ops.ddl.steps import step_routes
from altibase_ops.ddl.verify import post_checks
from altibase_ops.state.server import read_state
from tests.fakes.kubernetes_api import FakeApiServer, pod, service_clients
from tests.plugins.altibase_ops.ddl.test_restore_matrix import (
    begin,
    request_for,
    run_step,
    seed_pair_with_connections,
)

log = logging.getLogger("kubernetes-traffic")
NODES = ("node1", "node2")


def pod_labels(node: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "altibase", "altibase.io/node": node}


def cluster_for(topology: str) -> tuple[FakeApiServer, dict]:
    """Active-Active: a client Service and an application Deployment per server. Active-Standby: the
    active's only (the standby's pods are reachable through its selector)."""
    server = FakeApiServer()
    with_service = NODES if topology == "active_active" else NODES[:1]
    for node in NODES:
        server.put("pods", {**pod(f"altibase-{node}-0", pod_labels(node), ready=True),
                            "metadata": {"name": f"altibase-{node}-0", "namespace": "db", "labels": pod_labels(node)}})
    for node in with_service:
        server.put("services", {"metadata": {"name": f"app-{node}", "namespace": "db"},
                                "spec": {"selector": pod_labels(node)}})
        server.put("deployments", {"metadata": {"name": f"shop-{node}", "namespace": "db"}, "spec": {
            "replicas": 2, "selector": {"matchLabels": {"app": f"shop-{node}"}},
            "template": {"metadata": {"labels": {"app": f"shop-{node}"}},
                         "spec": {"containers": [{"name": "web", "image": "shop:1"}]}}}})
    control = {"mode": "kubernetes", "namespace": "db", "services": {n: f"app-{n}" for n in with_service},
               "deployments": {n: f"shop-{n}" for n in with_service},
               "server_selectors": {n: pod_labels(n) for n in NODES}, "endpoint_timeout_seconds": 5}
    return server, control


def reached(server: FakeApiServer, service: str) -> set[str]:
    _, _, discovery = service_clients(server)
    slices = discovery.list_namespaced_endpoint_slice("db", label_selector=f"kubernetes.io/service-name={service}")
    return {e.target_ref.name for s in slices.items for e in s.endpoints or [] if e.conditions.ready}


def as_before(server: FakeApiServer, control: dict) -> None:
    for node, service in control["services"].items():
        obj = server.objects[("services", "db", service)]
        assert obj["spec"]["selector"] == pod_labels(node) and not obj["metadata"].get("annotations")
    for deployment in control["deployments"].values():
        obj = server.objects[("deployments", "db", deployment)]
        assert obj["spec"]["replicas"] == 2 and not obj["metadata"].get("annotations")


@pytest.fixture
def kube(monkeypatch):
    """Point service control's client at a fake cluster, set per test by ``use``."""
    holder = {}
    monkeypatch.setattr("altibase_ops.service.kubernetes._kube_clients",
                        lambda control: service_clients(holder["server"]))
    return holder


@pytest.mark.parametrize("topology,mode", [("active_standby", "can_stop"), ("active_active", "can_stop"),
                                           ("active_active", "rolling"), ("active_standby", "rolling")])
def test_every_step_sends_traffic_where_the_model_says_and_never_to_a_server_in_admin_mode(
        sim, monkeypatch, kube, topology, mode):
    seed_pair_with_connections(sim, monkeypatch, topology)
    server, control = cluster_for(topology)
    kube["server"] = server
    request = request_for(sim, topology, mode, service_control=control)
    report = begin(request, "run-1")
    routes = {node: node for node in control["services"]}  # before the run: each on its own pods
    history: list = []
    checked = 0
    for stage in procedure(topology, mode):
        for step in (s for block in stage for s in block.steps):
            run_step(step, request, history, report["started_at"])
            routes.update({s: t for s, t in step_routes(step, request).items() if s in routes})
            admin = {n: read_state(f"altibase_{n}", "REP1", []).properties["ADMIN_MODE"] for n in NODES}
            for node, service in control["services"].items():
                target = routes[node]
                assert reached(server, service) == (set() if target is None else {f"altibase-{target}-0"}), \
                    (step.task_id, service, target)
                assert target is None or admin[target] == 0, (step.task_id, f"{service} reaches {target} in admin mode")
                checked += 1
    post_checks(request, log)
    release_lock(request, "run-1", log)
    assert routes == {node: node for node in control["services"]} and checked
    as_before(server, control)


def test_a_crash_between_two_writes_is_put_back_by_a_recover_run_with_no_history(sim, monkeypatch, kube):
    seed_pair_with_connections(sim, monkeypatch, "active_active")
    server, control = cluster_for("active_active")
    kube["server"] = server
    request = request_for(sim, "active_active", "can_stop", service_control=control)
    report = begin(request, "run-1")
    server.fail_once("PATCH", "deployments", "shop-node1", 500, "etcd timed out")
    o1 = [b.steps[0] for b in procedure("active_active", "can_stop")[0]]
    with pytest.raises(Exception, match="etcd timed out"):  # O1: the Service is stopped, then the scale fails
        for step in o1:
            run_step(step, request, [], report["started_at"])
    assert server.objects[("services", "db", "app-node1")]["metadata"].get("annotations")  # half done
    # a recover run: its restore has no XCom of the first run; the objects carry their originals
    recover = request_for(sim, "active_active", "can_stop", service_control=control, recover=True)
    restore(recover, [], log)
    as_before(server, control)
    assert reached(server, "app-node1") == {"altibase-node1-0"}


def service_step_faults():
    for topology, mode in (("active_standby", "can_stop"), ("active_active", "can_stop"),
                           ("active_active", "rolling"), ("active_standby", "rolling")):
        for number, stage in enumerate(procedure(topology, mode)):
            for step in (s for block in stage for s in block.steps):
                if step.action == "service" and step.service not in ("resume", "restore"):
                    # a stop writes the Service, then the Deployment: a crash can fall between them
                    stops = any(target is None for _, target in step.routes)
                    for successes, fault in ((0, "api-error"), (1, "crash-between-writes"))[:2 if stops else 1]:
                        yield pytest.param(topology, mode, number, step.task_id, successes,
                                           id=f"{mode}-{topology}-{step.task_id}-{fault}")


@pytest.mark.parametrize("topology,mode,stage_number,task_id,successes", list(service_step_faults()))
def test_a_failed_service_step_ends_with_the_cluster_as_before_after_a_recover_run(
        sim, monkeypatch, kube, topology, mode, stage_number, task_id, successes):
    seed_pair_with_connections(sim, monkeypatch, topology)
    server, control = cluster_for(topology)
    kube["server"] = server
    request = request_for(sim, topology, mode, service_control=control)
    report = begin(request, "run-1")
    history: list = []
    failed = False
    for number, stage in enumerate(procedure(topology, mode)):
        for step in (s for block in stage for s in block.steps):
            if number == stage_number and step.task_id == task_id:
                server.fail_patch_after(successes, 500, "the API server went away")
                try:
                    run_step(step, request, history, report["started_at"])
                except Exception as exc:  # noqa: BLE001 - the injected fault, whatever the client raises
                    assert "went away" in str(exc)
                    failed = True
                break
            run_step(step, request, history, report["started_at"])
        if number == stage_number:
            break
    assert failed, "the injected fault never fired"
    recover = request_for(sim, topology, mode, service_control=control, recover=True)
    restore(recover, [], log)  # a recover run: no XCom of the failed run
    as_before(server, control)
