"""The provisioning plan: everything a run sends, rendered from validated params (also the dry run)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from altibase_ops.provision.manifests import (
    manifests_yaml,
    peer_node,
    render_manifests,
    service_fqdn,
    service_name,
)
from altibase_ops.provision.request import ProvisionRequest
from altibase_ops.provision.simulator_target import simulator_server_name
from altibase_ops.provision.spec import EmptyDirStorage, NfsStorage, ProvisionSpec
from altibase_ops.provision.sql import render_proof_sql, render_setup_sql

# The P6 tasks: per node, its tables and its replication object in one iSQL script (the seed's
# order on each node); then START on every node, once every node has its replication object.
P6_STEPS = {"create_objects": ("P6.create_table", "P6.create_replication"),
            "start_replication": ("P6.start_replication",)}


def plan_provisioning(request: ProvisionRequest) -> dict[str, Any]:
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
    plan = {"manifests": manifests_yaml(render_manifests(spec)), "nodes": nodes,
            "warnings": storage_warnings(request)}
    plan["text"] = format_provision_plan(request, plan)
    return plan


def pod_deletion_loses(spec: ProvisionSpec) -> str:
    """What deleting (or evicting, or rescheduling) a server's pod would lose, for the plan."""
    storage = spec.storage
    if isinstance(storage, EmptyDirStorage):
        return ("EVERYTHING on that server: emptyDir lives and dies with the pod, so its database files, logs, "
                "tables and replication objects go with it; the replacement pod creates an empty database, where "
                "its peer's sender finds no replication object")
    if isinstance(storage, NfsStorage):
        return (f"nothing: dbs and logs live on the NFS export {storage.server}:{storage.dbs_path} / "
                f"{storage.logs_path}")
    claims = ", ".join(f"{spec.name}-data-{node}" if spec.workload != "statefulset" else f"data-{spec.name}-{i}"
                       for i, node in enumerate(spec.nodes))
    return f"nothing: dbs and logs live on the claims {claims} (kept by teardown unless delete_data)"


def storage_warnings(request: ProvisionRequest) -> list[str]:
    """Loud lines for the plan: emptyDir on a cluster."""
    spec = request.spec
    if request.target == "kubernetes" and isinstance(spec.storage, EmptyDirStorage):
        return [f"WARNING: storage emptydir — a pod deletion loses {pod_deletion_loses(spec)}. Use storage pvc "
                "(or nfs) for a database that must outlive its pod."]
    return []


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


def format_provision_plan(request: ProvisionRequest, plan: Mapping[str, Any]) -> str:
    spec = request.spec
    lines = [f"Provisioning {spec.name} in namespace {spec.namespace}: {spec.topology}, {spec.workload}, "
             f"{type(spec.storage).__name__}, image {spec.image}; target {request.target}, iSQL runner "
             f"{request.runner}", *plan["warnings"],
             f"Storage: a pod deletion loses {pod_deletion_loses(spec)}; the volumes are made writable by group "
             f"{spec.fs_group} (fsGroup){' — not on NFS: prepare the export' if isinstance(spec.storage, NfsStorage) else ''}"]
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


