"""Reading the nodes first (refuse objects that differ from the params), the final check after P7, and
the teardown's plan."""

from __future__ import annotations

import ipaddress
import json
import time
from dataclasses import dataclass
from typing import Any

from altibase_ops import kube_access
from altibase_ops.exceptions import AltibaseServerError
from altibase_ops.hooks.altibase import AltibaseHook
from altibase_ops.pairs import InvalidPairsError, add_to_fleet
from altibase_ops.provision.kube_apply import kubernetes_apis, remaining_objects
from altibase_ops.provision.manifests import (
    client_service_name,
    node_pod_labels,
    peer_node,
    service_fqdn,
    service_name,
)
from altibase_ops.provision.request import CLIENT_INFO, ProvisionError, ProvisionRequest, is_service_address
from altibase_ops.provision.simulator_target import simulator_remaining
from altibase_ops.provision.sql import render_proof_sql, render_teardown_sql
from altibase_ops.provision.tables import TableSpec
from altibase_ops.sql.identifiers import identifier
from altibase_ops.sql.templates import render_sql
from altibase_ops.state.catalog import TYPE_CODES


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
    with hook.session() as session:
        tables = {}
        for table in spec.tables:
            columns = session.dicts(render_sql("checks/read_table_columns.sql"), ("SYS", table.name.upper()))
            if columns:
                tables[table.name.upper()] = [(str(c["COLUMN_NAME"]).upper(), int(c["DATA_TYPE"])) for c in columns]
        replication = None
        found = session.dicts(render_sql("checks/read_replication.sql"), (rep,))
        if found:
            items = session.dicts(render_sql("checks/read_replication_items.sql"), (rep,))
            hosts = session.dicts(render_sql("provision/read_replication_hosts.sql"), (rep,))
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
        if not _is_ip_address(host) and not is_service_address(spec, peer, host):
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
            if spec.topology == "pair" and not state.replication:
                problems.append(f"{node}: replication {identifier(spec.replication_name)} is missing")
            elif node in spec.senders and not state.replication["started"]:
                problems.append(f"{node}: replication {identifier(spec.replication_name)} is not started")
            elif spec.topology == "pair" and node not in spec.senders and state.replication["started"]:
                problems.append(f"{node}: replication {identifier(spec.replication_name)} is started on the "
                                "standby (Active-Standby: only the active sends)")
            hook = AltibaseHook(altibase_conn_id=request.conn_ids[node], client_info=CLIENT_INFO)
            leftovers += [f"{node}: {select}" for select in selects if hook.get_first(select)]
        if problems:
            raise ProvisionError("the instance is not as provisioned:\n  - " + "\n  - ".join(problems))
        if not leftovers:
            break
        if time.monotonic() > deadline:
            raise ProvisionError(f"P7 proof rows still present after {timeout}s: {leftovers}")
        time.sleep(interval)
    log.info("provisioned: %s", summary)
    if spec.topology == "pair":
        # the same Connections serve the DDL and health DAGs: this is the pair in their terms
        pair = {"name": spec.name, "replication_name": identifier(spec.replication_name),
                "servers": [{"name": node, "conn_id": request.conn_ids[node], "role": spec.role(node)}
                            for node in spec.nodes]}
        if spec.client_services and request.target == "kubernetes":
            pair["service_control"] = {"mode": "kubernetes", "namespace": spec.namespace,
                                       "services": {node: client_service_name(spec, node) for node in spec.nodes},
                                       "server_selectors": {node: node_pod_labels(spec, node)
                                                            for node in spec.nodes}}
        elif request.target == "simulator":  # no application to ask a person about: the simulator's loads
            pair["service_control"] = {"mode": "simulator"}
        summary["pair"] = pair
        log.info("the pair in the DDL DAG's terms (servers, topology %s, replication_name): %s",
                 "active_standby" if spec.replication_roles == "active_standby" else "active_active",
                 json.dumps(pair))
        try:
            summary["fleet"] = add_to_fleet(pair)
            log.info("%s", summary["fleet"])
        except InvalidPairsError as exc:  # provisioned and proven all the same: say why it is not in the fleet
            summary["fleet"] = f"not added to the fleet: {exc}"
            log.warning("%s", summary["fleet"])
    return summary


# --- teardown ----------------------------------------------------------------------------------------


def instance_remaining(request: ProvisionRequest) -> list[str]:
    """What is left of the instance in its target (claims or files counted only with ``delete_data``)."""
    spec = request.spec
    if request.target == "kubernetes":
        core, apps = kubernetes_apis(request.kubernetes_conn_id)
        return remaining_objects(name=spec.name, namespace=spec.namespace, core=core, apps=apps,
                                 include_data=request.delete_data)
    return simulator_remaining(spec)


def plan_teardown(request: ProvisionRequest, log: Any) -> dict[str, Any]:
    """Read what is there and what the teardown would do. A node whose server answers gets STOP and
    DROP of the replication if it has one; a node that does not answer is skipped only when nothing of
    the instance is left, because dropping the workloads first would leave its replication behind."""
    spec = request.spec
    if request.target == "kubernetes":  # every permission of the run, before the first read of the cluster
        needs = kube_access.teardown(delete_data=request.delete_data, runner=request.runner)
        if problems := kube_access.access_problems(request.kubernetes_conn_id, {spec.namespace: needs},
                                                    "altibase_teardown"):
            raise ProvisionError("teardown cannot start; nothing was changed:\n  - " + "\n  - ".join(problems))
    objects = instance_remaining(request)
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
