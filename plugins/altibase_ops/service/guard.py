"""The Services kubernetes service control may change, and the database's own, which it must not.

Provisioning makes one Service per server (``<name>-svc-<node>``) that carries both the SQL port and
the replication port: the DAG's Connections and the peer's replication (``WITH '<Service>', port``,
kept in ``SYSTEM_.SYS_REPL_HOSTS_``) reach the server through it. Service control that changed it would
cut its own sessions and the replication link at O1, and in rolling mode send one server's Connection
to the other server's pods. So ``service_control.services`` must name Services of the application's
own (provisioning's ``client_services`` makes them), and a run refuses one that is:

- the host of a server's Connection (by name in any of its DNS forms, or by its cluster IP);
- a replication host of the pair (``SYS_REPL_HOSTS_.HOST_IP``, likewise);
- a Service provisioning made for the database (its labels say so).

Pure: the caller reads the Connections, the replication hosts and the Services (``ddl/cluster.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# provisioning's labels (provision/manifests.py, spelled out: this module must not import provisioning)
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_COMPONENT = "app.kubernetes.io/component"
MANAGED_BY = "altibase-airflow-ops"
DATABASE_COMPONENT = "database"


def names_service(host: str | None, service: str, namespace: str, cluster_ips: Iterable[str] = ()) -> bool:
    """Whether ``host`` reaches ``service`` in ``namespace``: its short name (from inside the namespace),
    ``<svc>.<ns>``, ``<svc>.<ns>.svc[.<cluster domain>]``, or one of its cluster IPs."""
    host = (host or "").strip().lower().rstrip(".")
    if not host:
        return False
    service = service.lower()
    return (host in (service, f"{service}.{namespace}", f"{service}.{namespace}.svc")
            or host.startswith(f"{service}.{namespace}.svc.")
            or host in {ip for ip in cluster_ips if ip and ip != "None"})


def database_service_problems(control: Mapping[str, Any], uses: Mapping[str, Iterable[str]], core: Any) -> list[str]:
    """Each ``service_control.services`` entry that is one of the database's own Services, and why.
    ``uses``: who reaches the database through which addresses ({"node1's Connection": [host, its
    address]}, {"node2's replication (SYS_REPL_HOSTS_)": [hosts]})."""
    namespace = control["namespace"]
    problems = []
    for server, name in sorted((control.get("services") or {}).items()):
        service = core.read_namespaced_service(name, namespace)
        ips = [service.spec.cluster_ip, *(service.spec.cluster_ips or [])]
        reasons = [f"{user} reaches the database through it ({host})" for user, hosts in uses.items()
                   for host in dict.fromkeys(hosts) if names_service(host, name, namespace, ips)]
        labels = service.metadata.labels or {}
        if labels.get(LABEL_MANAGED_BY) == MANAGED_BY and labels.get(LABEL_COMPONENT) == DATABASE_COMPONENT:
            reasons.append("altibase_provision made it for the database itself (labels "
                           f"{LABEL_COMPONENT}={DATABASE_COMPONENT}, {LABEL_MANAGED_BY}={MANAGED_BY})")
        if reasons:
            problems.append(
                f"service_control.services.{server}: Service {name} in {namespace} is the database's own Service: "
                + "; ".join(reasons) + ". Changing it would cut the DAG's own sessions and the replication link "
                "(and in rolling mode send a server's Connection to the other server's pods). Give the application "
                "a Service of its own (altibase_provision's client_services makes one per server) and name that")
    return problems
