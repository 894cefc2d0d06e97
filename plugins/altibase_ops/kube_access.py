"""What each feature does in the cluster, as RBAC permissions, and the check that the run may do it.

A least-privilege Role that lacks one permission fails a run where it first needs it: an iSQL pod's
``pods/exec`` (the operator reads the pod's XCom through exec) is refused *after* iSQL changed the
server, so the task fails with its change applied. Every run therefore asks the API server first,
with one SelfSubjectAccessReview per permission, before anything changes, and refuses naming each
missing verb and resource. The README's Roles are ``role_rules`` of these lists (a test keeps them
equal).

Sources: service control, ``service/kubernetes.py``; provisioning and teardown,
``provision/kube_apply.py``; the iSQL pods, the cncf-kubernetes provider's KubernetesPodOperator
(10.25: ``utils/pod_manager.py`` creates, reads, deletes the pod, reads its log and events, and
``operators/pod.py`` lists pods to find one, patches its labels and reads XCom through
``connect_get_namespaced_pod_exec``, a WebSocket GET: ``get`` on ``pods/exec`` before Kubernetes 1.35,
``create`` once KEP-4006's AuthorizePodWebsocketUpgradeCreatePermission is on).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_CONN_ID = "kubernetes_default"  # KubernetesPodOperator's, and the iSQL steps' of the DDL DAG

@dataclass(frozen=True, order=True)
class Permission:
    group: str  # the API group: "" for the core group
    resource: str  # plural, "pods/exec" for a subresource
    verb: str

    def __str__(self) -> str:
        return f"{self.verb} {self.resource}" + (f" ({self.group})" if self.group else "")


def _grants(group: str, resources: Iterable[str], verbs: Iterable[str]) -> list[Permission]:
    return [Permission(group, resource, verb) for resource in resources for verb in verbs]


# DDL, service_control mode kubernetes: read and JSON-patch the Services and Deployments, watch the
# Services' EndpointSlices and the pods they should reach
SERVICE_CONTROL = (_grants("", ["services"], ["get", "patch"]) + _grants("apps", ["deployments"], ["get", "patch"])
                   + _grants("", ["pods"], ["list"]) + _grants("discovery.k8s.io", ["endpointslices"], ["list"]))
# runner kubernetes (DDL, provisioning, teardown): one KubernetesPodOperator pod per iSQL step
ISQL_PODS = (_grants("", ["pods"], ["create", "get", "list", "patch", "delete"]) + _grants("", ["pods/log"], ["get"])
             + _grants("", ["pods/exec"], ["create", "get"]) + _grants("", ["events"], ["list"]))
_KIND_RESOURCES = {"PersistentVolumeClaim": ("", "persistentvolumeclaims"), "Service": ("", "services"),
                   "Pod": ("", "pods"), "Deployment": ("apps", "deployments"), "StatefulSet": ("apps", "statefulsets")}


def provisioning(kinds: Iterable[str], *, runner: str) -> list[Permission]:
    """``altibase_provision`` target kubernetes: each rendered kind read, created or merge-patched, every
    workload kind listed by the instance's labels (another workload of the instance is refused), the
    Secret's key names read, the pods listed for readiness."""
    needs = [Permission(*_KIND_RESOURCES[kind], verb) for kind in kinds for verb in ("get", "create", "patch")]
    needs += [Permission(*_KIND_RESOURCES[kind], "list") for kind in ("StatefulSet", "Deployment", "Pod")]
    needs += _grants("", ["secrets"], ["get"])
    return sorted(set(needs + (ISQL_PODS if runner == "kubernetes" else [])))


def teardown(*, delete_data: bool, runner: str) -> list[Permission]:
    """``altibase_teardown`` target kubernetes: the instance's objects listed by label and deleted (its
    claims only with ``delete_data``)."""
    kinds = ["StatefulSet", "Deployment", "Pod", "Service", *(["PersistentVolumeClaim"] if delete_data else [])]
    needs = [Permission(*_KIND_RESOURCES[kind], verb) for kind in kinds for verb in ("list", "delete")]
    return sorted(set(needs + (ISQL_PODS if runner == "kubernetes" else [])))


def role_rules(needs: Iterable[Permission]) -> list[dict[str, Any]]:
    """The Role ``rules`` that grant exactly ``needs``: one rule per API group and resource."""
    verbs: dict[tuple[str, str], list[str]] = {}
    for need in sorted(set(needs)):
        verbs.setdefault((need.group, need.resource), []).append(need.verb)
    return [{"apiGroups": [group], "resources": [resource], "verbs": sorted(found)}
            for (group, resource), found in sorted(verbs.items())]


def missing_permissions(authorization: Any, needs: Mapping[str, Iterable[Permission]]) -> list[str]:
    """Each permission of ``needs`` ({namespace: permissions}) the caller does not hold, as "verb resource
    in namespace ns", asked with SelfSubjectAccessReview (authorization.k8s.io/v1)."""
    from kubernetes.client import (
        V1ResourceAttributes,
        V1SelfSubjectAccessReview,
        V1SelfSubjectAccessReviewSpec,
    )

    missing = []
    for namespace, permissions in needs.items():
        for need in sorted(set(permissions)):
            resource, _, subresource = need.resource.partition("/")
            review = authorization.create_self_subject_access_review(V1SelfSubjectAccessReview(
                api_version="authorization.k8s.io/v1", kind="SelfSubjectAccessReview", spec=V1SelfSubjectAccessReviewSpec(resource_attributes=V1ResourceAttributes(
                    namespace=namespace, verb=need.verb, group=need.group, resource=resource,
                    subresource=subresource or None))))
            if not review.status.allowed:
                missing.append(f"{need} in namespace {namespace}")
    return missing


def access_problems(kubernetes_conn_id: str, needs: Mapping[str, Iterable[Permission]], feature: str) -> list[str]:
    """One line naming every permission the identity of ``kubernetes_conn_id`` lacks for ``feature``."""
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
    from kubernetes import client

    authorization = client.AuthorizationV1Api(KubernetesHook(conn_id=kubernetes_conn_id).api_client)
    missing = missing_permissions(authorization, needs)
    if not missing:
        return []
    return [f"{feature}: the Kubernetes identity of Connection {kubernetes_conn_id!r} may not: " + "; ".join(missing)
            + ". Grant them (README, 'RBAC'); a run that went ahead would fail where it first needs one, possibly "
            "after it changed a server"]
