"""Kubernetes objects for one Altibase server or replicated pair (procedure steps P1–P5).

``ProvisionSpec`` is the validated parameter object: constructing one checks every parameter and
raises ``ProvisionSpecError`` listing all problems at once. ``render_manifests`` turns it into plain
dicts (the shape ``kubectl apply -f`` takes), in the order they must be applied.

What is taken from the seed (``000_…``): the image, ``MODE=daemon`` (single) or
``MODE=replication`` with ``SLAVE_REP_PORT`` (pair), container ports 20300/20301, the data and log
mounts at ``/home/altibase/altibase_home/{dbs,logs}``, NFS paths ``…/node1/dbs``, and one ClusterIP
Service per node named ``<name>-svc-node<i>`` with ports ``service-port`` and ``replication-port``.
With the default name ``altibase`` the Service names are exactly the seed's
(``altibase-svc-node1``, ``altibase-svc-node2``).

What is added for production: startup/readiness/liveness probes on the service port, resource
requests and limits, ``USER_PASSWD`` from a Kubernetes Secret, recommended labels plus
``altibase.io/node``, ``Recreate`` for Deployments, no Service-link environment variables.

Replication addresses: in every workload the replication objects point at the *per-node ClusterIP
Service* of the other node (``<name>-svc-node2``), as the seed does. A Service's virtual IP outlives
pod restarts, so a sender that resolved the name once keeps reaching the peer after the peer's pod
is replaced; it also keeps the P6 SQL identical for Deployments, bare Pods, the StatefulSet and the
simulator. The StatefulSet additionally gets the headless Service aku requires
(``publishNotReadyAddresses: true``), which gives each pod the DNS name
``<name>-<ordinal>.<name>-headless`` — kept for aku and for operators, not used by the SQL.

Nothing here talks to a cluster.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes.utils.quantity import parse_quantity

from altibase_ops.operators.isql import ALTIBASE_IMAGE
from altibase_ops.provision.tables import (
    ProvisionSpecError,
    TableSpec,
    identifier_problem,
    parse_table,
)
from altibase_ops.sys_password import SecretRef, is_dns_label, is_dns_subdomain

# Pinned (see operators/isql.py): a re-run months later must start the same server. Override with the
# `image` parameter (any explicit tag or digest).
DEFAULT_IMAGE = ALTIBASE_IMAGE
SERVICE_PORT = 20300
REPLICATION_PORT = 20301
# The image's user and group: the vendor's Dockerfile (ALTIBASE/CloudNative, Altibase Docker Guide,
# "3. Altibase Docker Image") runs `useradd -m altibase` on ubuntu:18.04 and `USER altibase`: the first
# user, uid and gid 1000. Not read from the pinned image here (README, first-run checklist).
IMAGE_GROUP_ID = 1000
DEFAULT_TABLE = "t1 (c1 INTEGER PRIMARY KEY, c2 INTEGER)"
# The DAG's default builds two tables: the DDL DAG takes a table out of the replication for its DDL,
# and Altibase refuses to drop the last table of a replication (ERR-6106F).
DEFAULT_TABLES = (DEFAULT_TABLE, "t2 (c1 INTEGER PRIMARY KEY, c2 INTEGER)")
DEFAULT_REPLICATION_NAME = "rep1"


TOPOLOGIES = ("single", "pair")
# Which servers of a pair send: both (the seed's pair, Active-Active) or node1 only (Active-Standby:
# node1 the active, node2 the standby, which receives and does not send — as the DDL DAG expects).
REPLICATION_ROLES = ("active_active", "active_standby")
WORKLOADS = ("deployment", "statefulset", "pod")
STORAGE_TYPES = ("emptydir", "nfs", "pvc")
NODE_PLACEHOLDER = "{node}"
# Longest derived name is "<name>-client-node2" / "<name>-headless"; StatefulSet revision hashes add
# another 11 characters to the StatefulSet name. 40 keeps all of them under 63.
MAX_NAME_LENGTH = 40

_DNS_1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
# Docker reference grammar, reduced to what a pinned image needs: [registry[:port]/]path[:tag][@digest]
_IMAGE_REFERENCE = re.compile(
    r"(?P<repository>(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
    r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[0-9a-f]{64}))?"
)

# --- storage, secret, resources ------------------------------------------------------------------


@dataclass(frozen=True)
class EmptyDirStorage:
    """Pod-lifetime volumes: data is lost when the pod is replaced (tests, demos). Not the form's default."""

    size_limit: str | None = None

    def problems(self, spec: ProvisionSpec) -> list[str]:
        if self.size_limit is not None:
            return _quantity_problems("storage size_limit", self.size_limit)
        return []


@dataclass(frozen=True)
class NfsStorage:
    """The seed's NFS volumes. ``{node}`` in a path becomes the node's directory.

    Deployments and Pods: ``{node}`` is ``node1``/``node2``, exactly the seed's layout. StatefulSet:
    one pod template serves every pod, so the NFS export is mounted at the part before ``{node}`` and
    the rest becomes ``subPathExpr: $(POD_NAME)/…`` — the directory is the pod name
    (``<name>-0``, ``<name>-1``).
    """

    server: str
    dbs_path: str = "/home/altibase-nfs/{node}/dbs"
    logs_path: str = "/home/altibase-nfs/{node}/logs"

    def problems(self, spec: ProvisionSpec) -> list[str]:
        found = []
        if not _is_host(self.server):
            found.append(f"nfs server {self.server!r}: must be an IP address or a DNS name")
        for what, path in (("nfs dbs_path", self.dbs_path), ("nfs logs_path", self.logs_path)):
            found.extend(_nfs_path_problems(what, path, spec.topology))
        if self.dbs_path == self.logs_path:
            found.append(
                "nfs dbs_path and logs_path: must differ (data files and logs need their own directories)"
            )
        return found


@dataclass(frozen=True)
class PvcStorage:
    """One ReadWriteOnce claim per node, mounted twice (sub-paths ``dbs`` and ``logs``).

    ``storage_class`` None uses the cluster's default StorageClass.
    """

    size: str = "10Gi"
    storage_class: str | None = None

    def problems(self, spec: ProvisionSpec) -> list[str]:
        found = _quantity_problems("pvc size", self.size)
        if self.storage_class is not None and not is_dns_subdomain(self.storage_class):
            found.append(f"pvc storage_class {self.storage_class!r}: must be a DNS-1123 subdomain")
        return found


StorageSpec = EmptyDirStorage | NfsStorage | PvcStorage


# MEM_MAX_DB_SIZE's default (2G) and room for the buffer pool, log buffers and threads.
MIN_MEMORY_LIMIT = "3Gi"


@dataclass(frozen=True)
class ResourceSpec:
    """Requests and limits of the Altibase container.

    Memory request equals the limit so the node never picks the database first to evict under
    memory pressure; no CPU limit by default, because CFS throttling stalls a database's
    replication and log threads rather than slowing it evenly.

    Sized to the server's defaults, not the other way round: the image leaves MEM_MAX_DB_SIZE at 2G
    (the memory tablespace may grow to it), and the buffer pool, log buffers and threads come on top,
    so a 2Gi limit gets the pod OOM-killed as the data grows. 4Gi holds the defaults; a limit under
    MIN_MEMORY_LIMIT is refused. To run smaller, lower the server's memory properties in the image
    (the server reads ALTIBASE_<PROPERTY> from its environment) and the limit with them.
    """

    cpu_request: str = "500m"
    memory_request: str = "4Gi"
    cpu_limit: str | None = None
    memory_limit: str | None = "4Gi"

    def problems(self) -> list[str]:
        found = []
        for what, value in (
            ("cpu_request", self.cpu_request),
            ("memory_request", self.memory_request),
            ("cpu_limit", self.cpu_limit),
            ("memory_limit", self.memory_limit),
        ):
            if value is not None:
                found.extend(_quantity_problems(f"resources {what}", value))
        if found:
            return found
        for resource, request, limit in (
            ("cpu", self.cpu_request, self.cpu_limit),
            ("memory", self.memory_request, self.memory_limit),
        ):
            if limit is not None and parse_quantity(request) > parse_quantity(limit):
                found.append(f"resources {resource}: request {request} exceeds limit {limit}")
        if self.memory_limit is not None and parse_quantity(self.memory_limit) < parse_quantity(MIN_MEMORY_LIMIT):
            found.append(f"resources memory_limit {self.memory_limit}: under {MIN_MEMORY_LIMIT}, what the server's "
                         "default MEM_MAX_DB_SIZE (2G) plus its buffers needs; the pod would be OOM-killed")
        return found

    def to_manifest(self) -> dict[str, Any]:
        requests = {"cpu": self.cpu_request, "memory": self.memory_request}
        limits = {k: v for k, v in (("cpu", self.cpu_limit), ("memory", self.memory_limit)) if v is not None}
        return {"requests": requests, "limits": limits} if limits else {"requests": requests}


# --- the parameter object ------------------------------------------------------------------------


@dataclass(frozen=True)
class ProvisionSpec:
    """Everything needed to render one Altibase single server or pair. Valid once constructed."""

    name: str = "altibase"
    namespace: str = "default"
    image: str = DEFAULT_IMAGE
    topology: str = "pair"
    workload: str = "deployment"
    # the trigger form and from_params default to pvc (a replaced pod keeps its database); this default
    # is for code that renders without a cluster (the simulator target, tests)
    storage: StorageSpec = field(default_factory=EmptyDirStorage)
    service_port: int = SERVICE_PORT
    replication_port: int = REPLICATION_PORT
    password_secret: SecretRef = field(default_factory=SecretRef)
    tables: tuple[TableSpec, ...] = field(default_factory=lambda: (parse_table(DEFAULT_TABLE),))
    replication_name: str = DEFAULT_REPLICATION_NAME
    resources: ResourceSpec = field(default_factory=ResourceSpec)
    replication_roles: str = "active_active"
    # a Service per server for the application only (<name>-client-<node>), for kubernetes service
    # control to steer: the per-node Service carries the Connections and the replication and must not
    client_services: bool = False
    # the pod's fsGroup: kubelet makes the volumes group-owned by it (setgid, g+rw) and adds it to the
    # server's groups, so the image's user can write a fresh, root-owned claim (README, first run)
    fs_group: int = IMAGE_GROUP_ID

    def __post_init__(self) -> None:
        problems: list[str] = []
        tables = []
        # Tables may be given in the seed's text form; parse them here so every instance holds
        # only validated structures.
        for table in (self.tables,) if isinstance(self.tables, str | TableSpec) else self.tables:
            if isinstance(table, str):
                try:
                    table = parse_table(table)
                except ProvisionSpecError as error:
                    problems.extend(error.problems)
                    continue
            tables.append(table)
        object.__setattr__(self, "tables", tuple(tables))
        problems.extend(self._problems())
        if problems:
            raise ProvisionSpecError(problems)

    def _problems(self) -> list[str]:
        found = []
        if not isinstance(self.name, str) or not _DNS_1035_LABEL.fullmatch(self.name):
            found.append(
                f"name {self.name!r}: must be lowercase letters, digits and '-', start with a letter "
                "and end with a letter or digit (it becomes Kubernetes object and DNS names)"
            )
        elif len(self.name) > MAX_NAME_LENGTH:
            found.append(
                f"name {self.name!r}: at most {MAX_NAME_LENGTH} characters (derived names must fit 63)"
            )
        if not isinstance(self.namespace, str) or not is_dns_label(self.namespace):
            found.append(f"namespace {self.namespace!r}: must be a DNS-1123 label")
        found.extend(_image_problems(self.image))
        if self.topology not in TOPOLOGIES:
            found.append(f"topology {self.topology!r}: must be one of {', '.join(TOPOLOGIES)}")
        if self.replication_roles not in REPLICATION_ROLES:
            found.append(f"replication_roles {self.replication_roles!r}: must be one of {', '.join(REPLICATION_ROLES)}")
        if self.workload not in WORKLOADS:
            found.append(f"workload {self.workload!r}: must be one of {', '.join(WORKLOADS)}")
        for what, port in (("service_port", self.service_port), ("replication_port", self.replication_port)):
            if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
                found.append(f"{what} {port!r}: must be an integer between 1 and 65535")
        if self.service_port == self.replication_port:
            found.append("service_port and replication_port: must differ")
        if isinstance(self.storage, EmptyDirStorage | NfsStorage | PvcStorage):
            if self.topology in TOPOLOGIES:
                found.extend(self.storage.problems(self))
        else:
            found.append(f"storage {self.storage!r}: must be emptydir, nfs or pvc storage settings")
        found.extend(self.password_secret.problems())
        if not self.tables:
            found.append("tables: at least one table is needed (replication needs something to replicate)")
        seen: set[str] = set()
        for table in self.tables:
            found.extend(table.problems())
            if table.name.upper() in seen:
                found.append(f"table {table.name!r}: is listed twice")
            seen.add(table.name.upper())
        if self.tables and not self.tables[0].problems():
            found.extend(_proof_table_problems(self.tables[0], len(node_ids_for(self.topology))))
        if isinstance(self.fs_group, bool) or not isinstance(self.fs_group, int) or not 1 <= self.fs_group <= 2**31 - 1:
            found.append(f"fs_group {self.fs_group!r}: must be a group id from 1 to {2**31 - 1} (the image's group)")
        if not isinstance(self.client_services, bool):
            found.append(f"client_services {self.client_services!r}: must be true or false")
        if problem := identifier_problem("replication_name", self.replication_name):
            found.append(problem)
        found.extend(self.resources.problems())
        return found

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> ProvisionSpec:
        """Build from flat DAG params (the trigger form's fields); absent keys take the defaults.

        Storage fields: ``storage`` (emptydir|nfs|pvc), ``nfs_server``, ``nfs_dbs_path``,
        ``nfs_logs_path``, ``pvc_size``, ``pvc_storage_class``, ``emptydir_size_limit``. Secret:
        ``password_secret_name``, ``password_secret_key``. Resources: ``cpu_request``,
        ``memory_request``, ``cpu_limit``, ``memory_limit``. ``tables``: a list of table
        definitions in the seed's form. Keys this object does not use (``target``, ``dry_run``…)
        are left to the DAG.
        """
        given = {k: v for k, v in params.items() if v is not None and v != ""}
        storage_type = given.get("storage", "pvc")
        storage: Any
        if storage_type == "emptydir":
            storage = EmptyDirStorage(size_limit=given.get("emptydir_size_limit"))
        elif storage_type == "nfs":
            if "nfs_server" not in given:
                raise ProvisionSpecError(["nfs_server: required when storage is 'nfs'"])
            storage = NfsStorage(
                server=given["nfs_server"],
                **{k: given[f"nfs_{k}"] for k in ("dbs_path", "logs_path") if f"nfs_{k}" in given},
            )
        elif storage_type == "pvc":
            storage = PvcStorage(
                **{k: given[f"pvc_{k}"] for k in ("size", "storage_class") if f"pvc_{k}" in given},
            )
        else:
            raise ProvisionSpecError([f"storage {storage_type!r}: must be one of {', '.join(STORAGE_TYPES)}"])
        secret = SecretRef(
            **{k: given[f"password_secret_{k}"] for k in ("name", "key") if f"password_secret_{k}" in given}
        )
        resources = ResourceSpec(
            **{
                k: given[k]
                for k in ("cpu_request", "memory_request", "cpu_limit", "memory_limit")
                if k in given
            }
        )
        simple = {
            k: given[k]
            for k in ("name", "namespace", "image", "topology", "workload", "replication_name", "replication_roles")
            if k in given
        }
        ports = {k: _as_int(given[k]) for k in ("service_port", "replication_port") if k in given}
        if "client_services" in given:
            simple["client_services"] = given["client_services"]
        if "fs_group" in given:
            simple["fs_group"] = _as_int(given["fs_group"])
        tables = given.get("tables")
        if tables is not None:
            simple["tables"] = tuple(tables) if isinstance(tables, list | tuple) else tables
        return cls(storage=storage, password_secret=secret, resources=resources, **simple, **ports)

    @property
    def nodes(self) -> tuple[str, ...]:
        return node_ids_for(self.topology)

    @property
    def senders(self) -> tuple[str, ...]:
        """The nodes whose replication is started: both, or node1 only (Active-Standby); none alone."""
        if self.topology != "pair":
            return ()
        return self.nodes if self.replication_roles == "active_active" else self.nodes[:1]

    def role(self, node: str) -> str:
        """The node's role in the DDL DAG's terms (its ``servers`` param, ALTIBASE_PAIRS)."""
        if self.replication_roles == "active_active":
            return f"active{self.nodes.index(node) + 1}"
        return "active" if node == self.nodes[0] else "standby"


def node_ids_for(topology: str) -> tuple[str, ...]:
    return ("node1", "node2") if topology == "pair" else ("node1",)


def _as_int(value: Any) -> Any:
    # Form fields can arrive as strings; anything not purely digits is left for validation to name.
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value


def _is_host(value: object) -> bool:
    if not isinstance(value, str) or not value:
        return False
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return is_dns_subdomain(value)


def _quantity_problems(what: str, value: object) -> list[str]:
    try:
        quantity = parse_quantity(value)
    except (ValueError, TypeError):
        return [f"{what} {value!r}: not a Kubernetes quantity (e.g. 500m, 2Gi)"]
    if isinstance(value, bool) or quantity <= 0:
        return [f"{what} {value!r}: must be greater than zero"]
    return []


def _image_problems(image: object) -> list[str]:
    match = _IMAGE_REFERENCE.fullmatch(image) if isinstance(image, str) else None
    if match is None:
        return [f"image {image!r}: not an image reference like altibase/altibase:7.1.0.5.1"]
    if match["digest"] is None and match["tag"] in (None, "latest"):
        return [
            f"image {image!r}: pin a tag other than 'latest' or a digest, so re-runs start the same server"
        ]
    return []


def _nfs_path_problems(what: str, path: object, topology: str) -> list[str]:
    if not isinstance(path, str) or not path.startswith("/") or path == "/":
        return [f"{what} {path!r}: must be an absolute directory path"]
    segments = path.split("/")[1:]
    if any(segment in ("", ".", "..") for segment in segments):
        return [f"{what} {path!r}: must not contain empty, '.' or '..' segments"]
    placeholders = sum(segment == NODE_PLACEHOLDER for segment in segments)
    stray_braces = "{" in path.replace(NODE_PLACEHOLDER, "") or "}" in path.replace(NODE_PLACEHOLDER, "")
    if placeholders > 1 or path.count(NODE_PLACEHOLDER) != placeholders or stray_braces:
        return [f"{what} {path!r}: {NODE_PLACEHOLDER} may appear once, as a whole path segment"]
    if topology == "pair" and placeholders == 0:
        return [
            f"{what} {path!r}: a pair needs {NODE_PLACEHOLDER} in the path, or both nodes would share files"
        ]
    return []


def _proof_table_problems(table: TableSpec, node_count: int) -> list[str]:
    """The P7 proof writes one row per node into the first table; its columns must take the key."""
    found = []
    longest_key = len(str(node_count))
    for column in table.columns:
        if column.is_character and (column.length or 0) < longest_key:
            found.append(f"table {table.name!r}: column {column.name!r} is too short for the proof rows")
        elif not (column.is_numeric or column.is_character):
            if not column.nullable:
                found.append(
                    f"table {table.name!r}: the proof row cannot fill NOT NULL column {column.name!r} "
                    f"of type {column.type}; list a table with numeric or character columns first"
                )
            if column.name.upper() in (key.upper() for key in table.primary_key):
                found.append(
                    f"table {table.name!r}: primary key column {column.name!r} must be numeric or character"
                )
    return found


