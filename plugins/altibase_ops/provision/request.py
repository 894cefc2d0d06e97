"""Provisioning's params, validated into a ``ProvisionRequest``, and the Connections that reach the nodes."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow.sdk import Param
from airflow.sdk.exceptions import AirflowException, AirflowNotFoundException

from altibase_ops.backends import connection_problems as backend_problems
from altibase_ops.backends.simulator import STATE_DIR_ENV
from altibase_ops.hooks.altibase import AltibaseHook
from altibase_ops.operators.isql import RUNNERS
from altibase_ops.provision.manifests import service_fqdn, service_name
from altibase_ops.provision.spec import (
    DEFAULT_IMAGE,
    DEFAULT_REPLICATION_NAME,
    DEFAULT_TABLES,
    IMAGE_GROUP_ID,
    REPLICATION_PORT,
    SERVICE_PORT,
    ProvisionSpec,
)
from altibase_ops.sys_password import DEFAULT_SECRET_KEY, DEFAULT_SECRET_NAME

CLIENT_INFO = "airflow:altibase_provision"
TARGETS = ("kubernetes", "simulator")


class ProvisionError(AirflowException):
    """The parameters, the Connections or the servers' current state do not allow this run."""




def instance_params() -> dict[str, Param]:
    """The params both DAGs share: which instance, where, how to reach its servers."""
    return {
        "name": Param("altibase", type="string", pattern=r"^[a-z]([-a-z0-9]*[a-z0-9])?$", maxLength=40,
                      title="Instance name", section="Instance",
                      description="Prefix of every object: Deployments <name>-node1…, Services <name>-svc-node1…"),
        "namespace": Param("default", type="string", title="Namespace", section="Instance"),
        "topology": Param("pair", enum=["single", "pair"], title="Topology", section="Instance",
                          description="single: one server (P1–P4). pair: two servers replicating (P5–P7)."),
        "replication_name": Param(DEFAULT_REPLICATION_NAME, type="string", pattern=r"^[A-Za-z][A-Za-z0-9_]{0,39}$",
                                  title="Replication name", section="Instance"),
        "service_port": Param(SERVICE_PORT, type="integer", minimum=1, maximum=65535, title="Service port",
                              section="Instance"),
        "target": Param("simulator", enum=list(TARGETS), title="Target", section="Where",
                        description="kubernetes: the cluster of the Kubernetes connection. simulator: the embedded "
                                    "Altibase (ALTIBASE_SIM_STATE_DIR), servers registered under the Service names."),
        # Empty by default: named after the instance, so the default instance never takes the Connections
        # of a pair that is already there (make ui's pair1, the DDL DAG's default servers altibase_node1/2)
        "altibase_conn_ids": Param([], type="array", items={"type": "string"}, maxItems=2,
                                   title="Altibase connections (node1, node2)", section="Where",
                                   description="One altibase Connection per node: host = the node's Service name "
                                               "(<name>-svc-node1), port = the service port, login SYS. Empty: "
                                               "<name>_svc_node1, <name>_svc_node2 (make ui creates those of the "
                                               "default instance, altibase)."),
        "kubernetes_conn_id": Param("kubernetes_default", type="string", title="Kubernetes connection",
                                    section="Where"),
        "runner": Param("local", enum=list(RUNNERS), title="iSQL runner", section="Where",
                        description="local: `is` on the worker. kubernetes: a pod from the image per step, "
                                    "password from the Secret."),
        "password_secret_name": Param(DEFAULT_SECRET_NAME, type="string", title="SYS password Secret",
                                      section="Where",
                                      description="Kubernetes Secret (in the namespace) with the SYS password: "
                                                  "read by the Altibase pods and the iSQL pods, never by Airflow."),
        "password_secret_key": Param(DEFAULT_SECRET_KEY, type="string", title="Key in the Secret", section="Where"),
        "poke_interval_seconds": Param(10, type="number", minimum=0.1, title="Sensor poke interval (s)",
                                       section="Waits"),
    }


def provision_params() -> dict[str, Param]:
    """``altibase_provision``'s params: the instance's, plus what to build."""
    return {
        **instance_params(),
        "image": Param(DEFAULT_IMAGE, type="string", title="Image", section="Instance",
                       description="Pinned tag or digest (not latest): a re-run must start the same server."),
        "workload": Param("deployment", enum=["deployment", "statefulset", "pod"], title="Workload",
                          section="Instance"),
        "replication_port": Param(REPLICATION_PORT, type="integer", minimum=1, maximum=65535,
                                  title="Replication port", section="Instance"),
        "tables": Param(list(DEFAULT_TABLES), type="array", items={"type": "string"}, minItems=1,
                        title="Tables (created and replicated)", section="Instance",
                        description="name (column TYPE [PRIMARY KEY|NOT NULL], …), owned by SYS. The first "
                                    "takes the P7 proof rows (keys 1 and 2). Two or more: the DDL DAG takes a "
                                    "table out of the replication for its DDL, and Altibase refuses to take "
                                    "out the last one (ERR-6106F)."),
        "replication_roles": Param("active_standby", enum=["active_standby", "active_active"],
                                   title="Replication roles", section="Instance",
                                   description="active_standby: node1 (the active) sends, node2 (the standby) "
                                               "only receives — the pair the DDL DAG's Active-Standby variants "
                                               "expect; P7 proves node1 → node2. active_active: both send (the "
                                               "seed's pair); P7 proves both directions."),
        "client_services": Param(False, type="boolean", title="Client Services for the application",
                                 section="Instance",
                                 description="Also a Service per node for the application only (<name>-client-node1…, "
                                             "the SQL port). Kubernetes service control of the DDL DAG must steer "
                                             "these: the <name>-svc-node… Services carry the Connections and the "
                                             "replication, and the DDL DAG refuses to change them."),
        "storage": Param("pvc", enum=["pvc", "nfs", "emptydir"], title="Storage", section="Storage",
                         description="pvc (default): one claim per node, kept when a pod is replaced. nfs: the "
                                     "seed's volumes (the export's directories must be writable by the image's "
                                     "group, fs_group). emptydir: TESTS AND DEMOS ONLY — deleting, evicting or "
                                     "rescheduling a pod deletes its database and its replication objects."),
        "fs_group": Param(IMAGE_GROUP_ID, type="integer", minimum=1, title="Image group (fsGroup)", section="Storage",
                          description="The pod's fsGroup: the volumes are made writable by this group, and the "
                                      "server runs in it. The image's group (1000 in the vendor's Dockerfile)."),
        "nfs_server": Param(None, type=["null", "string"], title="NFS server", section="Storage"),
        "nfs_dbs_path": Param("/home/altibase-nfs/{node}/dbs", type="string", title="NFS path for dbs",
                              section="Storage", description="{node} becomes node1/node2."),
        "nfs_logs_path": Param("/home/altibase-nfs/{node}/logs", type="string", title="NFS path for logs",
                               section="Storage"),
        "pvc_size": Param("10Gi", type="string", title="Claim size", section="Storage"),
        "pvc_storage_class": Param(None, type=["null", "string"], title="Storage class", section="Storage",
                                   description="Empty: the cluster's default StorageClass."),
        "cpu_request": Param("500m", type="string", title="CPU request", section="Resources"),
        "memory_request": Param("4Gi", type="string", title="Memory request", section="Resources"),
        "cpu_limit": Param(None, type=["null", "string"], title="CPU limit", section="Resources",
                           description="Empty: none (CFS throttling stalls replication threads)."),
        "memory_limit": Param("4Gi", type=["null", "string"], title="Memory limit", section="Resources"),
        "ready_timeout_seconds": Param(900, type="integer", minimum=1, title="Readiness wait (s)",
                                       section="Waits"),
        "proof_timeout_seconds": Param(120, type="integer", minimum=1, title="P7 proof wait (s)",
                                       section="Waits"),
    }


def teardown_params() -> dict[str, Param]:
    """``altibase_teardown``'s params: the instance's, plus whether the data goes too."""
    return {
        **instance_params(),
        "image": Param(DEFAULT_IMAGE, type="string", title="iSQL image (kubernetes runner)", section="Where"),
        "delete_data": Param(False, type="boolean", title="Delete the data too", section="Instance",
                             description="Also delete the PersistentVolumeClaims (simulator: the servers' files). "
                                         "NFS directories are never touched."),
        "deleted_timeout_seconds": Param(300, type="integer", minimum=1, title="Deletion wait (s)",
                                         section="Waits"),
    }


@dataclass(frozen=True)
class ProvisionRequest:
    """A run's params, validated: the spec plus how to reach and change things."""

    spec: ProvisionSpec
    target: str
    conn_ids: Mapping[str, str]  # node -> Airflow Connection id
    runner: str
    kubernetes_conn_id: str
    delete_data: bool = False

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> ProvisionRequest:
        spec = ProvisionSpec.from_params(params)  # raises ProvisionSpecError listing every problem
        problems = []
        target, runner = params.get("target", "simulator"), params.get("runner", "local")
        if target not in TARGETS:
            problems.append(f"target {target!r}: must be one of {', '.join(TARGETS)}")
        if runner not in RUNNERS:
            problems.append(f"runner {runner!r}: must be one of {', '.join(RUNNERS)}")
        conn_ids = list(params.get("altibase_conn_ids") or ()) or [default_conn_id(spec, n) for n in spec.nodes]
        if len(conn_ids) < len(spec.nodes):
            problems.append(f"altibase_conn_ids: {len(spec.nodes)} needed for topology {spec.topology} "
                            f"(one per node), got {conn_ids}")
        if problems:
            raise ProvisionError("invalid parameters:\n  - " + "\n  - ".join(problems))
        return cls(spec=spec, target=target, conn_ids=dict(zip(spec.nodes, conn_ids, strict=False)),
                   runner=runner, kubernetes_conn_id=params.get("kubernetes_conn_id") or "kubernetes_default",
                   delete_data=bool(params.get("delete_data", False)))


def default_conn_id(spec: ProvisionSpec, node: str) -> str:
    """A node's Connection when the params name none: its Service's name (``altibase_svc_node1``)."""
    return service_name(spec, node).replace("-", "_")


def service_addresses(spec: ProvisionSpec, node: str) -> tuple[str, ...]:
    """The names a node's Service answers to in a cluster (and, registered as aliases, in the simulator)."""
    svc = service_name(spec, node)
    return (svc, f"{svc}.{spec.namespace}", service_fqdn(spec, node), f"{service_fqdn(spec, node)}.cluster.local")


def is_service_address(spec: ProvisionSpec, node: str, host: str | None) -> bool:
    host = (host or "").lower().rstrip(".")
    # Any cluster domain: <svc>.<namespace>.svc.<domain>
    return host in service_addresses(spec, node) or host.startswith(f"{service_fqdn(spec, node)}.")


def connection_problems(request: ProvisionRequest) -> list[str]:
    """Why the servers could not be reached as planned: each node's Connection must exist and point at
    that node's Service (never another pair's), and the simulator target needs its registry."""
    spec, problems = request.spec, []
    for node, conn_id in request.conn_ids.items():
        try:
            conn = AltibaseHook.get_connection(conn_id)
        except AirflowNotFoundException:
            problems.append(f"{node}: Airflow Connection {conn_id!r} not found; create it (type altibase, host "
                            f"{service_name(spec, node)}, port {spec.service_port}, login SYS)")
            continue
        if not is_service_address(spec, node, conn.host):
            problems.append(f"{node}: Connection {conn_id!r} has host {conn.host!r}, not {node}'s Service "
                            f"{service_name(spec, node)} (or {service_fqdn(spec, node)})")
        if int(conn.port or SERVICE_PORT) != spec.service_port:
            problems.append(f"{node}: Connection {conn_id!r} has port {conn.port}, not the service port "
                            f"{spec.service_port}")
        problems += [f"{node}: {problem}" for problem in backend_problems(conn_id, runner=request.runner)]
    if request.target == "simulator" and not os.environ.get(STATE_DIR_ENV):
        problems.append(f"target simulator: the worker has no {STATE_DIR_ENV}, so the Service names cannot "
                        "resolve to the simulator's servers; set it to the simulator's state directory")
    return problems
