"""Stopping, moving and resuming the application service around the procedure (O1/O9, R1c/R13).

Three modes, chosen by the ``service_control`` parameter:

- ``manual``: a person does it; the task asks through Airflow's human-in-the-loop approval (with a
  timeout: no answer, or "Reject", fails the task and the restore path runs).
- ``kubernetes``: patch the client-facing Service's selector (to point at the other server, or at
  nothing) and/or scale the application Deployment, recording what was there to restore it.
- ``simulator``: stop and start the embedded simulator's application load.

Every action returns a *record* of what it changed (kept in XCom); ``restore`` undoes the records of
the run in reverse order, so the service ends as it was before the run whatever happened in between.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowException

NO_ENDPOINTS_LABEL = {"altibase-ops/service-stopped": "true"}  # a selector no pod carries


# ------------------------------------------------------------------------------------ simulator
def _simulator(control: dict[str, Any]) -> Any:
    from altibase_sim.control import SimulatorControl

    return SimulatorControl(control.get("state_dir"))


def simulator_stop(control: dict[str, Any], server: str) -> dict[str, Any]:
    sim = _simulator(control)
    running = [load for load in sim.load_status() if load["server"] == server and load["running"]]
    stopped = sim.load_stop(server)
    return {"kind": "simulator_stop", "server": server,
            "load": _load_config(running[0]) if running else None, "stopped": bool(stopped)}


def simulator_start(control: dict[str, Any], server: str, load: dict[str, Any] | None) -> None:
    if load:
        _simulator(control).load_start(server, **load)


def _load_config(status: dict[str, Any]) -> dict[str, Any]:
    return {"table": status["table"], "sessions": status.get("sessions", 2),
            "interval": status.get("interval", 0.005), "key_column": status.get("key_column", "C1"),
            "value_column": status.get("value_column", "C2")}


# ------------------------------------------------------------------------------------ kubernetes
def _kube_clients(control: dict[str, Any]) -> tuple[Any, Any]:
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
    from kubernetes import client

    api = KubernetesHook(conn_id=control.get("kubernetes_conn_id", "kubernetes_default")).api_client
    return client.CoreV1Api(api), client.AppsV1Api(api)


def kubernetes_point_service(control: dict[str, Any], server: str, selector: dict[str, str],
                             clients: tuple[Any, Any] | None = None) -> dict[str, Any] | None:
    """Point ``server``'s client Service at ``selector``; returns the record with the old selector."""
    service = (control.get("services") or {}).get(server)
    if not service:
        return None
    core, _ = clients or _kube_clients(control)
    current = core.read_namespaced_service(service, control["namespace"])
    old = dict(current.spec.selector or {})
    core.patch_namespaced_service(service, control["namespace"], {"spec": {"selector": selector}})
    return {"kind": "service_selector", "server": server, "service": service, "selector": old}


def kubernetes_scale(control: dict[str, Any], server: str, replicas: int,
                     clients: tuple[Any, Any] | None = None) -> dict[str, Any] | None:
    """Scale ``server``'s application Deployment; returns the record with the old replica count."""
    deployment = (control.get("deployments") or {}).get(server)
    if not deployment:
        return None
    _, apps = clients or _kube_clients(control)
    current = apps.read_namespaced_deployment_scale(deployment, control["namespace"])
    apps.patch_namespaced_deployment_scale(deployment, control["namespace"], {"spec": {"replicas": replicas}})
    return {"kind": "deployment_scale", "server": server, "deployment": deployment,
            "replicas": current.spec.replicas}


def kubernetes_undo(control: dict[str, Any], record: dict[str, Any], clients: tuple[Any, Any] | None = None) -> None:
    core, apps = clients or _kube_clients(control)
    if record["kind"] == "service_selector":
        # a JSON merge patch cannot remove keys it does not name: replace the selector whole
        core.patch_namespaced_service(record["service"], control["namespace"],
                                      [{"op": "replace", "path": "/spec/selector", "value": record["selector"]}])
    elif record["kind"] == "deployment_scale":
        apps.patch_namespaced_deployment_scale(record["deployment"], control["namespace"],
                                               {"spec": {"replicas": record["replicas"]}})


# ------------------------------------------------------------------------------------ actions
def perform(action: str, control: dict[str, Any], server: str, peer: str, history: list[dict[str, Any]],
            clients: tuple[Any, Any] | None = None) -> list[dict[str, Any]]:
    """Do ``action`` (stop | resume | move_to_peer | restore) automatically; returns new records.

    ``history``: the records earlier steps of this run made, oldest first (resume and restore put
    what they changed back as it was before the run).
    """
    mode = control["mode"]
    if action in ("resume", "restore"):
        return return_to_original(control, history, None if action == "restore" else server, clients)
    if mode == "simulator":
        records = [simulator_stop(control, server)]
        if action == "move_to_peer" and records[0]["load"]:
            sim = _simulator(control)
            if not any(load["server"] == peer and load["running"] for load in sim.load_status()):
                simulator_start(control, peer, records[0]["load"])
                records.append({"kind": "simulator_start", "server": peer})
        return records
    selectors = control.get("server_selectors") or {}
    target = selectors.get(peer) if action == "move_to_peer" else NO_ENDPOINTS_LABEL
    if action == "move_to_peer" and not target:
        raise AirflowException(f"service_control.server_selectors has no pod selector for {peer}: cannot move "
                               f"{server}'s Service to it")
    records = [kubernetes_point_service(control, server, target, clients)]
    if action == "stop":
        records.append(kubernetes_scale(control, server, 0, clients))
    return [r for r in records if r]


def _resource(record: dict[str, Any]) -> tuple[str, str] | None:
    kind = record.get("kind")
    if kind in ("simulator_stop", "simulator_start"):
        return ("load", record["server"])
    if kind == "service_selector":
        return ("service", record["service"])
    if kind == "deployment_scale":
        return ("deployment", record["deployment"])
    return None  # manual approvals, "restored" markers


def return_to_original(control: dict[str, Any], history: list[dict[str, Any]], server: str | None,
                       clients: tuple[Any, Any] | None = None) -> list[dict[str, Any]]:
    """Put each resource the run changed (of ``server``, or all) straight back to its state before the
    run: the first record of a resource holds that state. Straight back, not by replaying undo steps:
    an undo sequence could briefly re-open a service on a server whose replication is already stopped.
    Stops come before starts, so the service never runs in two places at once."""
    originals: dict[tuple[str, str], dict[str, Any]] = {}
    for record in history:
        key = _resource(record)
        if key is not None and key not in originals and (server is None or record["server"] == server):
            originals[key] = record
    done: list[dict[str, Any]] = []
    if control["mode"] == "simulator":
        running = {load["server"] for load in _simulator(control).load_status() if load["running"]}
        wanted = {key[1]: (rec["load"] if rec["kind"] == "simulator_stop" else None) for key, rec in originals.items()}
        for name, load in wanted.items():
            if load is None and name in running:
                _simulator(control).load_stop(name)
                done.append({"kind": "restored", "server": name, "state": "no service"})
        for name, load in wanted.items():
            if load is not None and name not in running:
                simulator_start(control, name, load)
                done.append({"kind": "restored", "server": name, "state": "service running"})
        return done
    for record in sorted(originals.values(), key=lambda r: r["kind"] != "service_selector"):
        kubernetes_undo(control, record, clients)
        done.append({"kind": "restored", "server": record["server"], "state": record})
    return done


class ServiceControlOperator(HITLOperator):
    """One service step. ``manual``: asks a person (Approve / Reject, with a timeout that fails the
    task so the restore path runs); otherwise does it and records what it changed.

    :param action: stop | resume | move_to_peer | restore
    :param server_role: the role (active, standby, active1, active2) whose service this is about.
    :param history_task_ids: earlier service steps of the run whose records resume/restore undo.
    """

    template_fields: Sequence[str] = ("subject", "body")

    def __init__(self, *, action: str, server_role: str, history_task_ids: Sequence[str] = (),
                 approval_timeout: timedelta = timedelta(hours=1), step_id: str = "", **kwargs: Any) -> None:
        super().__init__(
            subject=f"{step_id}: {action.replace('_', ' ')} the application service of the {server_role} server",
            body=kwargs.pop("body", None),
            options=["Approve", "Reject"],
            response_timeout=approval_timeout,
            **kwargs,
        )
        self.action = action
        self.server_role = server_role
        self.history_task_ids = list(history_task_ids)
        self.step_id = step_id

    def _servers(self, context: Context) -> tuple[str, str]:
        request = context["ti"].xcom_pull(task_ids="validate_params")
        servers = {s["role"]: s["name"] for s in request["servers"]}
        peer = next(name for role, name in servers.items() if role != self.server_role)
        return servers[self.server_role], peer

    def execute(self, context: Context) -> Any:
        request = context["ti"].xcom_pull(task_ids="validate_params")
        control = request["service_control"]
        server, peer = self._servers(context)
        history = [r for records in (context["ti"].xcom_pull(task_ids=self.history_task_ids) or []) if records
                   for r in records]
        if control["mode"] == "manual":
            self.response_timeout = timedelta(minutes=request["approval_timeout_minutes"])
            # the step id first: in the Required Actions list it tells O1 from O9, R1c from R13
            self.subject = f"{self.step_id}: {self.action.replace('_', ' ')} the application service of {server}"
            self.body = (f"Replication **{request['replication_name']}**, tables {', '.join(request['tables'])}.\n\n"
                         f"Please **{self.action.replace('_', ' ')}** the application service of **{server}** "
                         f"(peer: {peer}), then approve. Reject aborts the run; the restore path then puts "
                         f"the servers back (admin mode off, replication restarted where safe).")
            return super().execute(context)
        records = perform(self.action, control, server, peer, history)
        self.log.info("service %s on %s (%s): %s", self.action, server, control["mode"], records)
        return records

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        result = super().execute_complete(context, event)
        if "Approve" not in result["chosen_options"]:
            raise AirflowException(f"service step {self.action} was rejected by {result['responded_by_user']}; "
                                   "the run stops here and the restore path runs")
        return [{"kind": "manual", "server": self._servers(context)[0], "action": self.action,
                 "approved_by": str(result["responded_by_user"])}]
