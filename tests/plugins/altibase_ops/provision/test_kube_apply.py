"""Create-or-update, readiness and teardown against a fake Kubernetes API server
(``tests/fakes/kubernetes_api.py``, under the real client). The tests assert the HTTP calls made."""

from __future__ import annotations

import copy

import pytest

from altibase_ops.provision.kube_apply import (
    SPEC_HASH_ANNOTATION,
    ApplyError,
    PodStartupError,
    apply_manifests,
    check_password_secret,
    check_pods_ready,
    remaining_objects,
    teardown,
    with_spec_hash,
)
from altibase_ops.provision.manifests import render_manifests
from altibase_ops.provision.spec import NfsStorage, ProvisionSpec, PvcStorage
from tests.fakes.kubernetes_api import FakeApiServer, clients, deployment_pod_labels, pod, rolled_out


@pytest.fixture
def server() -> FakeApiServer:
    return FakeApiServer()


@pytest.fixture
def apis(server):
    return clients(server)


def provisioned(server, apis, spec: ProvisionSpec) -> None:
    apply_manifests(render_manifests(spec), **apis)
    server.requests.clear()


PLURALS = {
    "PersistentVolumeClaim": "persistentvolumeclaims",
    "Service": "services",
    "Pod": "pods",
    "Deployment": "deployments",
    "StatefulSet": "statefulsets",
}
WORKLOADS = [
    ("deployment", "pair", NfsStorage(server="10.0.0.1")),
    ("statefulset", "pair", PvcStorage()),
    ("pod", "pair", PvcStorage()),
    ("deployment", "single", PvcStorage()),
    ("statefulset", "single", NfsStorage(server="10.0.0.1")),
    ("pod", "single", NfsStorage(server="10.0.0.1")),
]


# --- create or update -----------------------------------------------------------------------------


@pytest.mark.parametrize(("workload", "topology", "storage"), WORKLOADS)
def test_first_apply_creates_everything_in_order(server, apis, workload, topology, storage):
    manifests = render_manifests(ProvisionSpec(workload=workload, topology=topology, storage=storage))
    results = apply_manifests(manifests, **apis)
    assert [r.action for r in results] == ["created"] * len(manifests)
    posts = server.calls("POST")
    assert [(r.plural, r.body["metadata"]["name"]) for r in posts] == [
        (PLURALS[m["kind"]], m["metadata"]["name"]) for m in manifests
    ]
    # First a look for workloads of this instance that the manifests would not create...
    lists = [r for r in server.calls("GET") if r.name is None]
    assert [r.plural for r in lists] == ["statefulsets", "deployments", "pods"]
    assert {r.query["labelSelector"] for r in lists} == {
        "app.kubernetes.io/instance=altibase,app.kubernetes.io/managed-by=altibase-airflow-ops"
    }
    # ...then every object was read once before it was created; nothing was patched.
    assert len([r for r in server.calls("GET") if r.name is not None]) == len(manifests)
    assert server.calls("PATCH") == []
    assert all(SPEC_HASH_ANNOTATION in r.body["metadata"]["annotations"] for r in posts)


@pytest.mark.parametrize(("workload", "topology", "storage"), WORKLOADS)
def test_second_apply_changes_nothing(server, apis, workload, topology, storage):
    manifests = render_manifests(ProvisionSpec(workload=workload, topology=topology, storage=storage))
    apply_manifests(manifests, **apis)
    objects_after_first_run = copy.deepcopy(server.objects)
    server.requests.clear()

    results = apply_manifests(
        render_manifests(ProvisionSpec(workload=workload, topology=topology, storage=storage)), **apis
    )

    assert {r.action for r in results} == {"unchanged"}
    assert {r.method for r in server.calls()} == {"GET"}  # reads only: no create, no patch, no delete
    assert server.objects == objects_after_first_run  # nothing duplicated, nothing touched


def test_changed_parameters_patch_what_changed(server, apis):
    apply_manifests(render_manifests(ProvisionSpec()), **apis)
    server.requests.clear()

    new_image = "altibase/altibase:7.3.0.1"
    results = apply_manifests(render_manifests(ProvisionSpec(image=new_image)), **apis)

    assert [(r.kind, r.action) for r in results] == [
        ("Service", "unchanged"),
        ("Service", "unchanged"),
        ("Deployment", "patched"),
        ("Deployment", "patched"),
    ]
    patches = server.calls("PATCH")
    assert [(p.plural, p.name, p.content_type) for p in patches] == [
        ("deployments", "altibase-node1", "application/merge-patch+json"),
        ("deployments", "altibase-node2", "application/merge-patch+json"),
    ]
    stored = server.objects[("deployments", "default", "altibase-node1")]
    assert stored["spec"]["template"]["spec"]["containers"][0]["image"] == new_image
    assert server.calls("POST") == []


def test_merge_patch_removes_what_the_new_manifest_no_longer_has(server, apis):
    """pair -> single on the StatefulSet: SLAVE_REP_PORT and port 20301 must really go."""
    apply_manifests(render_manifests(ProvisionSpec(workload="statefulset", topology="single")), **apis)
    apply_manifests(render_manifests(ProvisionSpec(workload="statefulset", topology="pair")), **apis)
    apply_manifests(render_manifests(ProvisionSpec(workload="statefulset", topology="single")), **apis)
    stateful_set = server.objects[("statefulsets", "default", "altibase")]
    container = stateful_set["spec"]["template"]["spec"]["containers"][0]
    assert stateful_set["spec"]["replicas"] == 1
    assert [e["name"] for e in container["env"]] == ["MODE"]  # no password in the server pod
    assert [p["containerPort"] for p in container["ports"]] == [20300]
    service = server.objects[("services", "default", "altibase-svc-node1")]
    assert [p["name"] for p in service["spec"]["ports"]] == ["service-port"]


def test_service_selector_keys_no_longer_wanted_are_removed(server, apis):
    apply_manifests(render_manifests(ProvisionSpec(topology="single")), **apis)
    server.objects.pop(("deployments", "default", "altibase-node1"))  # workloads torn down, Service kept
    apply_manifests(render_manifests(ProvisionSpec(topology="single", workload="statefulset")), **apis)
    (patch,) = [r for r in server.calls("PATCH") if r.plural == "services"]
    assert patch.body["spec"]["selector"]["altibase.io/node"] is None
    assert server.objects[("services", "default", "altibase-svc-node1")]["spec"]["selector"] == {
        "app.kubernetes.io/name": "altibase",
        "app.kubernetes.io/instance": "altibase",
        "statefulset.kubernetes.io/pod-name": "altibase-0",
    }


def test_a_workload_these_parameters_would_not_create_blocks_the_apply(server, apis):
    apply_manifests(render_manifests(ProvisionSpec(topology="pair")), **apis)
    server.requests.clear()
    with pytest.raises(
        ApplyError, match="still runs Deployment/altibase-node1, Deployment/altibase-node2.*teardown"
    ):
        apply_manifests(render_manifests(ProvisionSpec(topology="pair", workload="statefulset")), **apis)
    with pytest.raises(ApplyError, match="still runs Deployment/altibase-node2,"):
        apply_manifests(render_manifests(ProvisionSpec(topology="single")), **apis)
    assert {r.method for r in server.calls()} == {"GET"}


def test_bare_pod_with_a_new_spec_is_refused_not_patched(server, apis):
    apply_manifests(render_manifests(ProvisionSpec(workload="pod")), **apis)
    with pytest.raises(ApplyError, match="Pod/altibase-node1 exists with a different spec.*teardown"):
        apply_manifests(
            render_manifests(ProvisionSpec(workload="pod", image="altibase/altibase:7.3.0.1")), **apis
        )
    assert server.calls("PATCH") == []


def test_an_object_made_by_hand_is_not_taken_over(server, apis):
    # The seed's own Service, created with kubectl before this project ran.
    server.put(
        "services",
        {"metadata": {"name": "altibase-svc-node1", "namespace": "default", "labels": {"app": "altibase"}}},
    )
    with pytest.raises(
        ApplyError, match="Service/altibase-svc-node1 already exists .* not managed by altibase-airflow-ops"
    ):
        apply_manifests(render_manifests(ProvisionSpec()), **apis)
    assert server.calls("PATCH") == [] and server.calls("POST") == []


def test_create_race_is_handled_as_existing(server, apis):
    manifests = render_manifests(ProvisionSpec(topology="single", workload="pod"))
    # Another run creates the Service between our read (404) and our create (409).
    server.put("services", with_spec_hash(manifests[0]))
    server.fail_once("GET", "services", "altibase-svc-node1", 404, 'services "altibase-svc-node1" not found')

    results = apply_manifests(manifests, **apis)

    assert results[0].action == "unchanged"
    assert [r.method for r in server.calls() if r.plural == "services"] == ["GET", "POST", "GET"]
    assert len(server.names("services")) == 1


def test_api_errors_name_the_object_and_the_reason(server, apis):
    server.fail_once(
        "GET", "services", "altibase-svc-node1", 403, 'services "altibase-svc-node1" is forbidden'
    )
    with pytest.raises(
        ApplyError,
        match='reading altibase-svc-node1 in default failed: services "altibase-svc-node1" is forbidden',
    ):
        apply_manifests(render_manifests(ProvisionSpec()), **apis)


def test_a_rejected_update_explains_itself(server, apis):
    apply_manifests(
        render_manifests(ProvisionSpec(workload="statefulset", storage=PvcStorage(size="10Gi"))), **apis
    )
    server.fail_once(
        "PATCH", "statefulsets", "altibase", 422, "spec: Forbidden: updates to statefulset spec ..."
    )
    with pytest.raises(ApplyError, match="StatefulSet/altibase: update failed: spec: Forbidden.*tear down"):
        apply_manifests(
            render_manifests(ProvisionSpec(workload="statefulset", storage=PvcStorage(size="20Gi"))), **apis
        )


# --- preflight ----------------------------------------------------------------------------------


def test_password_secret_preflight(server, apis):
    spec = ProvisionSpec()
    with pytest.raises(ApplyError, match="Secret altibase-sys-password not found in namespace default"):
        check_password_secret(spec, core=apis["core"])
    server.put(
        "secrets",
        {"metadata": {"name": "altibase-sys-password", "namespace": "default"}, "data": {"pw": "eA=="}},
    )
    with pytest.raises(ApplyError, match="has no key 'password'"):
        check_password_secret(spec, core=apis["core"])
    server.put(
        "secrets",
        {
            "metadata": {"name": "altibase-sys-password", "namespace": "default"},
            "data": {"password": "bWFuYWdlcg=="},
        },
    )
    assert check_password_secret(spec, core=apis["core"]) is None


# --- readiness ----------------------------------------------------------------------------------


def test_readiness_wait_until_every_node_is_ready(server, apis):
    """What a sensor does: poke until ready. Each poke lists each node's pods."""
    spec = ProvisionSpec()
    provisioned(server, apis, spec)
    first = check_pods_ready(spec, **apis)
    assert not first.all_ready
    assert str(first) == "node1 (no pod): no pod yet; node2 (no pod): no pod yet"

    rolled_out(server)
    server.put("pods", pod("altibase-node1-abc", deployment_pod_labels("node1"), ready=True))
    server.put("pods", pod("altibase-node2-def", deployment_pod_labels("node2"), waiting="ContainerCreating"))
    second = check_pods_ready(spec, **apis)
    assert [(n.node, n.ready, n.detail) for n in second.nodes] == [
        ("node1", True, "ready"),
        ("node2", False, "waiting: ContainerCreating"),
    ]

    server.put("pods", pod("altibase-node2-def", deployment_pod_labels("node2"), ready=True))
    assert check_pods_ready(spec, **apis).all_ready

    selectors = [r.query["labelSelector"] for r in server.calls("GET") if r.plural == "pods"]
    node_selector = "app.kubernetes.io/name=altibase,app.kubernetes.io/instance=altibase,altibase.io/node={}"
    assert selectors == [node_selector.format("node1"), node_selector.format("node2")] * 3


def test_a_ready_pod_of_the_old_spec_does_not_count(server, apis):
    """Right after a patch the old pod is still Ready; the node waits for the rollout."""
    spec = ProvisionSpec(topology="single")
    provisioned(server, apis, spec)
    server.put("pods", pod("altibase-node1-abc", deployment_pod_labels("node1"), ready=True))
    rolled_out(server, generation=2)
    server.objects[("deployments", "default", "altibase-node1")]["status"]["observedGeneration"] = 1
    assert check_pods_ready(spec, **apis).nodes[0].detail == (
        "Deployment altibase-node1: the controller has not seen the latest spec yet"
    )
    rolled_out(server, generation=2, updated=0)
    assert (
        check_pods_ready(spec, **apis).nodes[0].detail
        == "Deployment altibase-node1: rolling out (0/1 updated)"
    )
    rolled_out(server, generation=2)
    assert check_pods_ready(spec, **apis).all_ready


def test_readiness_of_statefulset_pods_goes_by_pod_name(server, apis):
    spec = ProvisionSpec(workload="statefulset")
    provisioned(server, apis, spec)
    rolled_out(server)
    labels = {"app.kubernetes.io/name": "altibase", "app.kubernetes.io/instance": "altibase"}
    server.put(
        "pods", pod("altibase-0", labels | {"statefulset.kubernetes.io/pod-name": "altibase-0"}, ready=True)
    )
    report = check_pods_ready(spec, **apis)
    assert [(n.node, n.pod, n.ready) for n in report.nodes] == [
        ("node1", "altibase-0", True),
        ("node2", None, False),
    ]
    assert report.nodes[1].detail == "no pod yet (expecting altibase-1)"
    pod_selectors = [r.query["labelSelector"] for r in server.calls("GET") if r.plural == "pods"]
    assert pod_selectors[1].endswith("statefulset.kubernetes.io/pod-name=altibase-1")


def test_bare_pods_need_no_rollout(server, apis):
    spec = ProvisionSpec(workload="pod", topology="single")
    provisioned(server, apis, spec)
    live = server.objects[("pods", "default", "altibase-node1")]
    live["status"] = pod("altibase-node1", {}, ready=True)["status"]
    assert check_pods_ready(spec, **apis).all_ready
    assert {r.plural for r in server.calls("GET")} == {"pods"}


def test_a_terminating_pod_does_not_count(server, apis):
    spec = ProvisionSpec(topology="single")
    server.put("pods", pod("altibase-node1-old", deployment_pod_labels("node1"), ready=True, deleting=True))
    assert not check_pods_ready(spec, **apis).all_ready


@pytest.mark.parametrize(
    ("waiting", "restarts", "message"),
    [
        ("CreateContainerConfigError", 0, "CreateContainerConfigError: CreateContainerConfigError details"),
        ("InvalidImageName", 0, "InvalidImageName"),
        ("CrashLoopBackOff", 5, "exited 5 times"),
    ],
)
def test_states_that_waiting_cannot_fix_fail_at_once(server, apis, waiting, restarts, message):
    server.put(
        "pods", pod("altibase-node1-abc", deployment_pod_labels("node1"), waiting=waiting, restarts=restarts)
    )
    with pytest.raises(PodStartupError, match=message):
        check_pods_ready(ProvisionSpec(topology="single"), **apis)


def test_transient_states_keep_waiting(server, apis):
    server.put(
        "pods",
        pod("altibase-node1-abc", deployment_pod_labels("node1"), waiting="CrashLoopBackOff", restarts=2),
    )
    server.put("pods", pod("altibase-node2-abc", deployment_pod_labels("node2"), waiting="ImagePullBackOff"))
    report = check_pods_ready(ProvisionSpec(), **apis)
    assert [n.detail for n in report.nodes] == ["waiting: CrashLoopBackOff", "waiting: ImagePullBackOff"]


# --- teardown -----------------------------------------------------------------------------------


def test_teardown_keeps_claims_by_default(server, apis):
    spec = ProvisionSpec(storage=PvcStorage())
    provisioned(server, apis, spec)
    # A pod owned by a ReplicaSet is the garbage collector's job, not ours.
    owned = pod(
        "altibase-node1-abc",
        deployment_pod_labels("node1") | {"app.kubernetes.io/managed-by": "altibase-airflow-ops"},
    )
    owned["metadata"]["ownerReferences"] = [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u1"}
    ]
    server.put("pods", owned)
    # Another instance in the same namespace is left alone.
    provisioned(server, apis, ProvisionSpec(name="other", topology="single"))

    results = teardown(name="altibase", namespace="default", **apis)

    assert [str(r) for r in results] == [
        "Deployment/altibase-node1: deleted",
        "Deployment/altibase-node2: deleted",
        "Service/altibase-svc-node1: deleted",
        "Service/altibase-svc-node2: deleted",
    ]
    deletes = server.calls("DELETE")
    assert all(d.query == {"propagationPolicy": "Background"} for d in deletes)
    assert "persistentvolumeclaims" not in {d.plural for d in deletes}
    assert server.names("persistentvolumeclaims") == {"altibase-data-node1", "altibase-data-node2"}
    assert server.names("services") == {"other-svc-node1"}
    assert remaining_objects(name="altibase", namespace="default", **apis) == ["Pod/altibase-node1-abc"]
    assert remaining_objects(name="altibase", namespace="default", include_data=True, **apis) == [
        "Pod/altibase-node1-abc",
        "PersistentVolumeClaim/altibase-data-node1",
        "PersistentVolumeClaim/altibase-data-node2",
    ]


def test_teardown_deletes_data_only_when_asked(server, apis):
    spec = ProvisionSpec(workload="statefulset", storage=PvcStorage())
    provisioned(server, apis, spec)
    # The claims a StatefulSet makes from its template carry the template's labels.
    template = server.objects[("statefulsets", "default", "altibase")]["spec"]["volumeClaimTemplates"][0]
    for ordinal in (0, 1):
        server.put(
            "persistentvolumeclaims",
            {
                "metadata": {
                    "name": f"data-altibase-{ordinal}",
                    "namespace": "default",
                    "labels": template["metadata"]["labels"],
                }
            },
        )

    results = teardown(name="altibase", namespace="default", delete_data=True, **apis)

    assert [str(r) for r in results] == [
        "StatefulSet/altibase: deleted",
        "Service/altibase-headless: deleted",
        "Service/altibase-svc-node1: deleted",
        "Service/altibase-svc-node2: deleted",
        "PersistentVolumeClaim/data-altibase-0: deleted",
        "PersistentVolumeClaim/data-altibase-1: deleted",
    ]
    assert remaining_objects(name="altibase", namespace="default", include_data=True, **apis) == []


def test_teardown_is_idempotent(server, apis):
    provisioned(server, apis, ProvisionSpec(workload="pod"))
    # Something else deletes node2's pod between our list and our delete.
    server.fail_once("DELETE", "pods", "altibase-node2", 404, 'pods "altibase-node2" not found')
    first = teardown(name="altibase", namespace="default", **apis)
    assert [r.action for r in first if r.kind == "Pod"] == ["deleted", "absent"]
    server.objects.pop(("pods", "default", "altibase-node2"))  # the other actor's delete, completed
    assert teardown(name="altibase", namespace="default", **apis) == []
