"""Service control in Kubernetes: the client Service's selector and the application Deployment's scale.

Each change returns a record of what was there before, so the run can put it back.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowException

NO_ENDPOINTS_LABEL = {"altibase-ops/service-stopped": "true"}  # a selector no pod carries


def _kube_clients(control: dict[str, Any]) -> tuple[Any, Any]:
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
    from kubernetes import client

    api = KubernetesHook(conn_id=control.get("kubernetes_conn_id", "kubernetes_default")).api_client
    return client.CoreV1Api(api), client.AppsV1Api(api)


def _replace_selector(core: Any, service: str, namespace: str, selector: dict[str, str]) -> None:
    # Replaced whole (JSON patch): a merge patch, strategic or not, keeps the keys it does not name, so
    # moving {app, db: a1} to {app, role: a2} would select pods with both, i.e. none.
    core.patch_namespaced_service(service, namespace, [{"op": "replace", "path": "/spec/selector",
                                                        "value": selector}])


def kubernetes_point_service(control: dict[str, Any], server: str, selector: dict[str, str],
                             clients: tuple[Any, Any] | None = None) -> dict[str, Any] | None:
    """Point ``server``'s client Service at ``selector``; returns the record with the old selector."""
    service = (control.get("services") or {}).get(server)
    if not service:
        return None
    core, _ = clients or _kube_clients(control)
    current = core.read_namespaced_service(service, control["namespace"])
    old = dict(current.spec.selector or {})
    _replace_selector(core, service, control["namespace"], selector)
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


def undo(control: dict[str, Any], record: dict[str, Any], clients: tuple[Any, Any] | None = None) -> None:
    core, apps = clients or _kube_clients(control)
    if record["kind"] == "service_selector":
        _replace_selector(core, record["service"], control["namespace"], record["selector"])
    elif record["kind"] == "deployment_scale":
        apps.patch_namespaced_deployment_scale(record["deployment"], control["namespace"],
                                               {"spec": {"replicas": record["replicas"]}})


def stop_or_move(control: dict[str, Any], server: str, peer: str | None,
                 clients: tuple[Any, Any] | None = None) -> list[dict[str, Any]]:
    """Point ``server``'s Service at the ``peer``'s pods (move) or at none (stop; the app scaled to 0)."""
    if peer is not None:
        target = (control.get("server_selectors") or {}).get(peer)
        if not target:
            raise AirflowException(f"service_control.server_selectors has no pod selector for {peer}: cannot move "
                                   f"{server}'s Service to it")
    else:
        target = NO_ENDPOINTS_LABEL
    records = [kubernetes_point_service(control, server, target, clients)]
    if peer is None:
        records.append(kubernetes_scale(control, server, 0, clients))
    return [r for r in records if r]
