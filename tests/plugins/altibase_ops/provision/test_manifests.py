"""Rendered Kubernetes objects: schema-valid for every workload x storage x topology, faithful to the
seed (000_…, P1–P5), and bad parameters refused before anything is rendered."""

from __future__ import annotations

import itertools

import kubernetes_validate
import pytest
import yaml

from altibase_ops.provision.manifests import (
    DBS_MOUNT_PATH,
    LOGS_MOUNT_PATH,
    instance_selector,
    manifests_yaml,
    node_pod_selector,
    render_manifests,
    service_fqdn,
    service_name,
)
from altibase_ops.provision.spec import (
    EmptyDirStorage,
    NfsStorage,
    ProvisionSpec,
    PvcStorage,
    ResourceSpec,
    SecretRef,
)
from altibase_ops.provision.tables import ProvisionSpecError, parse_table
from altibase_ops.service.guard import database_service_problems
from tests.fakes.kubernetes_api import FakeApiServer, service_clients

# The OpenAPI schema the manifests must satisfy: Kubernetes 1.36, the API version of the pinned
# kubernetes client (36.x). kubernetes-validate is pinned in the dev extra; `strict` rejects any
# field the API does not define, so a typo cannot slip through as an ignored key.
KUBERNETES_VERSION = "1.36.0"

STORAGES = {
    "emptydir": EmptyDirStorage(),
    "nfs": NfsStorage(server="192.168.204.139"),
    "pvc": PvcStorage(size="20Gi", storage_class="fast-ssd"),
}
COMBINATIONS = list(itertools.product(("deployment", "statefulset", "pod"), STORAGES, ("single", "pair")))


def spec_for(workload: str, storage: str, topology: str, **overrides) -> ProvisionSpec:
    return ProvisionSpec(workload=workload, storage=STORAGES[storage], topology=topology, **overrides)


def by_kind(manifests: list[dict], kind: str) -> list[dict]:
    return [m for m in manifests if m["kind"] == kind]


def containers(manifest: dict) -> list[dict]:
    pod_spec = manifest["spec"] if manifest["kind"] == "Pod" else manifest["spec"]["template"]["spec"]
    return pod_spec["containers"]


def pod_spec_of(manifest: dict) -> dict:
    return manifest["spec"] if manifest["kind"] == "Pod" else manifest["spec"]["template"]["spec"]


def env_of(container: dict) -> dict:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container["env"]}


@pytest.mark.parametrize(("workload", "storage", "topology"), COMBINATIONS)
def test_every_manifest_is_valid_against_the_kubernetes_schema(workload, storage, topology):
    manifests = render_manifests(spec_for(workload, storage, topology))
    assert manifests
    for manifest in manifests:
        try:
            validated = kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(
                f"{manifest['kind']}/{manifest['metadata']['name']}: {'.'.join(map(str, error.path))}: {error}"
            )
        # The validator falls back to an older schema when it lacks the asked one; make sure it did not.
        assert validated == "1.36"


@pytest.mark.parametrize(("workload", "storage", "topology"), COMBINATIONS)
def test_seed_values_are_in_every_combination(workload, storage, topology):
    spec = spec_for(workload, storage, topology)
    manifests = render_manifests(spec)
    workloads = by_kind(
        manifests, "Deployment" if workload == "deployment" else workload.title().replace("set", "Set")
    )
    assert len(workloads) == (1 if workload == "statefulset" else len(spec.nodes))
    for manifest in workloads:
        (container,) = containers(manifest)
        assert container["image"].startswith("altibase/altibase:")
        env = env_of(container)
        ports = {(p["containerPort"], p["protocol"]) for p in container["ports"]}
        if topology == "pair":
            assert env["MODE"] == "replication" and env["SLAVE_REP_PORT"] == "20301"
            assert ports == {(20300, "TCP"), (20301, "TCP")}
        else:
            assert env["MODE"] == "daemon" and "SLAVE_REP_PORT" not in env
            assert ports == {(20300, "TCP")}
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert mounts == {"/home/altibase/altibase_home/dbs", "/home/altibase/altibase_home/logs"}

    node_services = [s for s in by_kind(manifests, "Service") if s["spec"].get("clusterIP") != "None"]
    assert [s["metadata"]["name"] for s in node_services] == [f"altibase-svc-{node}" for node in spec.nodes]
    for service in node_services:
        assert service["spec"]["type"] == "ClusterIP"
        expected_ports = [("service-port", 20300, 20300)]
        if topology == "pair":
            expected_ports.append(("replication-port", 20301, 20301))
        assert [(p["name"], p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == expected_ports


def test_seed_pair_in_detail():
    """The seed's replicated pair (P3+P5): two Deployments on NFS, two Services, names as in the seed."""
    manifests = render_manifests(ProvisionSpec(storage=NfsStorage(server="192.168.204.139")))
    assert [(m["kind"], m["metadata"]["name"]) for m in manifests] == [
        ("Service", "altibase-svc-node1"),
        ("Service", "altibase-svc-node2"),
        ("Deployment", "altibase-node1"),
        ("Deployment", "altibase-node2"),
    ]
    node2 = manifests[3]
    assert node2["spec"]["replicas"] == 1
    assert pod_spec_of(node2)["volumes"] == [
        {"name": "dbs", "nfs": {"server": "192.168.204.139", "path": "/home/altibase-nfs/node2/dbs"}},
        {"name": "logs", "nfs": {"server": "192.168.204.139", "path": "/home/altibase-nfs/node2/logs"}},
    ]
    # Each node's Service selects exactly that node's pods (the seed's app: altibase-node2).
    service2 = manifests[1]
    template_labels = node2["spec"]["template"]["metadata"]["labels"]
    assert service2["spec"]["selector"].items() <= template_labels.items()
    assert manifests[2]["spec"]["template"]["metadata"]["labels"]["altibase.io/node"] == "node1"


def test_production_additions():
    spec = ProvisionSpec(
        password_secret=SecretRef(name="altibase-sys", key="sys-password"),
        resources=ResourceSpec(cpu_request="1", memory_request="4Gi", cpu_limit="2", memory_limit="4Gi"),
    )
    deployment = by_kind(render_manifests(spec), "Deployment")[0]
    (container,) = containers(deployment)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["tcpSocket"] == {"port": "service"}
    assert {"name": "service", "containerPort": 20300, "protocol": "TCP"} in container["ports"]
    assert container["resources"] == {
        "requests": {"cpu": "1", "memory": "4Gi"},
        "limits": {"cpu": "2", "memory": "4Gi"},
    }
    # No password in the server pod (the image reads USER_PASSWD only for a FILE script), and so not
    # even the Secret's name: only the iSQL pods read the Secret.
    assert "USER_PASSWD" not in env_of(container) and "altibase-sys" not in manifests_yaml(render_manifests(spec))
    assert "manager" not in manifests_yaml(render_manifests(spec))
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod_spec = pod_spec_of(deployment)
    assert pod_spec["enableServiceLinks"] is False
    assert pod_spec["hostname"] == "altibase-node1"
    labels = deployment["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == "altibase"
    assert labels["app.kubernetes.io/instance"] == "altibase"
    assert labels["app.kubernetes.io/component"] == "database"
    assert labels["altibase.io/node"] == "node1"
    assert labels["altibase.io/topology"] == "pair"


def test_statefulset_has_headless_service_and_per_node_services():
    spec = ProvisionSpec(name="orders", workload="statefulset", storage=PvcStorage(size="50Gi"))
    manifests = render_manifests(spec)
    headless, svc1, svc2, stateful_set = manifests
    assert headless["metadata"]["name"] == "orders-headless"
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    assert stateful_set["spec"]["serviceName"] == "orders-headless"
    assert stateful_set["spec"]["replicas"] == 2
    assert stateful_set["spec"]["podManagementPolicy"] == "OrderedReady"
    assert stateful_set["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Retain"
    # The replication objects name the per-node Services, which select one pod each by its name.
    assert svc1["metadata"]["name"] == service_name(spec, "node1") == "orders-svc-node1"
    assert svc1["spec"]["selector"]["statefulset.kubernetes.io/pod-name"] == "orders-0"
    assert svc2["spec"]["selector"]["statefulset.kubernetes.io/pod-name"] == "orders-1"
    (claim_template,) = stateful_set["spec"]["volumeClaimTemplates"]
    assert claim_template["spec"]["resources"]["requests"]["storage"] == "50Gi"
    assert "storageClassName" not in claim_template["spec"]  # the cluster's default class
    assert claim_template["metadata"]["labels"]["app.kubernetes.io/instance"] == "orders"
    (container,) = containers(stateful_set)
    assert [(m["mountPath"], m["subPath"]) for m in container["volumeMounts"]] == [
        (DBS_MOUNT_PATH, "dbs"),
        (LOGS_MOUNT_PATH, "logs"),
    ]


def test_statefulset_on_nfs_uses_one_directory_per_pod():
    spec = ProvisionSpec(workload="statefulset", storage=NfsStorage(server="nfs.example.com"))
    stateful_set = by_kind(render_manifests(spec), "StatefulSet")[0]
    (container,) = containers(stateful_set)
    assert [m["subPathExpr"] for m in container["volumeMounts"]] == ["$(POD_NAME)/dbs", "$(POD_NAME)/logs"]
    assert env_of(container)["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert {v["nfs"]["path"] for v in pod_spec_of(stateful_set)["volumes"]} == {"/home/altibase-nfs"}


def test_pvc_for_deployments_is_one_claim_per_node():
    spec = ProvisionSpec(storage=PvcStorage(size="20Gi", storage_class="fast-ssd"))
    manifests = render_manifests(spec)
    claims = by_kind(manifests, "PersistentVolumeClaim")
    assert [c["metadata"]["name"] for c in claims] == ["altibase-data-node1", "altibase-data-node2"]
    assert claims[0]["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "20Gi"}},
        "storageClassName": "fast-ssd",
    }
    assert manifests.index(claims[-1]) < manifests.index(by_kind(manifests, "Deployment")[0])
    volumes = pod_spec_of(by_kind(manifests, "Deployment")[1])["volumes"]
    assert volumes == [{"name": "data", "persistentVolumeClaim": {"claimName": "altibase-data-node2"}}]


def test_bare_pods_and_single_server():
    manifests = render_manifests(ProvisionSpec(workload="pod", topology="single"))
    assert [(m["kind"], m["metadata"]["name"]) for m in manifests] == [
        ("Service", "altibase-svc-node1"),
        ("Pod", "altibase-node1"),
    ]
    assert manifests[1]["metadata"]["labels"]["altibase.io/topology"] == "single"


@pytest.mark.parametrize(("workload", "storage", "topology"), COMBINATIONS)
def test_every_workload_and_storage_makes_the_volumes_writable_by_the_images_group(workload, storage, topology):
    # kubelet creates a fresh claim's root and the dbs/logs sub-paths as root: fsGroup makes them the
    # image's group's (setgid, g+rw) and puts the server in that group
    for spec in (spec_for(workload, storage, topology), spec_for(workload, storage, topology, fs_group=4242)):
        for workload_manifest in [m for m in render_manifests(spec) if m["kind"] in ("Deployment", "StatefulSet", "Pod")]:
            pod_spec = pod_spec_of(workload_manifest)
            assert pod_spec["securityContext"] == {"fsGroup": spec.fs_group, "fsGroupChangePolicy": "OnRootMismatch"}
            assert all("securityContext" not in c for c in pod_spec["containers"])  # the image's own user
            assert kubernetes_validate.validate(workload_manifest, KUBERNETES_VERSION, strict=True) == "1.36"
    assert spec_for(workload, storage, topology).fs_group == 1000  # the vendor Dockerfile's altibase group


def test_a_group_id_that_is_not_one_is_refused():
    for bad in (0, -1, True, "1000x"):
        with pytest.raises(ProvisionSpecError, match="fs_group"):
            ProvisionSpec(fs_group=bad)
    assert ProvisionSpec.from_params({"fs_group": "2000"}).fs_group == 2000


@pytest.mark.parametrize("workload", ["deployment", "statefulset", "pod"])
def test_client_services_are_the_applications_and_service_control_may_steer_them_not_the_servers_own(workload):
    spec = ProvisionSpec(workload=workload, namespace="db", client_services=True)
    services = {m["metadata"]["name"]: m for m in by_kind(render_manifests(spec), "Service")}
    for node in spec.nodes:
        client, own = services[f"altibase-client-{node}"], services[service_name(spec, node)]
        assert kubernetes_validate.validate(client, KUBERNETES_VERSION, strict=True) == "1.36"
        assert client["spec"]["selector"] == own["spec"]["selector"]  # the same server's pods
        assert [p["port"] for p in client["spec"]["ports"]] == [spec.service_port]  # no replication port
        assert client["metadata"]["labels"]["app.kubernetes.io/component"] == "client"
        assert client["metadata"]["labels"]["app.kubernetes.io/instance"] == "altibase"  # teardown finds it
    # the chain: service control over the client Services passes the guard; over the servers' own, refused
    cluster = FakeApiServer()
    for manifest in services.values():
        cluster.put("services", manifest)
    core = service_clients(cluster)[0]
    uses = {f"{n}'s Connection": [service_fqdn(spec, n)] for n in spec.nodes}
    clients_only = {"namespace": "db", "services": {n: f"altibase-client-{n}" for n in spec.nodes}}
    assert database_service_problems(clients_only, uses, core) == []
    own = {"namespace": "db", "services": {n: service_name(spec, n) for n in spec.nodes}}
    assert [p.split(":")[0] for p in database_service_problems(own, uses, core)] == [
        "service_control.services.node1", "service_control.services.node2"]


def test_no_client_services_unless_asked():
    assert not [m for m in render_manifests(ProvisionSpec()) if "-client-" in m["metadata"]["name"]]
    assert ProvisionSpec.from_params({"client_services": True}).client_services is True


def test_yaml_output_round_trips_and_has_no_aliases():
    manifests = render_manifests(ProvisionSpec())
    text = manifests_yaml(manifests)
    assert "&id" not in text and "*id" not in text
    assert list(yaml.safe_load_all(text)) == manifests


def test_selectors_and_names():
    spec = ProvisionSpec(name="orders", namespace="db")
    assert (
        instance_selector("orders")
        == "app.kubernetes.io/instance=orders,app.kubernetes.io/managed-by=altibase-airflow-ops"
    )
    assert node_pod_selector(spec, "node2") == (
        "app.kubernetes.io/name=altibase,app.kubernetes.io/instance=orders,altibase.io/node=node2"
    )
    assert service_fqdn(spec, "node1") == "orders-svc-node1.db.svc"


def test_schema_validator_is_not_vacuous():
    """The validator really rejects a broken object: an unknown field and a string port."""
    service = render_manifests(ProvisionSpec())[0]
    service["spec"]["ports"][0]["port"] = "20300"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(service, KUBERNETES_VERSION, strict=True)
    deployment = render_manifests(ProvisionSpec())[2]
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


# --- parameters -------------------------------------------------------------------------------


def test_from_params_reads_the_flat_trigger_form():
    spec = ProvisionSpec.from_params(
        {
            "name": "orders",
            "namespace": "db",
            "image": "registry.example.com:5000/altibase/altibase:7.3.0.1",
            "topology": "pair",
            "workload": "statefulset",
            "storage": "nfs",
            "nfs_server": "10.0.0.5",
            "nfs_dbs_path": "/exports/{node}/dbs",
            "nfs_logs_path": "/exports/{node}/logs",
            "service_port": "21300",
            "replication_port": 21301,
            "password_secret_name": "orders-sys",
            "password_secret_key": "pw",
            "tables": [
                "t1 (c1 INTEGER PRIMARY KEY, c2 INTEGER)",
                "t2 (id BIGINT PRIMARY KEY, v VARCHAR(20))",
            ],
            "replication_name": "rep_orders",
            "memory_limit": "8Gi",
            "memory_request": "8Gi",
            "target": "kubernetes",  # a DAG-level param: not this object's business
            "dry_run": True,
            "pvc_size": "",  # empty form fields mean "not given"
        }
    )
    assert spec.storage == NfsStorage("10.0.0.5", "/exports/{node}/dbs", "/exports/{node}/logs")
    assert spec.service_port == 21300
    assert [t.name for t in spec.tables] == ["t1", "t2"]
    assert spec.password_secret == SecretRef("orders-sys", "pw")
    assert spec.resources.memory_limit == "8Gi"
    # the form's storage is a claim per node unless emptydir is asked for (a pod deletion would lose it)
    assert ProvisionSpec.from_params({}) == ProvisionSpec(storage=PvcStorage())


def test_parse_table_grammar():
    table = parse_table("t1 (c1 INTEGER PRIMARY KEY, c2 INTEGER)")
    assert table.name == "t1" and table.primary_key == ("c1",)
    assert [(c.name, c.type, c.nullable) for c in table.columns] == [
        ("c1", "INTEGER", False),
        ("c2", "INTEGER", True),
    ]
    composite = parse_table(
        "orders (id bigint, region char(2) not null, amount numeric(12, 2), PRIMARY KEY (ID, region))"
    )
    assert composite.primary_key == ("id", "region")  # spelled as declared
    assert [c.type for c in composite.columns] == ["BIGINT", "CHAR(2)", "NUMERIC(12,2)"]


BAD_PARAMETERS = [
    ({"name": "Altibase_1"}, "name 'Altibase_1': must be lowercase"),
    ({"name": "a" * 41}, "at most 40 characters"),
    ({"name": "1abc"}, "start with a letter"),
    ({"namespace": "Prod"}, "namespace 'Prod': must be a DNS-1123 label"),
    ({"image": "altibase/altibase"}, "pin a tag other than 'latest'"),
    ({"image": "altibase/altibase:latest"}, "pin a tag other than 'latest'"),
    ({"image": "altibase/altibase:7.1 ; rm"}, "not an image reference"),
    ({"topology": "triple"}, "topology 'triple': must be one of single, pair"),
    ({"workload": "daemonset"}, "workload 'daemonset': must be one of"),
    ({"service_port": 0}, "service_port 0: must be an integer between 1 and 65535"),
    ({"replication_port": 70000}, "replication_port 70000"),
    ({"replication_port": 20300}, "service_port and replication_port: must differ"),
    ({"storage": "ceph"}, "storage 'ceph': must be one of emptydir, nfs, pvc"),
    ({"storage": "nfs"}, "nfs_server: required when storage is 'nfs'"),
    ({"storage": "nfs", "nfs_server": "nfs server!"}, "nfs server 'nfs server!'"),
    ({"storage": "nfs", "nfs_server": "10.0.0.1", "nfs_dbs_path": "relative/{node}"}, "must be an absolute"),
    ({"storage": "nfs", "nfs_server": "10.0.0.1", "nfs_dbs_path": "/exports/dbs"}, "a pair needs {node}"),
    ({"storage": "nfs", "nfs_server": "10.0.0.1", "nfs_dbs_path": "/x/../{node}"}, "'..' segments"),
    ({"storage": "nfs", "nfs_server": "10.0.0.1", "nfs_dbs_path": "/x/n{node}"}, "as a whole path segment"),
    (
        {
            "storage": "nfs",
            "nfs_server": "10.0.0.1",
            "nfs_dbs_path": "/x/{node}",
            "nfs_logs_path": "/x/{node}",
        },
        "must differ",
    ),
    ({"storage": "pvc", "pvc_size": "10GB"}, "pvc size '10GB': not a Kubernetes quantity"),
    ({"storage": "pvc", "pvc_size": "0"}, "must be greater than zero"),
    ({"storage": "pvc", "pvc_storage_class": "Fast_SSD"}, "storage_class 'Fast_SSD'"),
    ({"password_secret_name": "sys/password"}, "password secret name"),
    ({"password_secret_key": "pass word"}, "password secret key"),
    ({"tables": []}, "at least one table"),
    ({"tables": ["t1 (c1 INTEGER)"]}, "needs a PRIMARY KEY"),
    ({"tables": ["t1; DROP TABLE x (c1 INTEGER PRIMARY KEY)"]}, "expected 'name (column TYPE, …)'"),
    ({"tables": ["t1 (c1 INTEGER PRIMARY KEY, c2 INTEGER DEFAULT 1)"]}, "unsupported constraint 'DEFAULT 1'"),
    ({"tables": ["t1 (c1 INTEGER PRIMARY KEY, c2 BLOB)"]}, "cannot read column definition 'c2 BLOB'"),
    ({"tables": ["t1 (c1 INTEGER PRIMARY KEY, c1 INTEGER)"]}, "column 'c1' is declared twice"),
    ({"tables": ["select (c1 INTEGER PRIMARY KEY)"]}, "table name 'select': is an SQL reserved word"),
    (
        {"tables": ["t1 (c1 INTEGER PRIMARY KEY)", "T1 (c1 INTEGER PRIMARY KEY)"]},
        "table 'T1': is listed twice",
    ),
    ({"tables": ["t1 (c1 INTEGER, PRIMARY KEY (c9))"]}, "primary key column 'c9' is not a column"),
    ({"tables": ["t1 (c1 CHAR(1) PRIMARY KEY, d DATE NOT NULL)"]}, "cannot fill NOT NULL column 'd'"),
    ({"replication_name": "rep-1"}, "replication_name 'rep-1': must start with a letter"),
    ({"replication_name": "r" * 41}, "at most 40 characters"),
    ({"cpu_request": "lots"}, "resources cpu_request 'lots'"),
    ({"memory_request": "4Gi", "memory_limit": "2Gi"}, "memory: request 4Gi exceeds limit 2Gi"),
]


@pytest.mark.parametrize(("params", "message"), BAD_PARAMETERS)
def test_bad_parameters_are_rejected_with_a_clear_message(params, message):
    with pytest.raises(ProvisionSpecError) as raised:
        ProvisionSpec.from_params(params)
    assert message in str(raised.value)


def test_all_problems_are_reported_at_once():
    with pytest.raises(ProvisionSpecError) as raised:
        ProvisionSpec(name="Bad_Name", namespace="UPPER", service_port=-1, replication_name="1rep")
    assert len(raised.value.problems) == 4
    assert str(raised.value).startswith("invalid provisioning parameters:\n  - name 'Bad_Name'")
