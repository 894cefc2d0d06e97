"""The DDL run's cluster gates, in ``validate_params``: before ``recover_leftovers`` or any step can change
anything, the run must be allowed to do what it will do there (RBAC, ``kube_access.py``: asked with
SelfSubjectAccessReview), and kubernetes service control must name only Services of the application's
own (``service/guard.py``). Read-only."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook

from altibase_ops import kube_access
from altibase_ops.backends import server_address
from altibase_ops.ddl.preflight import PreflightError
from altibase_ops.ddl.request import DdlRequest
from altibase_ops.ddl.state import CLIENT_INFO, when_free
from altibase_ops.exceptions import AltibaseServerError
from altibase_ops.hooks.altibase import AltibaseHook
from altibase_ops.service import guard, kubernetes
from altibase_ops.sql.templates import render_sql


def service_control_problems(request: DdlRequest, log: Any, clients: tuple[Any, ...] | None = None) -> list[str]:
    """Kubernetes service control naming a Service a server's Connection or the replication uses."""
    control = request.service_control
    if control.get("mode") != "kubernetes" or not control.get("services"):
        return []
    uses: dict[str, list[str]] = {}
    for server in request.servers:
        host = BaseHook.get_connection(server.conn_id).host or ""
        uses[f"{server.name}'s Connection {server.conn_id}"] = [host, server_address(server.conn_id)[0]]
    for server in request.servers:
        try:
            with when_free(AltibaseHook(altibase_conn_id=server.conn_id, sysdba=True,
                                        client_info=CLIENT_INFO)) as session:
                rows = session.dicts(render_sql("provision/read_replication_hosts.sql"),
                                     (request.replication_name,))
        except AltibaseServerError as exc:  # preflight cannot pass either while a server cannot be read
            log.warning("service control check: %s could not be read (%s); its replication hosts are not "
                        "checked here", server.name, exc)
            continue
        uses[f"{server.name}'s replication {request.replication_name} (SYS_REPL_HOSTS_)"] = [
            str(row["HOST_IP"]) for row in rows]
    core = (clients or kubernetes._kube_clients(control))[0]
    return guard.database_service_problems(control, uses, core)


def access_needed(request: DdlRequest) -> dict[str, dict[str, list[kube_access.Permission]]]:
    """{Kubernetes Connection: {namespace: permissions}} this run uses: service control's, the iSQL pods'."""
    needs: dict[str, dict[str, list[kube_access.Permission]]] = {}
    control = request.service_control
    if control.get("mode") == "kubernetes":
        conn_id = control.get("kubernetes_conn_id") or kube_access.DEFAULT_CONN_ID
        needs.setdefault(conn_id, {}).setdefault(control["namespace"], []).extend(kube_access.SERVICE_CONTROL)
    if request.runner == "kubernetes":
        needs.setdefault(kube_access.DEFAULT_CONN_ID, {}).setdefault(request.pod_namespace, []).extend(
            kube_access.ISQL_PODS)
    return needs


def check_cluster(request: DdlRequest, log: Any, clients: tuple[Any, ...] | None = None) -> None:
    """PreflightError naming every problem of the run's cluster use; nothing was changed."""
    problems = [problem for conn_id, needs in access_needed(request).items()
                for problem in kube_access.access_problems(conn_id, needs, "altibase_replicated_ddl")]
    if not problems:  # the Services are read only where the run may read them
        problems = service_control_problems(request, log, clients)
    if problems:
        raise PreflightError("the cluster cannot serve this run as configured, nothing was changed:\n- "
                             + "\n- ".join(problems))
