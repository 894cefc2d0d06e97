"""A fake Kubernetes API server for tests, under the real kubernetes client.

It replaces only the urllib3 pool manager of an ``ApiClient``, so request building, the Content-Type
choice, JSON (de)serialisation and the mapping of error statuses to ``ApiException`` are the client's
own. It is at least as strict as the API server where the code under test can observe it: unknown
objects are 404, a create of an existing name is 409, a merge patch is RFC 7386 (and so is a
strategic merge patch of maps: keys it does not name stay), a JSON patch (RFC 6902) fails whole on a
path that does not exist or a ``test`` that does not hold (so a stale resourceVersion is refused), a
Deployment's ``scale`` subresource reads and writes its ``spec.replicas``, and EndpointSlices follow
the Services' selectors over the stored pods' readiness.

RBAC: by default the caller may do anything (a cluster-admin's kubeconfig). ``grant(namespace, rules)``
gives it a Role instead (the rules as in a Role manifest): every request is then authorised against the
Role as the API server's RBAC authoriser does (a 403 names the verb, resource and namespace), and a
SelfSubjectAccessReview is answered from it.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from kubernetes.client import ApiClient, AppsV1Api, Configuration, CoreV1Api, DiscoveryV1Api

_PATH = re.compile(
    r"/(?:api/v1|apis/(?P<group>apps|discovery\.k8s\.io)/v1)/namespaces/(?P<namespace>[^/]+)/(?P<plural>[a-z]+)"
    r"(?:/(?P<name>[^/]+)(?:/(?P<sub>scale))?)?"
)
_ACCESS_REVIEW_PATH = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
_VERBS = {"POST": "create", "PATCH": "patch", "DELETE": "delete", "PUT": "update"}


@dataclass(frozen=True)
class Request:
    method: str
    plural: str
    namespace: str
    name: str | None
    content_type: str | None
    body: dict | None
    query: dict


class _Response:
    def __init__(self, status: int, payload: dict):
        self.status = status
        self.reason = HTTPStatus(status).phrase
        self.data = json.dumps(payload).encode()

    def getheaders(self) -> dict:
        return {"content-type": "application/json"}

    def getheader(self, name: str, default: str | None = None) -> str | None:
        return self.getheaders().get(name.lower(), default)


def merge_patch(target, patch):
    """RFC 7386, as the API server applies application/merge-patch+json."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(target, operations):
    """RFC 6902 test/add/replace/remove, as the API server applies application/json-patch+json: a
    replace or remove of a path that does not exist fails (KeyError/IndexError), so does a test whose
    value differs (ValueError), and then no operation of the patch applies."""
    result = copy.deepcopy(target)
    for op in operations:
        *parents, last = [part.replace("~1", "/").replace("~0", "~") for part in op["path"].split("/")[1:]]
        node = result
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if op["op"] in ("replace", "remove", "test") and not isinstance(node, list) and last not in node:
            raise KeyError(f"{op['path']} does not exist")
        if op["op"] == "test":
            if node[int(last) if isinstance(node, list) else last] != op["value"]:
                raise ValueError(f"testing value {op['path']} failed")
        elif op["op"] == "remove":
            del node[int(last) if isinstance(node, list) else last]
        elif op["op"] in ("add", "replace"):
            node[int(last) if isinstance(node, list) else last] = copy.deepcopy(op["value"])
        else:
            raise TypeError(f"unsupported JSON patch op {op['op']}")
    return result


class FakeApiServer:
    """Enough of the API server for namespaced objects: get, list (label selectors), create, merge
    patch, delete. Stands in for urllib3's PoolManager."""

    def __init__(self):
        self.objects: dict[tuple[str, str, str], dict] = {}
        self.requests: list[Request] = []
        self._failures: dict[tuple[str, str, str | None], tuple[int, str]] = {}
        self._patch_failure: tuple[int, int, str] | None = None
        self._version = 0
        self.roles: dict[str, list[dict]] | None = None  # namespace -> Role rules; None: allowed everything
        self.access_reviews: list[dict] = []  # the resourceAttributes of each SelfSubjectAccessReview

    # test helpers
    def put(self, plural: str, obj: dict) -> None:
        """Store an object as if created: every stored object has a resourceVersion."""
        self.objects[(plural, obj["metadata"]["namespace"], obj["metadata"]["name"])] = self._stamp(obj)

    def grant(self, namespace: str, rules: list[dict]) -> None:
        """From now on the caller holds only these Role rules in ``namespace`` (and nothing elsewhere)."""
        self.roles = {**(self.roles or {}), namespace: rules}

    def allowed(self, namespace: str, verb: str, group: str, resource: str, subresource: str = "") -> bool:
        """RBAC's answer: a rule names the API group, the resource (``pods/exec`` for a subresource) and the
        verb, or ``*`` for any of them."""
        if self.roles is None:
            return True
        wanted = f"{resource}/{subresource}" if subresource else resource
        return any(group in rule.get("apiGroups", []) or "*" in rule.get("apiGroups", [])
                   for rule in self.roles.get(namespace, [])
                   if (wanted in rule.get("resources", []) or "*" in rule.get("resources", []))
                   and (verb in rule.get("verbs", []) or "*" in rule.get("verbs", [])))

    def fail_once(self, method: str, plural: str, name: str | None, status: int, message: str) -> None:
        self._failures[(method, plural, name)] = (status, message)

    def fail_patch_after(self, successes: int, status: int, message: str) -> None:
        """Let ``successes`` PATCHes through, fail the next one (whatever object), then behave."""
        self._patch_failure = (successes, status, message)

    def calls(self, method: str | None = None) -> list[Request]:
        return [r for r in self.requests if method is None or r.method == method]

    def names(self, plural: str) -> set[str]:
        return {name for (p, _, name) in self.objects if p == plural}

    # the PoolManager interface the REST client calls
    def request(self, method, url, body=None, fields=None, headers=None, **_):
        parts = urlsplit(url)
        payload = json.loads(body) if body else None
        if parts.path == _ACCESS_REVIEW_PATH:
            return self._access_review(method, payload)
        match = _PATH.fullmatch(parts.path)
        assert match, f"unexpected path {parts.path}"
        query = {k: v[0] for k, v in parse_qs(parts.query).items()} | dict(fields or ())
        namespace, plural, name = match["namespace"], match["plural"], match["name"]
        self.requests.append(
            Request(method, plural, namespace, name, (headers or {}).get("Content-Type"), payload, query)
        )
        verb = _VERBS.get(method) or ("get" if name else "list")
        if not self.allowed(namespace, verb, match["group"] or "", plural, match["sub"] or ""):
            resource = f"{plural}/{match['sub']}" if match["sub"] else plural
            return self._status(403, f'{plural} "{name or ""}" is forbidden: User "airflow" cannot {verb} resource '
                                     f'"{resource}" in API group "{match["group"] or ""}" in the namespace '
                                     f'"{namespace}"')
        if failure := self._failures.pop((method, plural, name), None):
            return self._status(*failure)
        if method == "PATCH" and self._patch_failure is not None:
            successes, status, message = self._patch_failure
            self._patch_failure = (successes - 1, status, message) if successes else None
            if not successes:
                return self._status(status, message)
        key = (plural, namespace, name)
        if plural == "endpointslices":
            assert method == "GET" and name is None, f"{method} {url}: EndpointSlices are the controller's"
            return _Response(200, {"metadata": {}, "items": self._endpoint_slices(namespace, query)})
        if method == "GET" and name is None:
            items = [o for (p, ns, _), o in sorted(self.objects.items()) if p == plural and ns == namespace]
            selector = dict(term.split("=") for term in query.get("labelSelector", "").split(",") if term)
            items = [o for o in items if selector.items() <= (o["metadata"].get("labels") or {}).items()]
            return _Response(200, {"metadata": {}, "items": items})
        if method == "POST":
            key = (plural, namespace, payload["metadata"]["name"])
            if key in self.objects:
                return self._status(409, f'{plural} "{key[2]}" already exists')
            self.objects[key] = self._stamp(payload)
            return _Response(201, self.objects[key])
        if key not in self.objects:
            return self._status(404, f'{plural} "{name}" not found')
        if match["sub"] == "scale":
            return self._scale(method, key, payload, headers)
        if method == "GET":
            return _Response(200, self.objects[key])
        if method == "PATCH":
            content_type = headers["Content-Type"]
            if content_type == "application/json-patch+json":
                try:
                    patched = json_patch(self.objects[key], payload)
                except (KeyError, IndexError, TypeError, ValueError) as exc:
                    return self._status(422, f"the JSON patch cannot be applied: {exc}")
            elif content_type == "application/strategic-merge-patch+json":
                # For maps (a Service's selector, labels) a strategic merge is a merge patch: keys the
                # patch does not name stay. Lists would need each field's patch strategy: not modelled.
                assert "[" not in json.dumps(payload), f"strategic merge of a list is not modelled: {payload}"
                patched = merge_patch(self.objects[key], payload)
            else:
                assert content_type == "application/merge-patch+json", content_type
                patched = merge_patch(self.objects[key], payload)
            self.objects[key] = self._stamp(patched)
            return _Response(200, self.objects[key])
        if method == "DELETE":
            return _Response(200, self.objects.pop(key))
        raise AssertionError(f"unexpected {method} {url}")

    def _access_review(self, method: str, payload: dict) -> _Response:
        """authorization.k8s.io/v1 SelfSubjectAccessReview: may the caller do this? (created, never stored)"""
        assert method == "POST" and payload["kind"] == "SelfSubjectAccessReview", (method, payload)
        attributes = payload["spec"]["resourceAttributes"]
        self.access_reviews.append(attributes)
        allowed = self.allowed(attributes.get("namespace", ""), attributes["verb"], attributes.get("group", ""),
                               attributes["resource"], attributes.get("subresource", ""))
        return _Response(201, {**payload, "status": {"allowed": allowed, **({} if allowed else {"reason": "no rule"})}})

    def _scale(self, method: str, key: tuple[str, str, str], payload: dict | None, headers: dict) -> _Response:
        """A Deployment's scale subresource: autoscaling/v1 Scale over its spec.replicas."""
        assert key[0] == "deployments", f"no scale subresource for {key[0]}"
        if method == "PATCH":
            assert headers["Content-Type"] in ("application/merge-patch+json",
                                               "application/strategic-merge-patch+json"), headers["Content-Type"]
            replicas = payload["spec"]["replicas"]
            self.objects[key] = self._stamp(merge_patch(self.objects[key], {"spec": {"replicas": replicas}}))
        else:
            assert method == "GET", method
        deployment = self.objects[key]
        return _Response(200, {"kind": "Scale", "apiVersion": "autoscaling/v1",
                               "metadata": {"name": key[2], "namespace": key[1]},
                               "spec": {"replicas": deployment["spec"].get("replicas", 1)},
                               "status": {"replicas": deployment["spec"].get("replicas", 1)}})

    def _endpoint_slices(self, namespace: str, query: dict) -> list[dict]:
        """What the EndpointSlice controller keeps for a Service: one slice with an endpoint per pod
        its selector matches, ready as the pod is (a terminating pod is not). A Service without a
        selector gets no managed slice. Updated at once here; a real controller lags a little."""
        wanted = dict(term.split("=") for term in query.get("labelSelector", "").split(",") if term)
        slices = []
        for (plural, ns, name), service in sorted(self.objects.items()):
            if plural != "services" or ns != namespace or wanted.get("kubernetes.io/service-name", name) != name:
                continue
            selector = service["spec"].get("selector") or {}
            if not selector:
                continue
            endpoints = []
            for (p, pod_ns, pod_name), pod in sorted(self.objects.items()):
                if p == "pods" and pod_ns == namespace and selector.items() <= pod["metadata"].get("labels", {}).items():
                    ready = (not pod["metadata"].get("deletionTimestamp")
                             and any(c["type"] == "Ready" and c["status"] == "True"
                                     for c in pod.get("status", {}).get("conditions", [])))
                    endpoints.append({"addresses": [f"10.0.0.{len(endpoints) + 1}"],
                                      "conditions": {"ready": ready, "terminating": bool(
                                          pod["metadata"].get("deletionTimestamp"))},
                                      "targetRef": {"kind": "Pod", "name": pod_name, "namespace": namespace}})
            slices.append({"metadata": {"name": f"{name}-abcde", "namespace": namespace,
                                        "labels": {"kubernetes.io/service-name": name}},
                           "addressType": "IPv4", "endpoints": endpoints})
        return slices

    def _stamp(self, obj: dict) -> dict:
        self._version += 1
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self._version)
        obj["metadata"].setdefault("uid", f"uid-{self._version}")
        return obj

    @staticmethod
    def _status(code: int, message: str) -> _Response:
        return _Response(code, {"kind": "Status", "status": "Failure", "message": message, "code": code})




def clients(server: FakeApiServer) -> dict:
    """CoreV1Api/AppsV1Api of the real client, talking to ``server``."""
    client = ApiClient(Configuration(host="https://kubernetes.invalid"))
    client.rest_client.pool_manager = server
    return {"core": CoreV1Api(client), "apps": AppsV1Api(client)}


def service_clients(server: FakeApiServer) -> tuple[CoreV1Api, AppsV1Api, DiscoveryV1Api]:
    """The three APIs service control uses (``service/kubernetes.py``), talking to ``server``."""
    client = ApiClient(Configuration(host="https://kubernetes.invalid"))
    client.rest_client.pool_manager = server
    return CoreV1Api(client), AppsV1Api(client), DiscoveryV1Api(client)


def pod(
    name: str,
    labels: dict,
    *,
    ready: bool = False,
    waiting: str | None = None,
    restarts: int = 0,
    deleting: bool = False,
):
    status: dict = {
        "phase": "Running" if ready else "Pending",
        "conditions": [
            {
                "type": "Ready",
                "status": "True" if ready else "False",
                "reason": None if ready else "ContainersNotReady",
            }
        ],
        "containerStatuses": [
            {
                "name": "altibase",
                "image": "altibase/altibase:7.1.0.5.1",
                "imageID": "",
                "ready": ready,
                "restartCount": restarts,
                "state": {"waiting": {"reason": waiting, "message": f"{waiting} details"}}
                if waiting
                else {"running": {}},
            }
        ],
    }
    metadata = {"name": name, "namespace": "default", "labels": labels}
    if deleting:
        metadata["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": metadata, "status": status}


def deployment_pod_labels(node: str) -> dict:
    return {
        "app.kubernetes.io/name": "altibase",
        "app.kubernetes.io/instance": "altibase",
        "altibase.io/node": node,
    }


def rolled_out(server: FakeApiServer, *, generation: int = 1, updated: int | None = None) -> None:
    """Give every stored Deployment/StatefulSet the status its controller reports after a rollout."""
    for (plural, _, _), obj in server.objects.items():
        if plural in ("deployments", "statefulsets"):
            replicas = obj["spec"]["replicas"]
            obj["metadata"]["generation"] = generation
            obj["status"] = {
                "observedGeneration": generation,
                "replicas": replicas,
                "updatedReplicas": replicas if updated is None else updated,
                "readyReplicas": replicas,
                "currentRevision": "r1",
                "updateRevision": "r1",
            }
