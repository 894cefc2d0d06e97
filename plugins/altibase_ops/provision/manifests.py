"""Kubernetes objects for one validated ``ProvisionSpec`` (P1–P5): names, selectors and the manifests
themselves, as plain dicts in the order they must be applied. Nothing here talks to a cluster."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from altibase_ops.provision.spec import (
    NODE_PLACEHOLDER,
    EmptyDirStorage,
    NfsStorage,
    ProvisionSpec,
    PvcStorage,
)

DBS_MOUNT_PATH = "/home/altibase/altibase_home/dbs"
LOGS_MOUNT_PATH = "/home/altibase/altibase_home/logs"
CONTAINER_NAME = "altibase"
# No USER_ID/USER_PASSWD: the image's entrypoint reads them only to run a FILE script, which these
# pods never do, and no variable of the image *sets* the SYS password. The Secret holds the password
# the database has (``manager`` on a fresh image) for the iSQL pods; it is not in the server's pod.

LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_NODE = "altibase.io/node"
LABEL_TOPOLOGY = "altibase.io/topology"
STATEFULSET_POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
APP_NAME = "altibase"
COMPONENT = "database"
CLIENT_COMPONENT = "client"
MANAGED_BY = "altibase-airflow-ops"
# --- names and selectors ------------------------------------------------------------------------


def workload_name(spec: ProvisionSpec, node: str | None = None) -> str:
    """Deployment/Pod name of a node; the StatefulSet (one for all nodes) is just ``<name>``."""
    if spec.workload == "statefulset":
        return spec.name
    return f"{spec.name}-{node}"


def pod_name(spec: ProvisionSpec, node: str) -> str | None:
    """The pod's name where Kubernetes makes it predictable (StatefulSet, bare Pod)."""
    if spec.workload == "statefulset":
        return f"{spec.name}-{spec.nodes.index(node)}"
    if spec.workload == "pod":
        return workload_name(spec, node)
    return None


def service_name(spec: ProvisionSpec, node: str) -> str:
    """The per-node ClusterIP Service: what clients, iSQL and the peer's replication connect to."""
    return f"{spec.name}-svc-{node}"


def client_service_name(spec: ProvisionSpec, node: str) -> str:
    """The application's own Service for a node (``client_services``): the one service control steers."""
    return f"{spec.name}-client-{node}"


def service_fqdn(spec: ProvisionSpec, node: str) -> str:
    """The Service name that resolves from any namespace (for runners outside ``spec.namespace``)."""
    return f"{service_name(spec, node)}.{spec.namespace}.svc"


def headless_service_name(spec: ProvisionSpec) -> str:
    return f"{spec.name}-headless"


def peer_node(spec: ProvisionSpec, node: str) -> str:
    if spec.topology != "pair":
        raise ValueError("a single server has no peer")
    return spec.nodes[1 - spec.nodes.index(node)]


def instance_labels(name: str) -> dict[str, str]:
    """Labels every object of one instance carries; teardown selects on them."""
    return {
        LABEL_NAME: APP_NAME,
        LABEL_INSTANCE: name,
        LABEL_COMPONENT: COMPONENT,
        LABEL_MANAGED_BY: MANAGED_BY,
    }


def instance_selector(name: str) -> str:
    """Label selector (string form) for every object of one instance."""
    return _selector_string({LABEL_INSTANCE: name, LABEL_MANAGED_BY: MANAGED_BY})


def node_pod_selector(spec: ProvisionSpec, node: str) -> str:
    """Label selector of the pod(s) serving one node."""
    return _selector_string(_node_pod_match_labels(spec, node))


def node_pod_labels(spec: ProvisionSpec, node: str) -> dict[str, str]:
    """The labels that select one node's pod(s) (a Service's selector, service control's server_selectors)."""
    return _node_pod_match_labels(spec, node)


def _selector_string(labels: Mapping[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in labels.items())


def _object_labels(spec: ProvisionSpec, node: str | None) -> dict[str, str]:
    labels = instance_labels(spec.name) | {LABEL_TOPOLOGY: spec.topology}
    if node is not None:
        labels[LABEL_NODE] = node
    return labels


def _workload_match_labels(spec: ProvisionSpec, node: str | None) -> dict[str, str]:
    # Selectors are immutable on Deployments and StatefulSets: only labels that never change for
    # the object's lifetime (no topology, no image version).
    labels = {LABEL_NAME: APP_NAME, LABEL_INSTANCE: spec.name}
    if node is not None:
        labels[LABEL_NODE] = node
    return labels


def _node_pod_match_labels(spec: ProvisionSpec, node: str) -> dict[str, str]:
    if spec.workload == "statefulset":
        # One pod template serves every node, so the per-node label is the controller's pod name.
        return _workload_match_labels(spec, None) | {STATEFULSET_POD_NAME_LABEL: pod_name(spec, node)}
    return _workload_match_labels(spec, node)


def _metadata(spec: ProvisionSpec, name: str, node: str | None) -> dict[str, Any]:
    return {"name": name, "namespace": spec.namespace, "labels": _object_labels(spec, node)}


# --- manifests ----------------------------------------------------------------------------------


def render_manifests(spec: ProvisionSpec) -> list[dict[str, Any]]:
    """All objects for ``spec``, in apply order: claims, Services, then workloads.

    Services come before the pods so their names resolve by the time the servers start and the
    replication objects are created.
    """
    claims = []
    if isinstance(spec.storage, PvcStorage) and spec.workload != "statefulset":
        claims = [_claim(spec, node) for node in spec.nodes]
    services = [_node_service(spec, node) for node in spec.nodes]
    if spec.client_services:
        services += [_client_service(spec, node) for node in spec.nodes]
    if spec.workload == "statefulset":
        return claims + [_headless_service(spec), *services, _stateful_set(spec)]
    if spec.workload == "pod":
        return claims + services + [_pod(spec, node) for node in spec.nodes]
    return claims + services + [_deployment(spec, node) for node in spec.nodes]


class _PlainDumper(yaml.SafeDumper):
    # Anchors and aliases (&id001) are legal YAML but unreadable in a dry-run listing.
    def ignore_aliases(self, data: Any) -> bool:
        return True


def manifests_yaml(manifests: Iterable[Mapping[str, Any]]) -> str:
    """One multi-document YAML text (for dry runs and for ``kubectl apply -f -``)."""
    return yaml.dump_all(list(manifests), Dumper=_PlainDumper, sort_keys=False)


def _service_ports(spec: ProvisionSpec) -> list[dict[str, Any]]:
    ports = [
        {
            "name": "service-port",
            "port": spec.service_port,
            "targetPort": spec.service_port,
            "protocol": "TCP",
        }
    ]
    if spec.topology == "pair":
        ports.append(
            {
                "name": "replication-port",
                "port": spec.replication_port,
                "targetPort": spec.replication_port,
                "protocol": "TCP",
            }
        )
    return ports


def _node_service(spec: ProvisionSpec, node: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(spec, service_name(spec, node), node),
        "spec": {
            "type": "ClusterIP",
            "selector": _node_pod_match_labels(spec, node),
            "ports": _service_ports(spec),
        },
    }


def _client_service(spec: ProvisionSpec, node: str) -> dict[str, Any]:
    # the SQL port only, and component "client": service control refuses the database's own Services
    # (service/guard.py), whose labels say component "database"
    metadata = _metadata(spec, client_service_name(spec, node), node)
    metadata["labels"][LABEL_COMPONENT] = CLIENT_COMPONENT
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {"type": "ClusterIP", "selector": _node_pod_match_labels(spec, node),
                 "ports": _service_ports(spec)[:1]},
    }


def _headless_service(spec: ProvisionSpec) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(spec, headless_service_name(spec), None),
        "spec": {
            "clusterIP": "None",
            # aku needs the pods resolvable before they are Ready (it runs during startup).
            "publishNotReadyAddresses": True,
            "selector": _workload_match_labels(spec, None),
            "ports": _service_ports(spec),
        },
    }


def _claim(spec: ProvisionSpec, node: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _metadata(spec, f"{spec.name}-data-{node}", node),
        "spec": _claim_spec(spec.storage),
    }


def _claim_spec(storage: PvcStorage) -> dict[str, Any]:
    claim: dict[str, Any] = {
        # One server per claim: two Altibase processes must never open the same data files.
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": storage.size}},
    }
    if storage.storage_class is not None:
        claim["storageClassName"] = storage.storage_class
    return claim


def _env(spec: ProvisionSpec) -> list[dict[str, Any]]:
    if spec.topology == "pair":
        env: list[dict[str, Any]] = [
            {"name": "MODE", "value": "replication"},
            {"name": "SLAVE_REP_PORT", "value": str(spec.replication_port)},
        ]
    else:
        env = [{"name": "MODE", "value": "daemon"}]
    if spec.workload == "statefulset" and isinstance(spec.storage, NfsStorage):
        # Feeds subPathExpr; deliberately not ALTIBASE_-prefixed, which the server reads as a property.
        env.append({"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})
    return env


def _container_ports(spec: ProvisionSpec) -> list[dict[str, Any]]:
    # Container port names are limited to 15 characters; the Service keeps the seed's longer names.
    ports = [{"name": "service", "containerPort": spec.service_port, "protocol": "TCP"}]
    if spec.topology == "pair":
        ports.append({"name": "replication", "containerPort": spec.replication_port, "protocol": "TCP"})
    return ports


def _probes() -> dict[str, Any]:
    def on_service_port(period: int, failures: int) -> dict[str, Any]:
        return {
            "tcpSocket": {"port": "service"},
            "periodSeconds": period,
            "failureThreshold": failures,
            "timeoutSeconds": 5,
        }

    return {
        # The first start creates the database; give it up to 10 minutes before liveness counts.
        "startupProbe": on_service_port(10, 60),
        "readinessProbe": on_service_port(10, 3),
        # A busy server can miss a probe or two; restart only after two minutes without a listener.
        "livenessProbe": on_service_port(20, 6),
    }


def _volumes_and_mounts(spec: ProvisionSpec, node: str | None) -> tuple[list[dict], list[dict]]:
    storage = spec.storage
    if isinstance(storage, EmptyDirStorage):
        empty_dir = {"sizeLimit": storage.size_limit} if storage.size_limit else {}
        volumes = [
            {"name": "dbs", "emptyDir": dict(empty_dir)},
            {"name": "logs", "emptyDir": dict(empty_dir)},
        ]
        return volumes, [
            {"name": "dbs", "mountPath": DBS_MOUNT_PATH},
            {"name": "logs", "mountPath": LOGS_MOUNT_PATH},
        ]
    if isinstance(storage, NfsStorage):
        volumes, mounts = [], []
        for volume, path, mount_path in (
            ("dbs", storage.dbs_path, DBS_MOUNT_PATH),
            ("logs", storage.logs_path, LOGS_MOUNT_PATH),
        ):
            mount = {"name": volume, "mountPath": mount_path}
            if node is None and NODE_PLACEHOLDER in path:
                export, _, rest = path.partition(f"/{NODE_PLACEHOLDER}")
                mount["subPathExpr"] = "$(POD_NAME)" + rest
                path = export or "/"
            else:
                path = path.replace(NODE_PLACEHOLDER, node or "")
            volumes.append({"name": volume, "nfs": {"server": storage.server, "path": path}})
            mounts.append(mount)
        return volumes, mounts
    mounts = [
        {"name": "data", "mountPath": DBS_MOUNT_PATH, "subPath": "dbs"},
        {"name": "data", "mountPath": LOGS_MOUNT_PATH, "subPath": "logs"},
    ]
    if node is None:  # StatefulSet: the claim comes from volumeClaimTemplates
        return [], mounts
    return [{"name": "data", "persistentVolumeClaim": {"claimName": f"{spec.name}-data-{node}"}}], mounts


def _pod_spec(spec: ProvisionSpec, node: str | None) -> dict[str, Any]:
    volumes, mounts = _volumes_and_mounts(spec, node)
    container = {
        "name": CONTAINER_NAME,
        "image": spec.image,
        "imagePullPolicy": "IfNotPresent",
        "ports": _container_ports(spec),
        "env": _env(spec),
        "volumeMounts": mounts,
        "resources": spec.resources.to_manifest(),
        **_probes(),
    }
    pod_spec: dict[str, Any] = {
        "containers": [container],
        # Service links inject variables such as ALTIBASE_SVC_NODE1_PORT; the image reads every
        # ALTIBASE_* variable as a server property, so they must not appear.
        "enableServiceLinks": False,
        # The database never calls the Kubernetes API.
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": 60,
        # A fresh claim's root and the dbs/logs sub-paths kubelet creates are root's: with fsGroup kubelet
        # makes the volume group-owned by the image's group (setgid, g+rw) and creates each sub-path with
        # the root's mode, and the server runs with that group. OnRootMismatch: no recursive walk of a
        # large database at every start once the root is right. NFS is not changed by kubelet: the
        # export's directories must be the image's group's (README).
        "securityContext": {"fsGroup": spec.fs_group, "fsGroupChangePolicy": "OnRootMismatch"},
    }
    if volumes:
        pod_spec["volumes"] = volumes
    return pod_spec


def _deployment(spec: ProvisionSpec, node: str) -> dict[str, Any]:
    pod_spec = _pod_spec(spec, node)
    # A stable hostname across pod replacements, for hostname-bound licences and readable logs.
    pod_spec["hostname"] = workload_name(spec, node)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(spec, workload_name(spec, node), node),
        "spec": {
            "replicas": 1,
            # Never two servers on one node's data files, not even for the length of a rollout.
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": _workload_match_labels(spec, node)},
            "template": {"metadata": {"labels": _object_labels(spec, node)}, "spec": pod_spec},
        },
    }


def _pod(spec: ProvisionSpec, node: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _metadata(spec, workload_name(spec, node), node),
        "spec": _pod_spec(spec, node) | {"restartPolicy": "Always"},
    }


def _stateful_set(spec: ProvisionSpec) -> dict[str, Any]:
    stateful_set: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _metadata(spec, workload_name(spec), None),
        "spec": {
            "serviceName": headless_service_name(spec),
            "replicas": len(spec.nodes),
            # aku's requirement; also starts node1 before node2, matching the P6 order.
            "podManagementPolicy": "OrderedReady",
            "updateStrategy": {"type": "RollingUpdate"},
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
            "selector": {"matchLabels": _workload_match_labels(spec, None)},
            "template": {"metadata": {"labels": _object_labels(spec, None)}, "spec": _pod_spec(spec, None)},
        },
    }
    if isinstance(spec.storage, PvcStorage):
        stateful_set["spec"]["volumeClaimTemplates"] = [
            {
                # Labels here end up on the claims, so teardown can find them by instance.
                "metadata": {"name": "data", "labels": _object_labels(spec, None)},
                "spec": _claim_spec(spec.storage),
            }
        ]
    return stateful_set
