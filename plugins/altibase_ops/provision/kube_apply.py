"""Apply, watch and remove the objects of ``altibase_ops.manifests`` through the Kubernetes API.

The callers pass ``CoreV1Api``/``AppsV1Api`` instances (in a DAG: ``KubernetesHook``'s
``core_v1_client`` and ``apps_v1_client``, created inside ``execute``/``poke``); nothing here
opens a connection by itself, so tests hand in mocks and assert the calls.

Idempotency: every object is read first. Absent → created. Present → compared by the
``altibase.io/spec-hash`` annotation (a hash of the manifest we rendered): equal → left alone,
different → JSON merge patch. An object of the same name that this project did not create (no
``app.kubernetes.io/managed-by`` label of ours) is refused, never taken over. A merge patch replaces lists whole, so a removed env variable or port
really disappears — a strategic merge would keep it. Bare Pods cannot be changed in place and are
reported instead of patched. A second run with the same parameters therefore makes no write at all.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from copy import deepcopy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kubernetes.client.exceptions import ApiException

from altibase_ops.provision.manifests import (
    LABEL_INSTANCE,
    LABEL_MANAGED_BY,
    MANAGED_BY,
    instance_selector,
    node_pod_selector,
    pod_name,
    workload_name,
)
from altibase_ops.provision.spec import ProvisionSpec

if TYPE_CHECKING:
    from kubernetes.client import AppsV1Api, CoreV1Api

log = logging.getLogger(__name__)

SPEC_HASH_ANNOTATION = "altibase.io/spec-hash"
MERGE_PATCH = "application/merge-patch+json"

# Waiting reasons that never resolve without someone changing the manifest, the image or the
# Secret: a readiness wait that sees them fails at once instead of running out its timeout.
TERMINAL_WAITING_REASONS = frozenset({"InvalidImageName", "ErrImageNeverPull", "CreateContainerConfigError"})


class ApplyError(RuntimeError):
    """An object could not be created or updated; the message says which and what to do."""


class PodStartupError(RuntimeError):
    """A pod is in a state it will not leave by waiting (bad image, missing Secret, crash loop)."""


@dataclass(frozen=True)
class _KindApi:
    api: str  # "core" or "apps"
    resource: str  # the suffix of the client's method names

    def method(self, core: CoreV1Api, apps: AppsV1Api, verb: str) -> Any:
        client = core if self.api == "core" else apps
        return getattr(client, f"{verb}_namespaced_{self.resource}")


KINDS: Mapping[str, _KindApi] = {
    "PersistentVolumeClaim": _KindApi("core", "persistent_volume_claim"),
    "Service": _KindApi("core", "service"),
    "Pod": _KindApi("core", "pod"),
    "Deployment": _KindApi("apps", "deployment"),
    "StatefulSet": _KindApi("apps", "stateful_set"),
}
_WORKLOAD_KINDS = ("StatefulSet", "Deployment", "Pod")
# Teardown order: what runs the servers first, then their addresses, then (if asked) their data.
_TEARDOWN_KINDS = (*_WORKLOAD_KINDS, "Service")


@dataclass(frozen=True)
class ObjectResult:
    kind: str
    name: str
    action: str  # created | unchanged | patched | deleted | absent

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}: {self.action}"


def spec_hash(manifest: Mapping[str, Any]) -> str:
    """A stable digest of a rendered manifest (without its own hash annotation)."""
    stripped = deepcopy(dict(manifest))
    annotations = stripped.get("metadata", {}).get("annotations", {})
    annotations.pop(SPEC_HASH_ANNOTATION, None)
    canonical = json.dumps(stripped, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def with_spec_hash(manifest: Mapping[str, Any]) -> dict[str, Any]:
    body = deepcopy(dict(manifest))
    body["metadata"].setdefault("annotations", {})[SPEC_HASH_ANNOTATION] = spec_hash(manifest)
    return body


def apply_manifests(
    manifests: Iterable[Mapping[str, Any]], *, core: CoreV1Api, apps: AppsV1Api
) -> list[ObjectResult]:
    """Create or update every manifest, in the given order (``render_manifests`` order).

    Refuses to start while the instance still runs a workload the manifests do not contain
    (the instance was provisioned with another workload or topology): applying next to it would
    put two servers behind one node's Service. Teardown first; it keeps the data.
    """
    manifests = list(manifests)
    _refuse_foreign_workloads(manifests, core, apps)
    return [_apply_one(manifest, core, apps) for manifest in manifests]


def _refuse_foreign_workloads(manifests: list[Mapping[str, Any]], core: CoreV1Api, apps: AppsV1Api) -> None:
    wanted = {(m["metadata"]["namespace"], m["kind"], m["metadata"]["name"]) for m in manifests}
    instances = {
        (m["metadata"]["namespace"], m["metadata"]["labels"][LABEL_INSTANCE])
        for m in manifests
        if LABEL_INSTANCE in m["metadata"].get("labels", {})
    }
    for namespace, instance in sorted(instances):
        foreign = [
            f"{kind}/{obj.metadata.name}"
            for kind in _WORKLOAD_KINDS
            for obj in _instance_objects(kind, instance, namespace, core, apps, owned_pods=False)
            if (namespace, kind, obj.metadata.name) not in wanted
        ]
        if foreign:
            raise ApplyError(
                f"instance {instance} in {namespace} still runs {', '.join(foreign)}, which these parameters "
                "would not create (another workload or topology); run the teardown first — it keeps the data"
            )


def _apply_one(manifest: Mapping[str, Any], core: CoreV1Api, apps: AppsV1Api) -> ObjectResult:
    kind, name, namespace = manifest["kind"], manifest["metadata"]["name"], manifest["metadata"]["namespace"]
    if kind not in KINDS:
        raise ApplyError(f"{kind}/{name}: this module does not manage objects of kind {kind}")
    api = KINDS[kind]
    body = with_spec_hash(manifest)
    wanted_hash = body["metadata"]["annotations"][SPEC_HASH_ANNOTATION]

    existing = _read(api.method(core, apps, "read"), name, namespace)
    if existing is None:
        try:
            api.method(core, apps, "create")(namespace, body)
            log.info("%s/%s created in %s", kind, name, namespace)
            return ObjectResult(kind, name, "created")
        except ApiException as error:
            # Someone created it between our read and create: handle it as existing.
            if error.status != 409:
                raise ApplyError(f"{kind}/{name}: create failed: {_reason(error)}") from error
            existing = _read(api.method(core, apps, "read"), name, namespace)
            if existing is None:
                raise ApplyError(
                    f"{kind}/{name}: create reported a conflict, yet the object is absent"
                ) from error

    if _metadata_map(existing, "labels").get(LABEL_MANAGED_BY) != MANAGED_BY:
        # Fail closed: a same-named object made by hand (e.g. from the seed's YAML) is not ours to
        # overwrite; an operator decides whether to delete it or to pick another name.
        raise ApplyError(
            f"{kind}/{name} already exists in {namespace} but is not managed by {MANAGED_BY} "
            f"(label {LABEL_MANAGED_BY}); refusing to change it — delete it or choose another name"
        )
    if _metadata_map(existing, "annotations").get(SPEC_HASH_ANNOTATION) == wanted_hash:
        log.info("%s/%s unchanged", kind, name)
        return ObjectResult(kind, name, "unchanged")
    if kind == "Pod":
        raise ApplyError(
            f"Pod/{name} exists with a different spec and a bare Pod cannot be changed in place: run the "
            "teardown (it keeps persistent data) and provision again, or use workload=deployment"
        )
    if kind == "Service":
        # A merge patch merges maps: selector keys we no longer set must be removed explicitly,
        # or the Service would keep selecting on them.
        live_selector = (existing.spec.selector if existing.spec else None) or {}
        for key in live_selector.keys() - body["spec"].get("selector", {}).keys():
            body["spec"].setdefault("selector", {})[key] = None
    try:
        api.method(core, apps, "patch")(name, namespace, body, _content_type=MERGE_PATCH)
    except ApiException as error:
        hint = ""
        if error.status == 422:
            hint = (
                " (some fields cannot change on an existing object — e.g. a StatefulSet's storage or a "
                "claim's storage class; tear down and provision again for such a change)"
            )
        raise ApplyError(f"{kind}/{name}: update failed: {_reason(error)}{hint}") from error
    log.info("%s/%s patched", kind, name)
    return ObjectResult(kind, name, "patched")


def _read(read: Any, name: str, namespace: str) -> Any | None:
    try:
        return read(name, namespace)
    except ApiException as error:
        if error.status == 404:
            return None
        raise ApplyError(f"reading {name} in {namespace} failed: {_reason(error)}") from error


def _metadata_map(obj: Any, field: str) -> Mapping[str, str]:
    """``metadata.labels``/``metadata.annotations`` of a client model or of a plain dict."""
    metadata = obj.get("metadata") if isinstance(obj, Mapping) else getattr(obj, "metadata", None)
    if metadata is None:
        return {}
    values = metadata.get(field) if isinstance(metadata, Mapping) else getattr(metadata, field, None)
    return values or {}


def _reason(error: ApiException) -> str:
    # The API's Status message is the useful part; the raw body can be long JSON.
    try:
        return json.loads(error.body)["message"]
    except (TypeError, ValueError, KeyError):
        return f"{error.status} {error.reason}"


# --- preflight and readiness --------------------------------------------------------------------


def check_password_secret(spec: ProvisionSpec, *, core: CoreV1Api) -> None:
    """Fail before creating anything if the SYS password Secret or its key is missing.

    Only the key names are looked at; the value is never read into a log or a return value.
    """
    ref = spec.password_secret
    try:
        secret = core.read_namespaced_secret(ref.name, spec.namespace)
    except ApiException as error:
        if error.status == 404:
            raise ApplyError(
                f"Secret {ref.name} not found in namespace {spec.namespace}; create it with the SYS password "
                f"under key {ref.key!r} (kubectl create secret generic {ref.name} --from-literal={ref.key}=…)"
            ) from error
        raise ApplyError(f"reading Secret {ref.name} failed: {_reason(error)}") from error
    if ref.key not in (secret.data or {}) and ref.key not in (getattr(secret, "string_data", None) or {}):
        raise ApplyError(f"Secret {ref.name} has no key {ref.key!r}")


@dataclass(frozen=True)
class NodeReadiness:
    node: str
    pod: str | None
    ready: bool
    detail: str


@dataclass(frozen=True)
class ReadinessReport:
    nodes: tuple[NodeReadiness, ...]

    @property
    def all_ready(self) -> bool:
        return all(node.ready for node in self.nodes)

    def __str__(self) -> str:
        return "; ".join(f"{n.node} ({n.pod or 'no pod'}): {n.detail}" for n in self.nodes)


def check_pods_ready(
    spec: ProvisionSpec, *, core: CoreV1Api, apps: AppsV1Api, crash_loop_limit: int = 5
) -> ReadinessReport:
    """One look at every node; meant to be called from a sensor's ``poke``.

    A node is ready when one of its pods (not being deleted) has the Ready condition and its
    Deployment/StatefulSet has finished rolling out the current spec — right after a patch the
    old pod is still Ready, and it must not count. Raises ``PodStartupError`` for states that
    waiting cannot fix, so the sensor fails fast.
    """
    nodes = []
    for node in spec.nodes:
        readiness = _node_readiness(spec, node, core, crash_loop_limit)
        if readiness.ready and (pending := _rollout_pending(spec, node, apps)):
            readiness = NodeReadiness(node, readiness.pod, False, pending)
        nodes.append(readiness)
    return ReadinessReport(tuple(nodes))


def _rollout_pending(spec: ProvisionSpec, node: str, apps: AppsV1Api) -> str | None:
    """Why the node's workload has not finished rolling out its current spec, or None."""
    if spec.workload == "pod":
        return None
    kind = "StatefulSet" if spec.workload == "statefulset" else "Deployment"
    name = workload_name(spec, node)
    try:
        workload = getattr(apps, f"read_namespaced_{KINDS[kind].resource}")(name, spec.namespace)
    except ApiException as error:
        if error.status == 404:
            return f"{kind} {name} not found"
        raise ApplyError(f"reading {kind} {name} failed: {_reason(error)}") from error
    status, wanted = workload.status, workload.spec.replicas
    if status is None or (status.observed_generation or 0) < (workload.metadata.generation or 0):
        return f"{kind} {name}: the controller has not seen the latest spec yet"
    if (status.updated_replicas or 0) < wanted:
        return f"{kind} {name}: rolling out ({status.updated_replicas or 0}/{wanted} updated)"
    if kind == "Deployment" and (status.replicas or 0) > wanted:
        return f"{kind} {name}: old pods still running"
    if kind == "StatefulSet" and status.update_revision and status.current_revision != status.update_revision:
        return f"{kind} {name}: rolling out revision {status.update_revision}"
    return None


def _node_readiness(spec: ProvisionSpec, node: str, core: CoreV1Api, crash_loop_limit: int) -> NodeReadiness:
    pods = core.list_namespaced_pod(spec.namespace, label_selector=node_pod_selector(spec, node)).items
    live = [pod for pod in pods if pod.metadata.deletion_timestamp is None]
    if not live:
        expected = pod_name(spec, node)
        return NodeReadiness(node, None, False, f"no pod yet{f' (expecting {expected})' if expected else ''}")
    for pod in live:
        if _is_ready(pod):
            return NodeReadiness(node, pod.metadata.name, True, "ready")
    pod = live[0]
    _raise_if_terminal(pod, crash_loop_limit)
    return NodeReadiness(node, pod.metadata.name, False, _waiting_detail(pod))


def _is_ready(pod: Any) -> bool:
    conditions = (pod.status and pod.status.conditions) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def _raise_if_terminal(pod: Any, crash_loop_limit: int) -> None:
    name = pod.metadata.name
    if pod.status and pod.status.phase in ("Failed", "Succeeded"):
        raise PodStartupError(
            f"pod {name} has ended (phase {pod.status.phase}): {pod.status.message or ''}".strip()
        )
    for status in (pod.status and pod.status.container_statuses) or []:
        waiting = status.state.waiting if status.state else None
        if waiting is None:
            continue
        if waiting.reason in TERMINAL_WAITING_REASONS:
            raise PodStartupError(f"pod {name}: {waiting.reason}: {waiting.message or ''}".strip())
        if waiting.reason == "CrashLoopBackOff" and status.restart_count >= crash_loop_limit:
            raise PodStartupError(
                f"pod {name}: the server exited {status.restart_count} times (CrashLoopBackOff); "
                f"see kubectl logs {name} --previous"
            )


def _waiting_detail(pod: Any) -> str:
    for status in (pod.status and pod.status.container_statuses) or []:
        if status.state and status.state.waiting and status.state.waiting.reason:
            return f"waiting: {status.state.waiting.reason}"
    for condition in (pod.status and pod.status.conditions) or []:
        if condition.status != "True" and condition.reason:
            return f"{condition.type}: {condition.reason}"
    return f"phase {pod.status.phase if pod.status else 'unknown'}"


# --- teardown -----------------------------------------------------------------------------------


def teardown(
    *, name: str, namespace: str, core: CoreV1Api, apps: AppsV1Api, delete_data: bool = False
) -> list[ObjectResult]:
    """Delete the workloads and Services of instance ``name``; its claims only if ``delete_data``.

    Objects are found by the instance labels, not by re-rendering, so a change of workload or
    topology since the provisioning run leaves nothing behind. Pods owned by a Deployment or
    StatefulSet are left to the garbage collector. Deleting what is already gone is not an error.
    """
    kinds = _TEARDOWN_KINDS + (("PersistentVolumeClaim",) if delete_data else ())
    return [
        _delete(kind, obj.metadata.name, namespace, core, apps)
        for kind in kinds
        for obj in _instance_objects(kind, name, namespace, core, apps, owned_pods=False)
    ]


def _instance_objects(
    kind: str, instance: str, namespace: str, core: CoreV1Api, apps: AppsV1Api, *, owned_pods: bool
) -> list[Any]:
    """The objects of one kind carrying instance ``instance``'s labels.

    ``owned_pods=False`` leaves out pods a Deployment or StatefulSet owns: their controller (or
    the garbage collector) replaces or removes them, so they are never ours to act on.
    """
    items = (
        KINDS[kind].method(core, apps, "list")(namespace, label_selector=instance_selector(instance)).items
    )
    if kind == "Pod" and not owned_pods:
        return [obj for obj in items if not obj.metadata.owner_references]
    return items


def _delete(kind: str, name: str, namespace: str, core: CoreV1Api, apps: AppsV1Api) -> ObjectResult:
    try:
        KINDS[kind].method(core, apps, "delete")(name, namespace, propagation_policy="Background")
    except ApiException as error:
        if error.status == 404:
            return ObjectResult(kind, name, "absent")
        raise ApplyError(f"{kind}/{name}: delete failed: {_reason(error)}") from error
    log.info("%s/%s deleted from %s", kind, name, namespace)
    return ObjectResult(kind, name, "deleted")


def remaining_objects(
    *, name: str, namespace: str, core: CoreV1Api, apps: AppsV1Api, include_data: bool = False
) -> list[str]:
    """``Kind/name`` of everything of instance ``name`` still present, pods included.

    Empty means the teardown has finished (for a sensor after ``teardown``).
    """
    kinds = _TEARDOWN_KINDS + (("PersistentVolumeClaim",) if include_data else ())
    return [
        f"{kind}/{obj.metadata.name}"
        for kind in kinds
        for obj in _instance_objects(kind, name, namespace, core, apps, owned_pods=True)
    ]



def kubernetes_apis(kubernetes_conn_id: str) -> tuple[CoreV1Api, AppsV1Api]:
    """CoreV1Api/AppsV1Api from a KubernetesHook; call only inside execute/poke."""
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

    hook = KubernetesHook(conn_id=kubernetes_conn_id)
    return hook.core_v1_client, hook.apps_v1_client
