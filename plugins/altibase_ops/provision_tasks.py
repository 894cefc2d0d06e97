"""The tasks of ``altibase_provision`` (P1–P7) and ``altibase_teardown`` (its undo).

The DAG files only wire these. Every task derives what it needs from the run's params again
(``ProvisionRequest.from_params``): the parameters are the whole input, so a cleared task re-runs
the same way, and no XCom carries anything a task could not recompute.

**Reaching the servers.** One Airflow Connection (type ``altibase``) per node, host = the node's
Service name (``altibase-svc-node1``, or its ``.<namespace>.svc`` form), port = the service port,
login SYS, password = the SYS password that the Kubernetes Secret also holds. ``plan`` refuses a
Connection whose host or port is not the node's Service, so a run can never provision one pair and
send its SQL to another. With ``target="simulator"`` the apply step registers each server under
those Service names, and the simulator's registry resolves them (the worker needs
``ALTIBASE_SIM_STATE_DIR``): the Connections, the SQL and the sensors are the same in both targets.
No Connection is created at run time, so no password is written anywhere by these DAGs.

**Idempotency.** Kubernetes objects: ``kube_apply`` reads each one first (create, leave alone, or
patch). Simulator servers: added only when absent. SQL: ``inspect_servers`` reads every node first
and refuses objects that exist with another definition (a table with other columns, a replication
to another peer or with other tables); the P6 statements then run with their "already done" codes
(``isql.ALREADY_DONE``: existing table, existing replication, sender already started) accepted, so a
re-run with the same params sends the same statements and changes nothing.

**Sessions.** Provisioning never needs admin mode, so every iSQL step and read here logs in as SYS
without SYSDBA (as the seed does). Only the P7 gap sensor uses SYSDBA (the shared check does), once
per direction on the row's origin, and nothing else holds a SYSDBA session on that server then.
"""

from __future__ import annotations

import ipaddress
import os
import time
from collections.abc import Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, BaseSensorOperator, Context, Param
from airflow.sdk.exceptions import AirflowException, AirflowNotFoundException, AirflowSkipException

from altibase_ops.ddl_statements import TYPE_CODES
from altibase_ops.hooks import AltibaseHook, AltibaseServerError, error_code
from altibase_ops.identifiers import identifier, render_sql
from altibase_ops.kube_apply import (
    apply_manifests,
    check_password_secret,
    check_pods_ready,
    remaining_objects,
    teardown,
)
from altibase_ops.manifests import (
    DEFAULT_IMAGE,
    DEFAULT_REPLICATION_NAME,
    DEFAULT_TABLE,
    REPLICATION_PORT,
    SERVICE_PORT,
    ProvisionSpec,
    TableSpec,
    manifests_yaml,
    node_ids_for,
    peer_node,
    render_manifests,
    service_fqdn,
    service_name,
)
from altibase_ops.operators import IsqlOperator
from altibase_ops.provision_sql import render_proof_sql, render_setup_sql, render_teardown_sql
from altibase_ops.sensors import ReplicationGapSensor

if TYPE_CHECKING:
    from kubernetes.client import AppsV1Api, CoreV1Api

CLIENT_INFO = "airflow:altibase_provision"
TARGETS = ("kubernetes", "simulator")
RUNNERS = ("local", "kubernetes")
# Login errors that waiting cannot fix: a readiness wait fails at once on them.
_LOGIN_REFUSED = frozenset({"4102D", "4102E"})  # invalid user / invalid password
_SIM_STATE_DIR_ENV = "ALTIBASE_SIM_STATE_DIR"  # altibase_sim.registry.STATE_DIR_ENV, imported lazily


class ProvisionError(AirflowException):
    """The parameters, the Connections or the servers' current state do not allow this run."""


# --- params ---------------------------------------------------------------------------------------


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
        "altibase_conn_ids": Param(["altibase_node1", "altibase_node2"], type="array", items={"type": "string"},
                                   minItems=1, maxItems=2, title="Altibase connections (node1, node2)",
                                   section="Where",
                                   description="One altibase Connection per node: host = the node's Service name "
                                               "(<name>-svc-node1), port = the service port, login SYS."),
        "kubernetes_conn_id": Param("kubernetes_default", type="string", title="Kubernetes connection",
                                    section="Where"),
        "runner": Param("local", enum=list(RUNNERS), title="iSQL runner", section="Where",
                        description="local: `is` on the worker. kubernetes: a pod from the image per step, "
                                    "password from the Secret."),
        "password_secret_name": Param("altibase-sys-password", type="string", title="SYS password Secret",
                                      section="Where",
                                      description="Kubernetes Secret (in the namespace) with the SYS password: "
                                                  "read by the Altibase pods and the iSQL pods, never by Airflow."),
        "password_secret_key": Param("password", type="string", title="Key in the Secret", section="Where"),
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
        "tables": Param([DEFAULT_TABLE], type="array", items={"type": "string"}, minItems=1,
                        title="Tables (created and replicated)", section="Instance",
                        description="name (column TYPE [PRIMARY KEY|NOT NULL], …), owned by SYS. The first "
                                    "takes the P7 proof rows (keys 1 and 2)."),
        "storage": Param("emptydir", enum=["emptydir", "nfs", "pvc"], title="Storage", section="Storage",
                         description="emptydir: data lives as long as the pod (tests, demos). nfs: the seed's "
                                     "volumes. pvc: one claim per node."),
        "nfs_server": Param(None, type=["null", "string"], title="NFS server", section="Storage"),
        "nfs_dbs_path": Param("/home/altibase-nfs/{node}/dbs", type="string", title="NFS path for dbs",
                              section="Storage", description="{node} becomes node1/node2."),
        "nfs_logs_path": Param("/home/altibase-nfs/{node}/logs", type="string", title="NFS path for logs",
                               section="Storage"),
        "pvc_size": Param("10Gi", type="string", title="Claim size", section="Storage"),
        "pvc_storage_class": Param(None, type=["null", "string"], title="Storage class", section="Storage",
                                   description="Empty: the cluster's default StorageClass."),
        "cpu_request": Param("500m", type="string", title="CPU request", section="Resources"),
        "memory_request": Param("2Gi", type="string", title="Memory request", section="Resources"),
        "cpu_limit": Param(None, type=["null", "string"], title="CPU limit", section="Resources",
                           description="Empty: none (CFS throttling stalls replication threads)."),
        "memory_limit": Param("2Gi", type=["null", "string"], title="Memory limit", section="Resources"),
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
        conn_ids = list(params.get("altibase_conn_ids") or ())
        if len(conn_ids) < len(spec.nodes):
            problems.append(f"altibase_conn_ids: {len(spec.nodes)} needed for topology {spec.topology} "
                            f"(one per node), got {conn_ids}")
        if problems:
            raise ProvisionError("invalid parameters:\n  - " + "\n  - ".join(problems))
        return cls(spec=spec, target=target, conn_ids=dict(zip(spec.nodes, conn_ids, strict=False)),
                   runner=runner, kubernetes_conn_id=params.get("kubernetes_conn_id") or "kubernetes_default",
                   delete_data=bool(params.get("delete_data", False)))


def service_addresses(spec: ProvisionSpec, node: str) -> tuple[str, ...]:
    """The names a node's Service answers to in a cluster (and, registered as aliases, in the simulator)."""
    svc = service_name(spec, node)
    return (svc, f"{svc}.{spec.namespace}", service_fqdn(spec, node), f"{service_fqdn(spec, node)}.cluster.local")


def _is_service_address(spec: ProvisionSpec, node: str, host: str | None) -> bool:
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
        if not _is_service_address(spec, node, conn.host):
            problems.append(f"{node}: Connection {conn_id!r} has host {conn.host!r}, not {node}'s Service "
                            f"{service_name(spec, node)} (or {service_fqdn(spec, node)})")
        if int(conn.port or SERVICE_PORT) != spec.service_port:
            problems.append(f"{node}: Connection {conn_id!r} has port {conn.port}, not the service port "
                            f"{spec.service_port}")
    if request.target == "simulator" and not os.environ.get(_SIM_STATE_DIR_ENV):
        problems.append(f"target simulator: the worker has no {_SIM_STATE_DIR_ENV}, so the Service names cannot "
                        "resolve to the simulator's servers; set it to the simulator's state directory")
    return problems


def request_from(context: Context) -> ProvisionRequest:
    return ProvisionRequest.from_params(context["params"])


# --- the plan (also the dry run's output) -----------------------------------------------------------


# The P6 tasks: per node, its tables and its replication object in one iSQL script (the seed's
# order on each node); then START on every node, once every node has its replication object.
P6_STEPS = {"create_objects": ("P6.create_table", "P6.create_replication"),
            "start_replication": ("P6.start_replication",)}


def build_plan(request: ProvisionRequest) -> dict[str, Any]:
    """Everything a provisioning run sends, rendered from validated params only (nothing contacted).

    ``manifests``: P1–P5 as YAML. ``nodes``: one entry per node — the mapping input of the P6 steps
    and the P7 proof — with its Connection, its P6 SQL per step and the proof of the row it
    originates (None where the topology has no such step: a single server has no replication).
    """
    spec = request.spec
    setup = render_setup_sql(spec)
    proofs = {row.node: row for row in render_proof_sql(spec)} if spec.topology == "pair" else {}
    nodes = []
    for node in spec.nodes:
        entry: dict[str, Any] = {"node": node, "altibase_conn_id": request.conn_ids[node],
                                 "target_host": service_fqdn(spec, node)}
        for step, setup_steps in P6_STEPS.items():
            entry[step] = "\n".join(s.sql for s in setup if s.step in setup_steps and s.node == node) or None
        row = proofs.get(node)
        entry["proof"] = None if row is None else {
            "peer": peer_node(spec, node), "peer_conn_id": request.conn_ids[peer_node(spec, node)],
            "insert": row.insert, "select": row.select, "delete": row.delete}
        nodes.append(entry)
    plan = {"manifests": manifests_yaml(render_manifests(spec)), "nodes": nodes}
    plan["text"] = format_plan(request, plan)
    return plan


def step_kwargs(step: str) -> Any:
    """For ``XComArg.map``: a plan's node entry -> the kwargs of that node's ``step`` iSQL task."""

    def kwargs(entry: Mapping[str, Any]) -> dict[str, Any]:
        return {"node": entry["node"], "altibase_conn_id": entry["altibase_conn_id"],
                "target_host": entry["target_host"], "sql": entry[step]}

    kwargs.__name__ = f"{step}_kwargs"
    return kwargs


def proof_kwargs(entry: Mapping[str, Any]) -> dict[str, Any]:
    """For ``XComArg.map``: a plan node entry -> the args of the P7 proof group for the row it originates."""
    proof = entry["proof"] or {}
    return {"origin_conn_id": entry["altibase_conn_id"] if proof else None,
            "peer_conn_id": proof.get("peer_conn_id"), "insert": proof.get("insert"),
            "select": proof.get("select"), "delete": proof.get("delete")}


def format_plan(request: ProvisionRequest, plan: Mapping[str, Any]) -> str:
    spec = request.spec
    lines = [f"Provisioning {spec.name} in namespace {spec.namespace}: {spec.topology}, {spec.workload}, "
             f"{type(spec.storage).__name__}, image {spec.image}; target {request.target}, iSQL runner "
             f"{request.runner}"]
    if request.target == "simulator":
        lines.append("P1–P5 (simulator): one server per node, registered under its Service names "
                     + ", ".join(f"{simulator_server_name(spec, n)} = {service_name(spec, n)}" for n in spec.nodes)
                     + "; the manifests below are what the kubernetes target would apply")
    lines += ["P1–P5 manifests:", plan["manifests"].rstrip()]
    for step in P6_STEPS:
        for entry in plan["nodes"]:
            if entry[step]:
                lines.append(f"P6 {step.replace('_', ' ')} on {entry['node']} ({entry['altibase_conn_id']}):\n  "
                             + entry[step].replace("\n", "\n  "))
    for entry in plan["nodes"]:
        if proof := entry["proof"]:
            origin, peer = entry["node"], proof["peer"]
            lines.append(f"P7 {origin} -> {peer}: on {origin} {proof['insert']}; gap 0 on {origin}; on {peer} "
                         f"wait for {proof['select']}; then on {origin} {proof['delete']}")
    return "\n".join(lines)


# --- the simulator target ----------------------------------------------------------------------------


def simulator_server_name(spec: ProvisionSpec, node: str) -> str:
    """The simulator server standing in for a node's pod (its Service names are its aliases)."""
    return f"{spec.name}-{node}"


def _simulator_state_dir() -> str:
    state_dir = os.environ.get(_SIM_STATE_DIR_ENV)
    if not state_dir:
        raise ProvisionError(f"target simulator needs {_SIM_STATE_DIR_ENV} in the worker's environment")
    return state_dir


def _registered(spec: ProvisionSpec) -> dict[str, dict[str, Any]]:
    """Registered simulator servers of this instance (either node name), read from the registry file."""
    from altibase_sim.registry import read_registry

    servers = read_registry(_simulator_state_dir()).get("servers", {})
    names = {simulator_server_name(spec, node) for node in node_ids_for("pair")}
    return {name: entry for name, entry in servers.items() if name in names}


def simulator_apply(spec: ProvisionSpec) -> list[str]:
    """P1–P5 in the simulator: a server per node under its Service names; existing ones are kept.

    Like ``kube_apply``: refuses a server of this instance that the params would not create (another
    topology), and a Service name already taken by another server (the simulator has one flat
    namespace, so a same-named instance in another namespace collides).
    """
    from altibase_sim.control import start_daemon

    control = start_daemon(_simulator_state_dir())  # the embedded default starts with the first use
    existing = {server["name"]: server for server in control.servers()}
    wanted = {simulator_server_name(spec, node): node for node in spec.nodes}
    stray = sorted(set(_registered(spec)) - set(wanted))
    if stray:
        raise ProvisionError(f"simulator servers {stray} of instance {spec.name} would not be created by these "
                             "parameters (another topology); run altibase_teardown first — it keeps the data")
    results = []
    for name, node in wanted.items():
        aliases = service_addresses(spec, node)
        taken = [s["name"] for s in existing.values()
                 if s["name"] != name and {a.lower() for a in s["aliases"]} & set(aliases)]
        if taken:
            raise ProvisionError(f"{service_name(spec, node)} already names simulator server(s) {taken}")
        server = existing.get(name)
        if server is None:
            control.add_server(name, aliases=list(aliases), replication_port=spec.replication_port)
            results.append(f"simulator server {name} ({service_name(spec, node)}): created")
            continue
        if not set(aliases) <= {a.lower() for a in server["aliases"]} or \
                server["replication_port"] != spec.replication_port:
            raise ProvisionError(f"simulator server {name} exists with aliases {server['aliases']} and replication "
                                 f"port {server['replication_port']}, not {list(aliases)} / {spec.replication_port}: "
                                 "another namespace or other ports; tear it down first or choose another name")
        if not server["up"]:
            # A stopped server is a crashed pod: Kubernetes would restart it, so does this.
            control.server_up(name)
            results.append(f"simulator server {name}: was down, started")
        else:
            results.append(f"simulator server {name} ({service_name(spec, node)}): unchanged")
    return results


def simulator_not_ready(spec: ProvisionSpec) -> list[str]:
    registered = _registered(spec)
    return [f"{node}: simulator server {simulator_server_name(spec, node)} "
            f"{'is down' if simulator_server_name(spec, node) in registered else 'does not exist'}"
            for node in spec.nodes
            if not registered.get(simulator_server_name(spec, node), {}).get("up", False)]


def simulator_teardown(spec: ProvisionSpec, *, delete_data: bool) -> list[str]:
    """Remove the instance's servers (both node names, whatever the topology); their files stay unless
    ``delete_data``. A server removed earlier with its files kept is re-opened and purged when
    ``delete_data`` is asked later, as a later teardown deletes the claims left behind in a cluster."""
    from altibase_sim.control import start_daemon

    control = start_daemon(_simulator_state_dir())
    registered = _registered(spec)
    results = []
    for node in node_ids_for("pair"):
        name = simulator_server_name(spec, node)
        if name in registered:
            control.remove_server(name, purge=delete_data)
            results.append(f"simulator server {name}: removed{', files deleted' if delete_data else ', files kept'}")
        elif delete_data:
            # Only the simulator knows where a server keeps its files: open it again, then purge.
            control.add_server(name, replication_port=spec.replication_port)
            control.remove_server(name, purge=True)
            results.append(f"simulator server {name}: absent; any kept files deleted")
        else:
            results.append(f"simulator server {name}: absent")
    return results


def simulator_remaining(spec: ProvisionSpec) -> list[str]:
    return [f"simulator server {name}" for name in sorted(_registered(spec))]


# --- the kubernetes target ---------------------------------------------------------------------------


def kubernetes_apis(kubernetes_conn_id: str) -> tuple[CoreV1Api, AppsV1Api]:
    """CoreV1Api/AppsV1Api from a KubernetesHook; call only inside execute/poke."""
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

    hook = KubernetesHook(conn_id=kubernetes_conn_id)
    return hook.core_v1_client, hook.apps_v1_client


# --- operators and sensors ----------------------------------------------------------------------------


class ApplyInstanceOperator(BaseOperator):
    """P1–P5: create or update the instance's objects (kubernetes) or its servers (simulator).

    Kubernetes: the SYS password Secret is checked first (names only), then every manifest is read
    and created, left alone or patched (``kube_apply.apply_manifests``). Returns one line per object.
    """

    ui_color = "#e4ecd4"

    def execute(self, context: Context) -> list[str]:
        request = request_from(context)
        spec = request.spec
        if request.target == "kubernetes":
            core, apps = kubernetes_apis(request.kubernetes_conn_id)
            check_password_secret(spec, core=core)
            results = [str(result) for result in apply_manifests(render_manifests(spec), core=core, apps=apps)]
        else:
            results = simulator_apply(spec)
        for line in results:
            self.log.info("%s", line)
        return results


class DeleteInstanceOperator(BaseOperator):
    """Teardown: delete the workloads and Services (kubernetes, found by the instance's labels) or the
    simulator servers; the claims (simulator: the files) only with ``delete_data``."""

    ui_color = "#f2dcdc"

    def execute(self, context: Context) -> list[str]:
        request = request_from(context)
        spec = request.spec
        if request.target == "kubernetes":
            core, apps = kubernetes_apis(request.kubernetes_conn_id)
            results = [str(r) for r in teardown(name=spec.name, namespace=spec.namespace, core=core, apps=apps,
                                                delete_data=request.delete_data)]
        else:
            results = simulator_teardown(spec, delete_data=request.delete_data)
        for line in results or ["nothing of this instance was left"]:
            self.log.info("%s", line)
        return results


class _ParamTimedSensor(BaseSensorOperator):
    """A rescheduling sensor whose timeout and poke interval come from the run's params."""

    timeout_param = ""

    def __init__(self, **kwargs: Any) -> None:
        # Waits of minutes (pods starting, images pulling) hold no worker slot between pokes.
        kwargs.setdefault("mode", "reschedule")
        super().__init__(**kwargs)

    def execute(self, context: Context) -> Any:
        self.timeout = float(context["params"][self.timeout_param])
        self.poke_interval = float(context["params"]["poke_interval_seconds"])
        return super().execute(context)


def login_problem(conn_id: str) -> str | None:
    """None when the server of ``conn_id`` accepts a login; else why not (raises when it never will)."""
    try:
        AltibaseHook(altibase_conn_id=conn_id, client_info=CLIENT_INFO).get_records("SELECT DUMMY FROM DUAL")
    except AltibaseServerError as exc:
        if exc.code in _LOGIN_REFUSED:
            raise ProvisionError(f"{exc}: the Connection's login or password is not the server's") from None
        return str(exc)
    return None


class InstanceReadySensor(_ParamTimedSensor):
    """Wait until every node runs and accepts a login through its Connection (after P1–P5).

    Kubernetes: every node's pod Ready with its workload rolled out (``kube_apply.check_pods_ready``,
    which fails at once on a bad image, a missing Secret or a crash loop). Simulator: every server
    registered and up. Both: a login through each node's Connection, the path P6 and P7 take.
    """

    timeout_param = "ready_timeout_seconds"
    ui_color = "#d9ecf2"

    def poke(self, context: Context) -> bool:
        request = request_from(context)
        spec = request.spec
        if request.target == "kubernetes":
            core, apps = kubernetes_apis(request.kubernetes_conn_id)
            report = check_pods_ready(spec, core=core, apps=apps)
            self.log.info("pods: %s", report)
            if not report.all_ready:
                return False
        elif waiting := simulator_not_ready(spec):
            self.log.info("waiting: %s", "; ".join(waiting))
            return False
        for node, conn_id in request.conn_ids.items():
            if problem := login_problem(conn_id):
                self.log.info("%s: no login yet through %s: %s", node, conn_id, problem)
                return False
        self.log.info("every node is ready and accepts a login: %s", dict(request.conn_ids))
        return True


class InstanceDeletedSensor(_ParamTimedSensor):
    """Teardown: wait until nothing of the instance is left (pods included; claims with ``delete_data``)."""

    timeout_param = "deleted_timeout_seconds"
    ui_color = "#d9ecf2"

    def poke(self, context: Context) -> bool:
        request = request_from(context)
        spec = request.spec
        if request.target == "kubernetes":
            core, apps = kubernetes_apis(request.kubernetes_conn_id)
            left = remaining_objects(name=spec.name, namespace=spec.namespace, core=core, apps=apps,
                                     include_data=request.delete_data)
        else:
            left = simulator_remaining(spec)
        if left:
            self.log.info("still present: %s", ", ".join(left))
            return False
        self.log.info("nothing of instance %s is left in %s", spec.name, spec.namespace)
        return True


class ProvisionIsqlOperator(IsqlOperator):
    """IsqlOperator for provisioning: the runner and the Secret come from params (templated), the
    login is SYS without SYSDBA (the seed's), and ``node`` labels the mapped instance in the UI."""

    template_fields: Sequence[str] = (*IsqlOperator.template_fields, "runner", "kubernetes_conn_id",
                                      "password_secret_name", "password_secret_key")

    def __init__(self, *, node: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("sysdba", False)
        kwargs.setdefault("runner", "{{ params.runner }}")
        kwargs.setdefault("namespace", "{{ params.namespace }}")
        kwargs.setdefault("image", "{{ params.image }}")
        kwargs.setdefault("kubernetes_conn_id", "{{ params.kubernetes_conn_id }}")
        kwargs.setdefault("password_secret_name", "{{ params.password_secret_name }}")
        kwargs.setdefault("password_secret_key", "{{ params.password_secret_key }}")
        super().__init__(**kwargs)
        self.node = node

    def execute(self, context: Context) -> Any:
        if not self.sql:
            # Mapped over every node; a single server has no replication and no proof.
            raise AirflowSkipException(f"no statement for {self.node} in this step (topology "
                                       f"{context['params'].get('topology')})")
        return super().execute(context)


class ProofRowOperator(BaseOperator):
    """P7: insert (or remove) a proof row on its origin, one statement through the node's Connection.

    The hook, not an iSQL process: the proof's reads are the sensors' anyway, so P7 needs the worker
    to reach the servers whatever the runner; one statement on a short session is all it takes.
    A duplicate key fails: a row already there under a proof key is never claimed (it may be the
    application's), and the removal only runs after this run's own insert.
    """

    template_fields: Sequence[str] = ("altibase_conn_id", "sql")
    template_fields_renderers = {"sql": "sql"}
    ui_color = "#f0e4d4"

    def __init__(self, *, altibase_conn_id: str | None, sql: str | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.altibase_conn_id = altibase_conn_id
        self.sql = sql

    def execute(self, context: Context) -> int:
        if not self.sql or not self.altibase_conn_id:
            raise AirflowSkipException(f"no proof for topology {context['params'].get('topology')}")
        hook = AltibaseHook(altibase_conn_id=self.altibase_conn_id, client_info=CLIENT_INFO)
        statement = self.sql.strip().rstrip(";")
        with closing(hook.get_conn()) as conn:
            cursor = conn.cursor()
            try:
                cursor.execute(statement)
            except Exception as exc:
                code, message = error_code(exc)
                if message is None:
                    raise
                hint = ""
                if code == "11058":
                    hint = (" — a row with the proof key is already there (the application's, or left by a run "
                            "whose removal failed); the proof never overwrites it: remove it, or list first a "
                            "table without such a row")
                raise ProvisionError(f"{self.altibase_conn_id}: {statement} failed: [ERR-{code} : {message}]"
                                     f"{hint}") from None
            count = cursor.rowcount
        self.log.info("%s on %s: %s row(s)", statement, self.altibase_conn_id, count)
        return count


class ProofGapSensor(ReplicationGapSensor):
    """P7: the proof row's origin has sent everything (V$REPGAP gap 0; fails at once without a sender)."""

    def execute(self, context: Context) -> Any:
        self.timeout = float(context["params"]["proof_timeout_seconds"])
        self.poke_interval = float(context["params"]["poke_interval_seconds"])
        return super().execute(context)


class ProofRowSensor(_ParamTimedSensor):
    """P7: wait until the peer shows the proof row (``sql`` selects it by its key)."""

    template_fields: Sequence[str] = ("altibase_conn_id", "sql")
    timeout_param = "proof_timeout_seconds"
    ui_color = "#d9ecf2"

    def __init__(self, *, altibase_conn_id: str, sql: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.altibase_conn_id = altibase_conn_id
        self.sql = sql

    def poke(self, context: Context) -> bool:
        rows = AltibaseHook(altibase_conn_id=self.altibase_conn_id, client_info=CLIENT_INFO).get_records(self.sql)
        self.log.info("%s on %s: %s", self.sql, self.altibase_conn_id, rows or "no row yet")
        return bool(rows)


# --- reading the servers first ---------------------------------------------------------------------


def _rows(cursor: Any, sql: str, parameters: tuple = ()) -> list[dict[str, Any]]:
    cursor.execute(sql.strip().rstrip(";"), parameters)
    columns = [column[0].upper() for column in cursor.description or ()]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


@dataclass
class NodeState:
    """What one server already has of what the params want."""

    node: str
    tables: dict[str, list[tuple[str, int]]]  # TABLE -> [(COLUMN, DATA_TYPE)] in order; absent tables left out
    replication: dict[str, Any] | None  # {"started", "items", "hosts"} or None when absent

    def summary(self) -> dict[str, Any]:
        replication = None
        if self.replication is not None:
            replication = "started" if self.replication["started"] else "stopped"
        return {"tables": sorted(self.tables), "replication": replication}


def read_node(request: ProvisionRequest, node: str) -> NodeState:
    """The listed tables and the replication object on one node, on one short SYS session."""
    spec = request.spec
    rep = identifier(spec.replication_name)
    hook = AltibaseHook(altibase_conn_id=request.conn_ids[node], client_info=CLIENT_INFO)
    with closing(hook.get_conn()) as conn:
        cursor = conn.cursor()
        tables = {}
        for table in spec.tables:
            columns = _rows(cursor, render_sql("checks/read_table_columns.sql"), ("SYS", table.name.upper()))
            if columns:
                tables[table.name.upper()] = [(str(c["COLUMN_NAME"]).upper(), int(c["DATA_TYPE"])) for c in columns]
        replication = None
        found = _rows(cursor, render_sql("checks/read_replication.sql"), (rep,))
        if found:
            items = _rows(cursor, render_sql("checks/read_replication_items.sql"), (rep,))
            hosts = _rows(cursor, render_sql("provision/read_replication_hosts.sql"), (rep,))
            replication = {
                "started": int(found[0]["IS_STARTED"]) == 1,
                "items": sorted(f"{r['LOCAL_USER_NAME']}.{r['LOCAL_TABLE_NAME']}".upper() for r in items),
                "hosts": [(str(h["HOST_IP"]), int(h["PORT_NO"])) for h in hosts],
            }
    return NodeState(node, tables, replication)


def _wanted_columns(table: TableSpec) -> list[tuple[str, int | None]]:
    """(COLUMN, DATA_TYPE code) as SYS_COLUMNS_ reports them for the table the params describe."""
    wanted = []
    for column in table.columns:
        base = column.type.split("(")[0]
        wanted.append((column.name.upper(), TYPE_CODES.get("NUMERIC" if base == "DECIMAL" else base)))
    return wanted


def state_problems(request: ProvisionRequest, state: NodeState) -> list[str]:
    """Objects that exist on a node with another definition than the params ask for."""
    spec, node, problems = request.spec, state.node, []
    for table in spec.tables:
        existing = state.tables.get(table.name.upper())
        if existing is not None and existing != _wanted_columns(table):
            problems.append(f"{node}: table SYS.{table.name.upper()} exists with columns {existing} "
                            f"(name, type code), not {_wanted_columns(table)}")
    if state.replication is None:
        return problems
    rep = identifier(spec.replication_name)
    if spec.topology != "pair":
        problems.append(f"{node}: replication {rep} exists, but topology single creates none; tear it down first")
        return problems
    wanted_items = sorted(f"SYS.{t.name.upper()}" for t in spec.tables)
    if state.replication["items"] != wanted_items:
        problems.append(f"{node}: replication {rep} exists with tables {state.replication['items']}, "
                        f"not {wanted_items}")
    peer = peer_node(spec, node)
    hosts = state.replication["hosts"]
    if len(hosts) != 1:
        problems.append(f"{node}: replication {rep} has {len(hosts)} peer addresses {hosts}, not one")
    for host, port in hosts:
        if port != spec.replication_port:
            problems.append(f"{node}: replication {rep} sends to port {port}, not {spec.replication_port}")
        if not _is_ip_address(host) and not _is_service_address(spec, peer, host):
            problems.append(f"{node}: replication {rep} sends to {host!r}, not {peer}'s Service "
                            f"{service_name(spec, peer)}")
    return problems


def _is_ip_address(host: str) -> bool:
    # A server may report the address it resolved; an IP cannot be compared with a Service name.
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def inspect_servers(request: ProvisionRequest, log: Any) -> dict[str, Any]:
    """Read every node before P6; refuse (changing nothing) when an object differs from the params."""
    states = {node: read_node(request, node) for node in request.spec.nodes}
    problems = [problem for state in states.values() for problem in state_problems(request, state)]
    if problems:
        raise ProvisionError("existing objects differ from the parameters; nothing was changed:\n  - "
                             + "\n  - ".join(problems)
                             + "\nDrop them (altibase_teardown drops the replication) or change the parameters.")
    summary = {node: state.summary() for node, state in states.items()}
    for node, found in summary.items():
        log.info("%s already has: tables %s, replication %s", node, found["tables"] or "none",
                 found["replication"] or "none")
    return summary


def verify_provisioned(request: ProvisionRequest, log: Any, *, timeout: float, interval: float) -> dict[str, Any]:
    """After P7: every node has the tables and (pair) a started replication, and no proof row is left
    anywhere (the peer's copy goes by replication, so it is awaited, bounded)."""
    spec = request.spec
    deadline = time.monotonic() + timeout
    selects = [row.select for row in render_proof_sql(spec)] if spec.topology == "pair" else []
    while True:
        problems, leftovers, summary = [], [], {}
        for node in spec.nodes:
            state = read_node(request, node)
            summary[node] = state.summary()
            missing = [t.name.upper() for t in spec.tables if t.name.upper() not in state.tables]
            if missing:
                problems.append(f"{node}: tables {missing} missing")
            if spec.topology == "pair" and not (state.replication and state.replication["started"]):
                problems.append(f"{node}: replication {identifier(spec.replication_name)} is not started")
            hook = AltibaseHook(altibase_conn_id=request.conn_ids[node], client_info=CLIENT_INFO)
            leftovers += [f"{node}: {select}" for select in selects if hook.get_records(select)]
        if problems:
            raise ProvisionError("the instance is not as provisioned:\n  - " + "\n  - ".join(problems))
        if not leftovers:
            break
        if time.monotonic() > deadline:
            raise ProvisionError(f"P7 proof rows still present after {timeout}s: {leftovers}")
        time.sleep(interval)
    log.info("provisioned: %s", summary)
    return summary


# --- teardown ----------------------------------------------------------------------------------------


def plan_teardown(request: ProvisionRequest, log: Any) -> dict[str, Any]:
    """Read what is there and what the teardown would do. A node whose server answers gets STOP and
    DROP of the replication if it has one; a node that does not answer is skipped only when nothing of
    the instance is left, because dropping the workloads first would leave its replication behind."""
    spec = request.spec
    if request.target == "kubernetes":
        core, apps = kubernetes_apis(request.kubernetes_conn_id)
        objects = remaining_objects(name=spec.name, namespace=spec.namespace, core=core, apps=apps,
                                    include_data=request.delete_data)
    else:
        objects = simulator_remaining(spec)
    sql = {s.step: s.sql for s in render_teardown_sql(spec)}
    nodes, problems, notes = [], [], []
    if spec.topology == "pair":
        for node in spec.nodes:
            try:
                state = read_node(request, node)
            except AltibaseServerError as exc:
                if objects:
                    problems.append(f"{node}: the server does not answer ({exc}) while {objects} still exist; "
                                    "its replication cannot be dropped. Bring it up (or remove the replication by "
                                    "hand) and run the teardown again")
                else:
                    notes.append(f"{node}: nothing left to stop (no server, no objects)")
                continue
            if state.replication is None:
                notes.append(f"{node}: replication {identifier(spec.replication_name)} does not exist")
                continue
            nodes.append({"node": node, "altibase_conn_id": request.conn_ids[node],
                          "target_host": service_fqdn(spec, node), "stop_replication": sql["teardown.stop_replication"],
                          "drop_replication": sql["teardown.drop_replication"]})
    if problems:
        raise ProvisionError("teardown cannot start; nothing was changed:\n  - " + "\n  - ".join(problems))
    text = "\n".join(
        [f"Teardown of {spec.name} in namespace {spec.namespace} (target {request.target}); "
         f"data {'DELETED' if request.delete_data else 'kept'}"]
        + [f"on {n['node']} ({n['altibase_conn_id']}): {n['stop_replication']} then {n['drop_replication']}"
           for n in nodes]
        + notes
        + [f"to delete: {', '.join(objects) or 'nothing'}"])
    log.info("%s", text)
    return {"nodes": nodes, "objects": objects, "text": text}
