"""Service control (``service/``): stop, move and put back the application's traffic — against the
simulator's application load, and against a fake Kubernetes API server under the real client."""

from __future__ import annotations

import json

import pytest
from airflow.sdk.exceptions import AirflowException
from kubernetes.client.exceptions import ApiException

from altibase_ops.service.control import perform
from altibase_ops.service.kubernetes import (
    NO_ENDPOINTS_LABEL,
    ORIGINAL_REPLICAS,
    ORIGINAL_SELECTOR,
    ClusterChangedError,
)
from altibase_sim.scenarios import seed_replicated_pair
from tests.fakes.kubernetes_api import FakeApiServer, pod, service_clients


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


POD_LABELS = {"a1": {"app": "shop", "db": "a1"}, "a2": {"app": "shop", "role": "a2"}}  # different keys


@pytest.fixture
def cluster():
    server = FakeApiServer()
    for name, labels in POD_LABELS.items():
        server.put("services", {"metadata": {"name": f"app-{name}", "namespace": "db"}, "spec": {"selector": labels}})
        server.put("pods", {**pod(f"altibase-{name}-0", labels, ready=True),
                            "metadata": {"name": f"altibase-{name}-0", "namespace": "db", "labels": labels}})
    server.put("deployments", {"metadata": {"name": "shop-a1", "namespace": "db"}, "spec": {
        "replicas": 3, "selector": {"matchLabels": {"app": "shop-web"}},
        "template": {"metadata": {"labels": {"app": "shop-web"}},
                     "spec": {"containers": [{"name": "web", "image": "shop:1"}]}}}})
    return server, service_clients(server)


CONTROL = {"mode": "kubernetes", "namespace": "db", "services": {"a1": "app-a1", "a2": "app-a2"},
           "deployments": {"a1": "shop-a1"}, "endpoint_timeout_seconds": 2}


def selects(server: FakeApiServer, service: str) -> set[str]:
    """The pods the Service's EndpointSlices list as ready (what clients reach)."""
    _, _, discovery = service_clients(server)
    slices = discovery.list_namespaced_endpoint_slice("db", label_selector=f"kubernetes.io/service-name={service}")
    return {e.target_ref.name for s in slices.items for e in s.endpoints or [] if e.conditions.ready}


def annotations(server: FakeApiServer, plural: str, name: str) -> dict:
    return server.objects[(plural, "db", name)]["metadata"].get("annotations") or {}


def as_before(server: FakeApiServer) -> None:
    assert server.objects[("services", "db", "app-a1")]["spec"]["selector"] == POD_LABELS["a1"]
    assert server.objects[("services", "db", "app-a2")]["spec"]["selector"] == POD_LABELS["a2"]
    assert server.objects[("deployments", "db", "shop-a1")]["spec"]["replicas"] == 3
    assert not annotations(server, "services", "app-a1") and not annotations(server, "deployments", "shop-a1")


def test_kubernetes_stop_selects_no_pod_scales_to_zero_and_keeps_the_original_on_the_object(cluster):
    server, api = cluster
    perform("stop", CONTROL, "a1", "a2", [], api)
    assert server.objects[("services", "db", "app-a1")]["spec"]["selector"] == NO_ENDPOINTS_LABEL
    assert selects(server, "app-a1") == set()
    assert server.objects[("deployments", "db", "shop-a1")]["spec"]["replicas"] == 0
    assert json.loads(annotations(server, "services", "app-a1")[ORIGINAL_SELECTOR]) == POD_LABELS["a1"]
    assert annotations(server, "deployments", "shop-a1")[ORIGINAL_REPLICAS] == "3"
    perform("stop", CONTROL, "a1", "a2", [], api)  # a re-run: the annotation still holds the original
    assert json.loads(annotations(server, "services", "app-a1")[ORIGINAL_SELECTOR]) == POD_LABELS["a1"]
    patches = server.calls("PATCH")
    assert patches and all(r.content_type == "application/json-patch+json" and r.body[0]["op"] == "test"
                           for r in patches)
    perform("restore", CONTROL, "", "", [], api)  # no history: the objects know what they were
    as_before(server)
    assert selects(server, "app-a1") == {"altibase-a1-0"}


def test_a_move_replaces_the_selector_where_a_merge_patch_would_select_nothing(cluster):
    server, (core, apps, discovery) = cluster
    perform("move_to_peer", CONTROL, "a1", "a2", [], (core, apps, discovery))
    assert server.objects[("services", "db", "app-a1")]["spec"]["selector"] == POD_LABELS["a2"]
    assert selects(server, "app-a1") == {"altibase-a2-0"}
    # what the old strategic-merge patch did: the a1 key stays beside a2's, and no pod carries both
    core.patch_namespaced_service("app-a2", "db", {"spec": {"selector": POD_LABELS["a1"]}})
    assert server.objects[("services", "db", "app-a2")]["spec"]["selector"] == {**POD_LABELS["a2"], **POD_LABELS["a1"]}
    assert selects(server, "app-a2") == set()


def test_rolling_turns_follow_the_traffic_model_and_restore_puts_every_object_back(cluster):
    server, api = cluster
    perform("move_to_peer", CONTROL, "a1", "a2", [], api, routes={"a1": "a2", "a2": "a2"})  # turn 1 R1c
    assert selects(server, "app-a1") == selects(server, "app-a2") == {"altibase-a2-0"}
    perform("move_to_peer", CONTROL, "a2", "a1", [], api, routes={"a2": "a1", "a1": "a1"})  # turn 2 R1c
    # a1's Service came back too: nothing reaches a2 while it is in admin mode
    assert selects(server, "app-a1") == selects(server, "app-a2") == {"altibase-a1-0"}
    assert not annotations(server, "services", "app-a1")  # back to its original: annotation gone
    perform("restore", CONTROL, "", "", [], api, routes={"a1": "a1", "a2": "a2"})
    as_before(server)


def test_a_concurrent_edit_is_refused_not_overwritten(cluster):
    server, api = cluster
    serve = server.request

    def someone_edits_after_our_read(method, url, **kwargs):
        response = serve(method, url, **kwargs)
        if method == "GET" and url.endswith("/services/app-a1"):
            key = ("services", "db", "app-a1")
            edited = server.objects[key]
            edited["metadata"]["labels"] = {"edited-by": "someone"}
            server.objects[key] = server._stamp(edited)
        return response

    server.request = someone_edits_after_our_read
    with pytest.raises(ClusterChangedError, match="app-a1 in db changed since this step read it"):
        perform("stop", CONTROL, "a1", "a2", [], api)
    server.request = serve
    assert server.objects[("services", "db", "app-a1")]["spec"]["selector"] == POD_LABELS["a1"]
    assert server.objects[("services", "db", "app-a1")]["metadata"]["labels"] == {"edited-by": "someone"}


def test_a_crash_between_two_writes_is_undone_by_a_later_run_without_history(cluster):
    server, api = cluster
    server.fail_once("PATCH", "deployments", "shop-a1", 500, "etcd timed out")
    with pytest.raises(ApiException):
        perform("stop", CONTROL, "a1", "a2", [], api)
    assert server.objects[("services", "db", "app-a1")]["spec"]["selector"] == NO_ENDPOINTS_LABEL  # half done
    perform("restore", CONTROL, "", "", [], api)  # e.g. a recover run: its XCom has nothing of the first
    as_before(server)


def test_endpoints_that_do_not_follow_the_selector_fail_the_step(cluster):
    server, api = cluster
    stale = server.objects[("pods", "db", "altibase-a2-0")]
    stale["status"]["conditions"][0]["status"] = "False"  # a2's pod is not ready: no endpoint to move to
    with pytest.raises(AirflowException, match=r"app-a1 in db: after 2 s its EndpointSlices show no ready"):
        perform("move_to_peer", CONTROL, "a1", "a2", [], api)
    stale["status"]["conditions"][0]["status"] = "True"
    perform("restore", CONTROL, "", "", [], api)
    as_before(server)


def test_where_the_application_writes_is_read_from_the_cluster(cluster):
    """observe(): the Services' selectors and the Deployments' scale say where the application writes, and
    what still differs from before the run (the annotations)."""
    from altibase_ops.service.control import observe

    server, api = cluster
    control = {**CONTROL, "server_selectors": {"a1": {"db": "a1"}, "a2": {"role": "a2"}}}  # as configured, or
    assert observe(control, ["a1", "a2"], api).writers == {"a1", "a2"}  # its own Service's selector
    perform("move_to_peer", CONTROL, "a1", "a2", [], api, routes={"a1": "a2", "a2": "a2"})
    moved = observe(CONTROL, ["a1", "a2"], api)
    assert moved.writers == {"a2"} and moved.changed == ("Service app-a1",)
    perform("stop", CONTROL, "a2", "a1", [], api, routes={"a1": None, "a2": None})
    assert observe(CONTROL, ["a1", "a2"], api).writers == set()
    perform("restore", CONTROL, "", "", [], api)
    back = observe(CONTROL, ["a1", "a2"], api)
    assert back.writers == {"a1", "a2"} and back.changed == ()
    # an application Deployment without a Service of its own writes on its own server while it runs
    deployments_only = {"mode": "kubernetes", "namespace": "db", "deployments": {"a1": "shop-a1"}}
    assert observe(deployments_only, ["a1", "a2"], api).writers == {"a1"}


def test_a_moved_or_restarted_load_keeps_the_applications_own_login(sim):
    """The simulator's service control never holds the application's password: a load it starts logs in
    as the load it replaces did (a pair whose application is not SYS/manager keeps working)."""
    seed_replicated_pair(sim, topology="active_standby")
    for node in ("node1", "node2"):
        with sim.connect(node, sysdba=True) as conn:
            conn.cursor().execute('CREATE USER APP IDENTIFIED BY "app_pw_7"')
    sim.load_start("node1", table="SYS.T1", sessions=1, interval=0.02, user="APP", password="app_pw_7")
    control = {"mode": "simulator", "state_dir": str(sim.state_dir)}

    def commits_on(node: str) -> dict:
        """The running load on ``node`` once it committed (it logged in), within 10 s."""
        import time

        deadline = time.monotonic() + 10
        while True:
            load = next((s for s in sim.load_status() if s["server"] == node and s["running"]), None)
            if load and load["committed"] > 0 or time.monotonic() > deadline:
                return load
            time.sleep(0.05)

    history = perform("move_to_peer", control, "node1", "node2", [])
    moved = commits_on("node2")
    assert moved["user"] == "APP" and moved["committed"] > 0 and moved["errors"] == 0, moved
    perform("restore", control, "", "", history)
    back = commits_on("node1")
    assert back["user"] == "APP" and back["committed"] > 0 and back["errors"] == 0, back
    assert "password" not in back
