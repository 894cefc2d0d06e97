"""P1–P5 in the simulator: one server per node, registered under its Service names, so the same
Connections, SQL and sensors serve both targets. Through ``backends.simulator`` only."""

from __future__ import annotations

import os
from typing import Any

from altibase_ops.backends import simulator as simulator_backend
from altibase_ops.backends.simulator import STATE_DIR_ENV
from altibase_ops.provision.manifests import service_name
from altibase_ops.provision.request import ProvisionError, service_addresses
from altibase_ops.provision.spec import ProvisionSpec, node_ids_for


def simulator_server_name(spec: ProvisionSpec, node: str) -> str:
    """The simulator server standing in for a node's pod (its Service names are its aliases)."""
    return f"{spec.name}-{node}"


def _simulator_state_dir() -> str:
    state_dir = os.environ.get(STATE_DIR_ENV)
    if not state_dir:
        raise ProvisionError(f"target simulator needs {STATE_DIR_ENV} in the worker's environment")
    return state_dir


def _registered(spec: ProvisionSpec) -> dict[str, dict[str, Any]]:
    """Registered simulator servers of this instance (either node name), read from the registry file."""
    servers = simulator_backend.registered_servers(_simulator_state_dir())
    names = {simulator_server_name(spec, node) for node in node_ids_for("pair")}
    return {name: entry for name, entry in servers.items() if name in names}


def simulator_apply(spec: ProvisionSpec) -> list[str]:
    """P1–P5 in the simulator: a server per node under its Service names; existing ones are kept.

    Like ``kube_apply``: refuses a server of this instance that the params would not create (another
    topology), and a Service name already taken by another server (the simulator has one flat
    namespace, so a same-named instance in another namespace collides).
    """
    control = simulator_backend.start(_simulator_state_dir())
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
    control = simulator_backend.start(_simulator_state_dir())
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


