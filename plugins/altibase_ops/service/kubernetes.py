"""Service control in Kubernetes: where each server's client Service sends traffic, and the scale of
each server's application Deployment.

A service step gives *routes*: for each server, the server whose pods its Service must select (itself:
as before the run; the peer: moved; None: stopped, and its application scaled to 0). This module makes
the cluster match them:

- **Replace, never merge.** Every write is a JSON patch (RFC 6902) that replaces the field whole: a
  merge patch, strategic or not, keeps selector keys it does not name, so moving ``{app, db: a1}`` to
  ``{app, role: a2}`` would select pods carrying both, i.e. none. Each patch starts with a ``test`` of
  the resourceVersion the step read: someone else's edit in between fails the step instead of being
  overwritten.
- **The original lives on the object.** The first change writes the value before the run into an
  annotation (``altibase-ops/original-selector``, ``altibase-ops/original-replicas``) in the same
  patch; later changes keep it, so a re-run never takes a changed state for the original, and restore
  and a later ``recover`` run put it back with no XCom history. Going back to the original removes
  the annotation in the same patch.
- **Traffic is checked, not assumed.** After a change the step waits (a bounded poll) until the
  Service's EndpointSlices show it: ready endpoints only on the target's pods, or none when stopped.
"""

from __future__ import annotations

import json
import time
from typing import Any

from airflow.sdk.exceptions import AirflowException

NO_ENDPOINTS_LABEL = {"altibase-ops/service-stopped": "true"}  # a selector no pod carries
ORIGINAL_SELECTOR = "altibase-ops/original-selector"
ORIGINAL_REPLICAS = "altibase-ops/original-replicas"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"  # EndpointSlices carry their Service's name here


class ClusterChangedError(AirflowException):
    """An object changed between this step's read and its write (someone else edited it)."""


def _kube_clients(control: dict[str, Any]) -> tuple[Any, Any, Any]:
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
    from kubernetes import client

    api = KubernetesHook(conn_id=control.get("kubernetes_conn_id", "kubernetes_default")).api_client
    return client.CoreV1Api(api), client.AppsV1Api(api), client.DiscoveryV1Api(api)


def _pointer(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")  # RFC 6901


def _replace_with_original(obj: Any, path: str, value: Any, annotation: str, original: Any,
                           back_to_original: bool) -> list[dict[str, Any]]:
    """The JSON patch that sets ``path`` to ``value``: tested against the version read, recording
    ``original`` in ``annotation`` on the first change and dropping it on the way back."""
    annotations = obj.metadata.annotations or {}
    ops: list[dict[str, Any]] = [{"op": "test", "path": "/metadata/resourceVersion",
                                  "value": obj.metadata.resource_version}]
    if back_to_original and annotation in annotations:
        ops.append({"op": "remove", "path": f"/metadata/annotations/{_pointer(annotation)}"})
    elif not back_to_original and annotation not in annotations:
        if not obj.metadata.annotations:
            ops.append({"op": "add", "path": "/metadata/annotations", "value": {}})
        ops.append({"op": "add", "path": f"/metadata/annotations/{_pointer(annotation)}",
                    "value": json.dumps(original)})
    ops.append({"op": "replace", "path": path, "value": value})
    return ops


def _patch(call: Any, name: str, namespace: str, ops: list[dict[str, Any]]) -> None:
    from kubernetes.client.exceptions import ApiException

    try:
        call(name, namespace, ops)
    except ApiException as exc:
        if exc.status in (409, 422):  # the resourceVersion test failed, or a conflicting write
            raise ClusterChangedError(f"{name} in {namespace} changed since this step read it ({exc.status}: "
                                      f"{exc.reason}); someone else is editing it: nothing was overwritten. Look "
                                      f"at it, then re-run the step") from None
        raise


def _set(call: Any, name: str, namespace: str, obj: Any, path: str, current: Any, value: Any, annotation: str,
         original: Any, back_to_original: bool) -> None:
    """Write ``value`` at ``path`` when it differs, or when going back leaves an annotation to remove."""
    if value != current or (back_to_original and annotation in (obj.metadata.annotations or {})):
        _patch(call, name, namespace, _replace_with_original(obj, path, value, annotation, original, back_to_original))


def _original(obj: Any, annotation: str, current: Any) -> Any:
    recorded = (obj.metadata.annotations or {}).get(annotation)
    return json.loads(recorded) if recorded is not None else current


def route(control: dict[str, Any], routes: dict[str, str | None],
          clients: tuple[Any, Any, Any] | None = None) -> list[dict[str, Any]]:
    """Make each server's Service select the pods of ``routes[server]`` (itself = as before the run,
    None = no pod) and its Deployment run (its original scale) or not (0). Stops first, so traffic is
    never on both sides of a change at once; each change is checked on the EndpointSlices."""
    core, apps, discovery = clients or _kube_clients(control)
    namespace = control["namespace"]
    services = control.get("services") or {}
    deployments = control.get("deployments") or {}
    records: list[dict[str, Any]] = []
    # each Service read once (its write tests this version); its selector before the run: the
    # annotation, or the live one
    live = {server: core.read_namespaced_service(name, namespace) for server, name in services.items()}
    originals = {server: _original(svc, ORIGINAL_SELECTOR, dict(svc.spec.selector or {})) for server, svc in live.items()}
    for server, target in sorted(routes.items(), key=lambda kv: kv[1] is not None):
        name = services.get(server)
        if name:
            service = live[server]
            selector = NO_ENDPOINTS_LABEL if target is None else (
                originals[server] if target == server else _selector_of(control, target, originals))
            _set(core.patch_namespaced_service, name, namespace, service, "/spec/selector",
                 dict(service.spec.selector or {}), selector, ORIGINAL_SELECTOR, originals[server], target == server)
            records.append({"kind": "service_selector", "server": server, "service": name,
                            "selector": originals[server], "now": selector, "target": target})
            _wait_for_endpoints(core, discovery, control, name, None if target is None else selector)
        name = deployments.get(server)
        if name:
            deployment = apps.read_namespaced_deployment(name, namespace)
            original = _original(deployment, ORIGINAL_REPLICAS, deployment.spec.replicas)
            replicas = 0 if target is None else original
            _set(apps.patch_namespaced_deployment, name, namespace, deployment, "/spec/replicas",
                 deployment.spec.replicas, replicas, ORIGINAL_REPLICAS, original, target is not None)
            records.append({"kind": "deployment_scale", "server": server, "deployment": name, "replicas": original,
                            "now": replicas})
    return records


def _selector_of(control: dict[str, Any], server: str, originals: dict[str, Any]) -> dict[str, str]:
    """The selector of ``server``'s pods: configured, or its own Service's selector before the run."""
    selector = (control.get("server_selectors") or {}).get(server) or originals.get(server)
    if not selector:
        raise AirflowException(f"service_control.server_selectors has no pod selector for {server} (and {server} "
                               "has no Service of its own to take it from): cannot move traffic to it")
    return dict(selector)


def _wait_for_endpoints(core: Any, discovery: Any, control: dict[str, Any], service: str,
                        selector: dict[str, str] | None) -> None:
    """Until the Service's EndpointSlices show the change: ready endpoints, all on pods ``selector``
    selects; or none at all (``selector`` None)."""
    namespace = control["namespace"]
    timeout = float(control.get("endpoint_timeout_seconds", 60))
    deadline = time.monotonic() + timeout
    while True:
        slices = discovery.list_namespaced_endpoint_slice(namespace, label_selector=f"{SERVICE_NAME_LABEL}={service}")
        ready = {(e.target_ref.name if e.target_ref else ",".join(e.addresses))
                 for s in slices.items for e in (s.endpoints or [])
                 if e.conditions is None or e.conditions.ready is not False}
        if selector is None:
            wanted, ok = set(), not ready
        else:
            label_selector = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
            wanted = {p.metadata.name for p in core.list_namespaced_pod(namespace, label_selector=label_selector).items}
            ok = bool(ready) and ready <= wanted
        if ok:
            return
        if time.monotonic() > deadline:
            raise AirflowException(
                f"Service {service} in {namespace}: after {timeout:.0f} s its EndpointSlices show {sorted(ready) or 'no'} "
                f"ready endpoints; expected {'none' if selector is None else sorted(wanted) or 'the pods of ' + str(selector)}. "
                "The selector is changed (and the original kept in its annotation); find why the endpoints do not "
                "follow, then re-run the step")
        time.sleep(1.0)


def changed_objects(control: dict[str, Any], clients: tuple[Any, Any, Any] | None = None) -> list[str]:
    """The configured Services and Deployments that still carry an original-state annotation: a run
    changed them and nothing has put them back yet (a crash, a lost XCom, or a failed restore)."""
    core, apps, _ = clients or _kube_clients(control)
    namespace = control["namespace"]
    changed = []
    for name in (control.get("services") or {}).values():
        if ORIGINAL_SELECTOR in (core.read_namespaced_service(name, namespace).metadata.annotations or {}):
            changed.append(f"Service {name}")
    for name in (control.get("deployments") or {}).values():
        if ORIGINAL_REPLICAS in (apps.read_namespaced_deployment(name, namespace).metadata.annotations or {}):
            changed.append(f"Deployment {name}")
    return changed


def writers(control: dict[str, Any], servers: list[str], clients: tuple[Any, Any, Any] | None = None) -> set[str]:
    """The servers whose pods receive the application's traffic now: each configured Service's selector
    matched against every server's pod selector, counted when its application Deployment (if one is
    configured) has replicas. A selector that matches no server's pods is reported, not guessed."""
    core, apps, _ = clients or _kube_clients(control)
    namespace = control["namespace"]
    services = control.get("services") or {}
    deployments = control.get("deployments") or {}
    live = {server: core.read_namespaced_service(name, namespace) for server, name in services.items()}
    originals = {server: _original(svc, ORIGINAL_SELECTOR, dict(svc.spec.selector or {})) for server, svc in live.items()}
    # a server's pods: as configured, and as its own Service selected them before the run
    pods = {name: [dict(sel) for sel in ((control.get("server_selectors") or {}).get(name), originals.get(name)) if sel]
            for name in servers}
    # an application Deployment without a Service of its own writes on its own server while it runs
    found: set[str] = {server for server, name in deployments.items()
                       if server not in live and apps.read_namespaced_deployment(name, namespace).spec.replicas}
    for server, service in live.items():
        selector = dict(service.spec.selector or {})
        if selector == NO_ENDPOINTS_LABEL:
            continue
        name = deployments.get(server)
        if name and not apps.read_namespaced_deployment(name, namespace).spec.replicas:
            continue
        target = next((peer for peer, selectors in pods.items() if selector in selectors), None)
        if target is None:
            raise AirflowException(f"Service {services[server]} selects {selector}, the pods of no server of the pair "
                                   f"({pods}): cannot tell where the application writes")
        found.add(target)
    return found
