"""Service control (``service/``): stop, move and put back the application's traffic — against the
simulator's application load, and against a fake Kubernetes API server under the real client."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowException

from altibase_ops.service.control import perform
from altibase_ops.service.kubernetes import NO_ENDPOINTS_LABEL
from altibase_sim.scenarios import seed_replicated_pair
from tests.fakes.kubernetes_api import FakeApiServer, clients


def running(sim) -> set[str]:
    return {load["server"] for load in sim.load_status() if load["running"]}


def test_simulator_stop_move_and_restore_put_the_load_back_where_it_ran(sim):
    seed_replicated_pair(sim, topology="active_standby")
    sim.load_start("node1", table="SYS.T1", sessions=1, interval=0.02)
    control = {"mode": "simulator", "state_dir": str(sim.state_dir)}
    history = perform("move_to_peer", control, "node1", "node2", [])
    assert running(sim) == {"node2"}
    assert history[0]["kind"] == "simulator_stop" and history[0]["load"]["table"] == "SYS.T1"
    history += perform("stop", control, "node2", "node1", history)
    assert running(sim) == set()
    restored = perform("restore", control, "", "", history)
    assert running(sim) == {"node1"}  # as before the run: on node1 only, whatever happened in between
    assert {r["server"]: r["state"] for r in restored} == {"node1": "service running"}


def test_resume_puts_back_only_its_own_server(sim):
    seed_replicated_pair(sim, topology="active_active")
    for node in ("node1", "node2"):
        sim.load_start(node, table="SYS.T1", sessions=1, interval=0.02)
    control = {"mode": "simulator", "state_dir": str(sim.state_dir)}
    history = perform("stop", control, "node1", "node2", []) + perform("stop", control, "node2", "node1", [])
    perform("resume", control, "node1", "node2", history)
    assert running(sim) == {"node1"}


@pytest.fixture
def cluster():
    server = FakeApiServer()
    server.put("services", {"metadata": {"name": "app-a1", "namespace": "db"},
                            "spec": {"selector": {"app": "shop", "db": "a1"}}})
    server.put("deployments", {"metadata": {"name": "shop-a1", "namespace": "db"}, "spec": {"replicas": 3}})
    api = clients(server)
    return server, (api["core"], api["apps"])


CONTROL = {"mode": "kubernetes", "namespace": "db", "services": {"a1": "app-a1"}, "deployments": {"a1": "shop-a1"},
           "server_selectors": {"a2": {"app": "shop", "db": "a2"}}}


def test_kubernetes_stop_points_the_service_at_no_pod_and_scales_the_app_to_zero(cluster):
    server, api = cluster
    records = perform("stop", CONTROL, "a1", "a2", [], api)
    assert server.objects[("services", "db", "app-a1")]["spec"]["selector"] == NO_ENDPOINTS_LABEL
    assert server.objects[("deployments", "db", "shop-a1")]["spec"]["replicas"] == 0
    assert [(r["kind"], r.get("selector"), r.get("replicas")) for r in records] == [
        ("service_selector", {"app": "shop", "db": "a1"}, None), ("deployment_scale", None, 3)]
    perform("restore", CONTROL, "", "", records, api)
    # the selector is replaced whole (a merge patch could not remove the stop label) and the scale restored
    assert server.objects[("services", "db", "app-a1")]["spec"]["selector"] == {"app": "shop", "db": "a1"}
    assert server.objects[("deployments", "db", "shop-a1")]["spec"]["replicas"] == 3
    assert any(r.content_type == "application/json-patch+json" for r in server.calls("PATCH"))


def test_kubernetes_move_needs_the_peers_pod_selector(cluster):
    server, api = cluster
    perform("move_to_peer", CONTROL, "a1", "a2", [], api)
    assert server.objects[("services", "db", "app-a1")]["spec"]["selector"] == {"app": "shop", "db": "a2"}
    with pytest.raises(AirflowException, match="server_selectors has no pod selector for a1"):
        perform("move_to_peer", {**CONTROL, "server_selectors": {}}, "a2", "a1", [], api)
