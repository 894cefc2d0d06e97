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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from kubernetes.utils.quantity import parse_quantity

from altibase_ops.identifiers import IDENTIFIER_PATTERN, split_top_level

# The seed pulls the untagged image; the iSQL banner in its session shows release 7.1.0.5.1, so the
# default pins that release: a re-run months later must start the same server, not whatever
# `latest` has become. Override with the `image` parameter (any explicit tag or digest).
DEFAULT_IMAGE = "altibase/altibase:7.1.0.5.1"
SERVICE_PORT = 20300
REPLICATION_PORT = 20301
DBS_MOUNT_PATH = "/home/altibase/altibase_home/dbs"
LOGS_MOUNT_PATH = "/home/altibase/altibase_home/logs"
CONTAINER_NAME = "altibase"
# The image's entrypoint logs in with USER_ID/USER_PASSWD (defaults sys/manager) for its own iSQL
# work. The image has no variable that *sets* the SYS password, so the Secret must hold the SYS
# password the database actually has (``manager`` on a fresh image) — the same Secret the iSQL
# runner pods read, which keeps the password out of params, manifests and logs.
PASSWORD_ENV = "USER_PASSWD"
DEFAULT_TABLE = "t1 (c1 INTEGER PRIMARY KEY, c2 INTEGER)"
DEFAULT_REPLICATION_NAME = "rep1"

LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_NODE = "altibase.io/node"
LABEL_TOPOLOGY = "altibase.io/topology"
STATEFULSET_POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
APP_NAME = "altibase"
COMPONENT = "database"
MANAGED_BY = "altibase-airflow-ops"

TOPOLOGIES = ("single", "pair")
WORKLOADS = ("deployment", "statefulset", "pod")
STORAGE_TYPES = ("emptydir", "nfs", "pvc")
NODE_PLACEHOLDER = "{node}"
# Longest derived name is "<name>-svc-node2" / "<name>-headless"; StatefulSet revision hashes add
# another 11 characters to the StatefulSet name. 40 keeps all of them under 63.
MAX_NAME_LENGTH = 40

_DNS_1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_DNS_1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]+")
# Docker reference grammar, reduced to what a pinned image needs: [registry[:port]/]path[:tag][@digest]
_IMAGE_REFERENCE = re.compile(
    r"(?P<repository>(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
    r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[0-9a-f]{64}))?"
)

# Table, column and replication names follow the shared identifier pattern (the one the SQL
# templates' `ident` filter enforces again at rendering) and must not be a word the statements
# would misparse.
_RESERVED_WORDS = frozenset(
    """ADD ALL ALTER AND ANY AS ASC BETWEEN BY CHECK COLUMN CONSTRAINT CREATE DEFAULT DELETE DESC
    DISTINCT DROP EXISTS FOR FOREIGN FROM GRANT GROUP HAVING IN INDEX INSERT INTO IS KEY LIKE NOT
    NULL OF ON OR ORDER PRIMARY REFERENCES REPLICATION REVOKE SELECT SET START STOP SYNC TABLE TO
    UNION UNIQUE UPDATE USER VALUES VIEW WHERE WITH""".split()
)


class ProvisionSpecError(ValueError):
    """The provisioning parameters are invalid; ``problems`` lists every reason."""

    def __init__(self, problems: Sequence[str]):
        self.problems = tuple(problems)
        super().__init__("invalid provisioning parameters:\n" + "\n".join(f"  - {p}" for p in problems))


def identifier_problem(what: str, value: object) -> str | None:
    """Why ``value`` cannot be used as an unquoted SQL identifier, or None if it can."""
    # fullmatch, not match: the pattern's `$` would let a trailing newline through.
    if not isinstance(value, str) or not IDENTIFIER_PATTERN.fullmatch(value):
        return (
            f"{what} {value!r}: must start with a letter and contain only letters, digits and '_' "
            "(at most 40 characters)"
        )
    if value.upper() in _RESERVED_WORDS:
        return f"{what} {value!r}: is an SQL reserved word"
    return None


# --- tables -----------------------------------------------------------------------------------

_NUMERIC_TYPES = ("SMALLINT", "INTEGER", "BIGINT", "REAL", "DOUBLE", "FLOAT", "NUMERIC", "DECIMAL", "NUMBER")
_CHARACTER_TYPES = ("CHAR", "VARCHAR", "NCHAR", "NVARCHAR")
_COLUMN_TYPE = re.compile(
    r"(?P<base>SMALLINT|INTEGER|BIGINT|REAL|DOUBLE|DATE)"
    r"|(?P<float>FLOAT)(?:\s*\(\s*(?P<float_precision>\d{1,2})\s*\))?"
    r"|(?P<exact>NUMERIC|DECIMAL|NUMBER)(?:\s*\(\s*(?P<precision>\d{1,2})\s*(?:,\s*(?P<scale>\d{1,2})\s*)?\))?"
    r"|(?P<char>CHAR|VARCHAR|NCHAR|NVARCHAR)\s*\(\s*(?P<length>\d{1,5})\s*\)",
    re.IGNORECASE,
)
_COLUMN = re.compile(
    r"(?P<name>\w+)\s+(?P<type>[A-Za-z]+(?:\s*\([\d\s,]*\))?)(?P<constraints>(?:\s+\w+)*)",
)
_TABLE_PRIMARY_KEY = re.compile(r"PRIMARY\s+KEY\s*\((?P<columns>[\w\s,]+)\)", re.IGNORECASE)
_TABLE = re.compile(r"\s*(?P<name>\w+)\s*\((?P<body>.*)\)\s*;?\s*", re.DOTALL)


@dataclass(frozen=True)
class ColumnSpec:
    """One column: a validated identifier, a canonical type (``INTEGER``, ``VARCHAR(20)``…)."""

    name: str
    type: str
    nullable: bool = True

    @property
    def is_numeric(self) -> bool:
        return self.type.split("(")[0] in _NUMERIC_TYPES

    @property
    def is_character(self) -> bool:
        return self.type.split("(")[0] in _CHARACTER_TYPES

    @property
    def length(self) -> int | None:
        """The declared length of a character column."""
        if not self.is_character:
            return None
        return int(self.type.split("(")[1].rstrip(")"))


@dataclass(frozen=True)
class TableSpec:
    """A table to create on every node and replicate (``sys.<name>``, as in the seed)."""

    name: str
    columns: tuple[ColumnSpec, ...]
    primary_key: tuple[str, ...]

    def problems(self) -> list[str]:
        found = []
        if problem := identifier_problem("table name", self.name):
            found.append(problem)
        if not self.columns:
            found.append(f"table {self.name!r}: has no columns")
        seen: set[str] = set()
        for column in self.columns:
            if problem := identifier_problem(f"table {self.name!r}: column name", column.name):
                found.append(problem)
            if not _COLUMN_TYPE.fullmatch(column.type):
                found.append(
                    f"table {self.name!r}: column {column.name!r} has unsupported type {column.type!r}"
                )
            if column.name.upper() in seen:
                found.append(f"table {self.name!r}: column {column.name!r} is declared twice")
            seen.add(column.name.upper())
        if not self.primary_key:
            # Replication refuses tables without a primary key (Replication Manual).
            found.append(f"table {self.name!r}: needs a PRIMARY KEY to be replicated")
        # Exact spelling: the templates compare key and column names as written.
        declared = {column.name for column in self.columns}
        for key_column in self.primary_key:
            if key_column not in declared:
                found.append(f"table {self.name!r}: primary key column {key_column!r} is not a column")
        return found


def _canonical_type(text: str) -> str | None:
    match = _COLUMN_TYPE.fullmatch(text.strip())
    if match is None:
        return None
    if match["base"]:
        return match["base"].upper()
    if match["float"]:
        precision = match["float_precision"]
        return f"FLOAT({precision})" if precision else "FLOAT"
    if match["exact"]:
        kind, precision, scale = match["exact"].upper(), match["precision"], match["scale"]
        if precision is None:
            return kind
        return f"{kind}({precision},{scale})" if scale is not None else f"{kind}({precision})"
    return f"{match['char'].upper()}({int(match['length'])})"


def parse_table(text: str) -> TableSpec:
    """Parse ``name (column TYPE [PRIMARY KEY|NOT NULL]…, … [, PRIMARY KEY (a, b)])``.

    Only this small grammar is accepted — anything else is rejected rather than passed on, because
    the result is rendered into SQL.
    """
    match = _TABLE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ProvisionSpecError([f"table {text!r}: expected 'name (column TYPE, …)'"])
    name, problems = match["name"], []
    columns: list[ColumnSpec] = []
    primary_key: list[str] = []
    for item in split_top_level(match["body"]):
        if key := _TABLE_PRIMARY_KEY.fullmatch(item):
            primary_key.extend(column.strip() for column in key["columns"].split(","))
            continue
        column = _COLUMN.fullmatch(item)
        canonical = _canonical_type(column["type"]) if column else None
        if column is None or canonical is None:
            problems.append(f"table {name!r}: cannot read column definition {item!r}")
            continue
        words = column["constraints"].upper().split()
        constraints = " ".join(words)
        nullable = True
        if constraints in ("PRIMARY KEY", "NOT NULL PRIMARY KEY", "PRIMARY KEY NOT NULL"):
            primary_key.append(column["name"])
            nullable = False
        elif constraints == "NOT NULL":
            nullable = False
        elif constraints:
            problems.append(
                f"table {name!r}: column {column['name']!r} has unsupported constraint {constraints!r}"
            )
        columns.append(ColumnSpec(column["name"], canonical, nullable))
    if problems:
        raise ProvisionSpecError(problems)
    # Key columns take the spelling of their declaration, so the SQL templates can compare names.
    declared = {column.name.upper(): column.name for column in columns}
    primary_key = [declared.get(key.upper(), key) for key in primary_key]
    columns = [ColumnSpec(c.name, c.type, False) if c.name in primary_key else c for c in columns]
    return TableSpec(name, tuple(columns), tuple(primary_key))


# --- storage, secret, resources ------------------------------------------------------------------


@dataclass(frozen=True)
class EmptyDirStorage:
    """Pod-lifetime volumes: data is lost when the pod is replaced (tests, demos)."""

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
        if self.storage_class is not None and not _is_dns_subdomain(self.storage_class):
            found.append(f"pvc storage_class {self.storage_class!r}: must be a DNS-1123 subdomain")
        return found


StorageSpec = EmptyDirStorage | NfsStorage | PvcStorage


@dataclass(frozen=True)
class SecretRef:
    """The Kubernetes Secret key holding the SYS password (never the password itself)."""

    name: str = "altibase-sys-password"
    key: str = "password"

    def problems(self) -> list[str]:
        found = []
        if not _is_dns_subdomain(self.name):
            found.append(f"password secret name {self.name!r}: must be a DNS-1123 subdomain")
        if not isinstance(self.key, str) or not _SECRET_KEY.fullmatch(self.key) or len(self.key) > 253:
            found.append(
                f"password secret key {self.key!r}: may contain only letters, digits, '-', '_' and '.'"
            )
        return found


@dataclass(frozen=True)
class ResourceSpec:
    """Requests and limits of the Altibase container.

    Memory request equals the limit so the node never picks the database first to evict under
    memory pressure; no CPU limit by default, because CFS throttling stalls a database's
    replication and log threads rather than slowing it evenly.
    """

    cpu_request: str = "500m"
    memory_request: str = "2Gi"
    cpu_limit: str | None = None
    memory_limit: str | None = "2Gi"

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
    storage: StorageSpec = field(default_factory=EmptyDirStorage)
    service_port: int = SERVICE_PORT
    replication_port: int = REPLICATION_PORT
    password_secret: SecretRef = field(default_factory=SecretRef)
    tables: tuple[TableSpec, ...] = field(default_factory=lambda: (parse_table(DEFAULT_TABLE),))
    replication_name: str = DEFAULT_REPLICATION_NAME
    resources: ResourceSpec = field(default_factory=ResourceSpec)

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
        if not isinstance(self.namespace, str) or not _is_dns_label(self.namespace):
            found.append(f"namespace {self.namespace!r}: must be a DNS-1123 label")
        found.extend(_image_problems(self.image))
        if self.topology not in TOPOLOGIES:
            found.append(f"topology {self.topology!r}: must be one of {', '.join(TOPOLOGIES)}")
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
        storage_type = given.get("storage", "emptydir")
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
            for k in ("name", "namespace", "image", "topology", "workload", "replication_name")
            if k in given
        }
        ports = {k: _as_int(given[k]) for k in ("service_port", "replication_port") if k in given}
        tables = given.get("tables")
        if tables is not None:
            simple["tables"] = tuple(tables) if isinstance(tables, list | tuple) else tables
        return cls(storage=storage, password_secret=secret, resources=resources, **simple, **ports)

    @property
    def nodes(self) -> tuple[str, ...]:
        return node_ids_for(self.topology)


def node_ids_for(topology: str) -> tuple[str, ...]:
    return ("node1", "node2") if topology == "pair" else ("node1",)


def _as_int(value: Any) -> Any:
    # Form fields can arrive as strings; anything not purely digits is left for validation to name.
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value


def _is_dns_label(value: str) -> bool:
    return isinstance(value, str) and len(value) <= 63 and bool(_DNS_1123_LABEL.fullmatch(value))


def _is_dns_subdomain(value: object) -> bool:
    return isinstance(value, str) and len(value) <= 253 and bool(_DNS_1123_SUBDOMAIN.fullmatch(value))


def _is_host(value: object) -> bool:
    if not isinstance(value, str) or not value:
        return False
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return _is_dns_subdomain(value)


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


# --- names and selectors ------------------------------------------------------------------------


def workload_name(spec: ProvisionSpec, node: str | None = None) -> str:
    """Deployment/Pod name of a node; the StatefulSet (one for all nodes) is just ``<name>``."""
    if spec.workload == "statefulset":
        return spec.name
    return f"{spec.name}-{node}"


def pod_name(spec: ProvisionSpec, node: str) -> str | None:
    """The pod's name where Kubernetes makes it predictable (StatefulSet, bare Pod)."""
    if spec.workload == "statefulset":
        return f"{spec.name}-{spec.nodes.index(node)}"
    if spec.workload == "pod":
        return workload_name(spec, node)
    return None


def service_name(spec: ProvisionSpec, node: str) -> str:
    """The per-node ClusterIP Service: what clients, iSQL and the peer's replication connect to."""
    return f"{spec.name}-svc-{node}"


def service_fqdn(spec: ProvisionSpec, node: str) -> str:
    """The Service name that resolves from any namespace (for runners outside ``spec.namespace``)."""
    return f"{service_name(spec, node)}.{spec.namespace}.svc"


def headless_service_name(spec: ProvisionSpec) -> str:
    return f"{spec.name}-headless"


def peer_node(spec: ProvisionSpec, node: str) -> str:
    if spec.topology != "pair":
        raise ValueError("a single server has no peer")
    return spec.nodes[1 - spec.nodes.index(node)]


def instance_labels(name: str) -> dict[str, str]:
    """Labels every object of one instance carries; teardown selects on them."""
    return {
        LABEL_NAME: APP_NAME,
        LABEL_INSTANCE: name,
        LABEL_COMPONENT: COMPONENT,
        LABEL_MANAGED_BY: MANAGED_BY,
    }


def instance_selector(name: str) -> str:
    """Label selector (string form) for every object of one instance."""
    return _selector_string({LABEL_INSTANCE: name, LABEL_MANAGED_BY: MANAGED_BY})


def node_pod_selector(spec: ProvisionSpec, node: str) -> str:
    """Label selector of the pod(s) serving one node."""
    return _selector_string(_node_pod_match_labels(spec, node))


def _selector_string(labels: Mapping[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in labels.items())


def _object_labels(spec: ProvisionSpec, node: str | None) -> dict[str, str]:
    labels = instance_labels(spec.name) | {LABEL_TOPOLOGY: spec.topology}
    if node is not None:
        labels[LABEL_NODE] = node
    return labels


def _workload_match_labels(spec: ProvisionSpec, node: str | None) -> dict[str, str]:
    # Selectors are immutable on Deployments and StatefulSets: only labels that never change for
    # the object's lifetime (no topology, no image version).
    labels = {LABEL_NAME: APP_NAME, LABEL_INSTANCE: spec.name}
    if node is not None:
        labels[LABEL_NODE] = node
    return labels


def _node_pod_match_labels(spec: ProvisionSpec, node: str) -> dict[str, str]:
    if spec.workload == "statefulset":
        # One pod template serves every node, so the per-node label is the controller's pod name.
        return _workload_match_labels(spec, None) | {STATEFULSET_POD_NAME_LABEL: pod_name(spec, node)}
    return _workload_match_labels(spec, node)


def _metadata(spec: ProvisionSpec, name: str, node: str | None) -> dict[str, Any]:
    return {"name": name, "namespace": spec.namespace, "labels": _object_labels(spec, node)}


# --- manifests ----------------------------------------------------------------------------------


def render_manifests(spec: ProvisionSpec) -> list[dict[str, Any]]:
    """All objects for ``spec``, in apply order: claims, Services, then workloads.

    Services come before the pods so their names resolve by the time the servers start and the
    replication objects are created.
    """
    claims = []
    if isinstance(spec.storage, PvcStorage) and spec.workload != "statefulset":
        claims = [_claim(spec, node) for node in spec.nodes]
    services = [_node_service(spec, node) for node in spec.nodes]
    if spec.workload == "statefulset":
        return claims + [_headless_service(spec), *services, _stateful_set(spec)]
    if spec.workload == "pod":
        return claims + services + [_pod(spec, node) for node in spec.nodes]
    return claims + services + [_deployment(spec, node) for node in spec.nodes]


class _PlainDumper(yaml.SafeDumper):
    # Anchors and aliases (&id001) are legal YAML but unreadable in a dry-run listing.
    def ignore_aliases(self, data: Any) -> bool:
        return True


def manifests_yaml(manifests: Iterable[Mapping[str, Any]]) -> str:
    """One multi-document YAML text (for dry runs and for ``kubectl apply -f -``)."""
    return yaml.dump_all(list(manifests), Dumper=_PlainDumper, sort_keys=False)


def _service_ports(spec: ProvisionSpec) -> list[dict[str, Any]]:
    ports = [
        {
            "name": "service-port",
            "port": spec.service_port,
            "targetPort": spec.service_port,
            "protocol": "TCP",
        }
    ]
    if spec.topology == "pair":
        ports.append(
            {
                "name": "replication-port",
                "port": spec.replication_port,
                "targetPort": spec.replication_port,
                "protocol": "TCP",
            }
        )
    return ports


def _node_service(spec: ProvisionSpec, node: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(spec, service_name(spec, node), node),
        "spec": {
            "type": "ClusterIP",
            "selector": _node_pod_match_labels(spec, node),
            "ports": _service_ports(spec),
        },
    }


def _headless_service(spec: ProvisionSpec) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(spec, headless_service_name(spec), None),
        "spec": {
            "clusterIP": "None",
            # aku needs the pods resolvable before they are Ready (it runs during startup).
            "publishNotReadyAddresses": True,
            "selector": _workload_match_labels(spec, None),
            "ports": _service_ports(spec),
        },
    }


def _claim(spec: ProvisionSpec, node: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _metadata(spec, f"{spec.name}-data-{node}", node),
        "spec": _claim_spec(spec.storage),
    }


def _claim_spec(storage: PvcStorage) -> dict[str, Any]:
    claim: dict[str, Any] = {
        # One server per claim: two Altibase processes must never open the same data files.
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": storage.size}},
    }
    if storage.storage_class is not None:
        claim["storageClassName"] = storage.storage_class
    return claim


def _env(spec: ProvisionSpec) -> list[dict[str, Any]]:
    if spec.topology == "pair":
        env: list[dict[str, Any]] = [
            {"name": "MODE", "value": "replication"},
            {"name": "SLAVE_REP_PORT", "value": str(spec.replication_port)},
        ]
    else:
        env = [{"name": "MODE", "value": "daemon"}]
    env.append(
        {
            "name": PASSWORD_ENV,
            "valueFrom": {
                "secretKeyRef": {"name": spec.password_secret.name, "key": spec.password_secret.key}
            },
        }
    )
    if spec.workload == "statefulset" and isinstance(spec.storage, NfsStorage):
        # Feeds subPathExpr; deliberately not ALTIBASE_-prefixed, which the server reads as a property.
        env.append({"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})
    return env


def _container_ports(spec: ProvisionSpec) -> list[dict[str, Any]]:
    # Container port names are limited to 15 characters; the Service keeps the seed's longer names.
    ports = [{"name": "service", "containerPort": spec.service_port, "protocol": "TCP"}]
    if spec.topology == "pair":
        ports.append({"name": "replication", "containerPort": spec.replication_port, "protocol": "TCP"})
    return ports


def _probes() -> dict[str, Any]:
    def on_service_port(period: int, failures: int) -> dict[str, Any]:
        return {
            "tcpSocket": {"port": "service"},
            "periodSeconds": period,
            "failureThreshold": failures,
            "timeoutSeconds": 5,
        }

    return {
        # The first start creates the database; give it up to 10 minutes before liveness counts.
        "startupProbe": on_service_port(10, 60),
        "readinessProbe": on_service_port(10, 3),
        # A busy server can miss a probe or two; restart only after two minutes without a listener.
        "livenessProbe": on_service_port(20, 6),
    }


def _volumes_and_mounts(spec: ProvisionSpec, node: str | None) -> tuple[list[dict], list[dict]]:
    storage = spec.storage
    if isinstance(storage, EmptyDirStorage):
        empty_dir = {"sizeLimit": storage.size_limit} if storage.size_limit else {}
        volumes = [
            {"name": "dbs", "emptyDir": dict(empty_dir)},
            {"name": "logs", "emptyDir": dict(empty_dir)},
        ]
        return volumes, [
            {"name": "dbs", "mountPath": DBS_MOUNT_PATH},
            {"name": "logs", "mountPath": LOGS_MOUNT_PATH},
        ]
    if isinstance(storage, NfsStorage):
        volumes, mounts = [], []
        for volume, path, mount_path in (
            ("dbs", storage.dbs_path, DBS_MOUNT_PATH),
            ("logs", storage.logs_path, LOGS_MOUNT_PATH),
        ):
            mount = {"name": volume, "mountPath": mount_path}
            if node is None and NODE_PLACEHOLDER in path:
                export, _, rest = path.partition(f"/{NODE_PLACEHOLDER}")
                mount["subPathExpr"] = "$(POD_NAME)" + rest
                path = export or "/"
            else:
                path = path.replace(NODE_PLACEHOLDER, node or "")
            volumes.append({"name": volume, "nfs": {"server": storage.server, "path": path}})
            mounts.append(mount)
        return volumes, mounts
    mounts = [
        {"name": "data", "mountPath": DBS_MOUNT_PATH, "subPath": "dbs"},
        {"name": "data", "mountPath": LOGS_MOUNT_PATH, "subPath": "logs"},
    ]
    if node is None:  # StatefulSet: the claim comes from volumeClaimTemplates
        return [], mounts
    return [{"name": "data", "persistentVolumeClaim": {"claimName": f"{spec.name}-data-{node}"}}], mounts


def _pod_spec(spec: ProvisionSpec, node: str | None) -> dict[str, Any]:
    volumes, mounts = _volumes_and_mounts(spec, node)
    container = {
        "name": CONTAINER_NAME,
        "image": spec.image,
        "imagePullPolicy": "IfNotPresent",
        "ports": _container_ports(spec),
        "env": _env(spec),
        "volumeMounts": mounts,
        "resources": spec.resources.to_manifest(),
        **_probes(),
    }
    pod_spec: dict[str, Any] = {
        "containers": [container],
        # Service links inject variables such as ALTIBASE_SVC_NODE1_PORT; the image reads every
        # ALTIBASE_* variable as a server property, so they must not appear.
        "enableServiceLinks": False,
        # The database never calls the Kubernetes API.
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": 60,
    }
    if volumes:
        pod_spec["volumes"] = volumes
    return pod_spec


def _deployment(spec: ProvisionSpec, node: str) -> dict[str, Any]:
    pod_spec = _pod_spec(spec, node)
    # A stable hostname across pod replacements, for hostname-bound licences and readable logs.
    pod_spec["hostname"] = workload_name(spec, node)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(spec, workload_name(spec, node), node),
        "spec": {
            "replicas": 1,
            # Never two servers on one node's data files, not even for the length of a rollout.
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": _workload_match_labels(spec, node)},
            "template": {"metadata": {"labels": _object_labels(spec, node)}, "spec": pod_spec},
        },
    }


def _pod(spec: ProvisionSpec, node: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _metadata(spec, workload_name(spec, node), node),
        "spec": _pod_spec(spec, node) | {"restartPolicy": "Always"},
    }


def _stateful_set(spec: ProvisionSpec) -> dict[str, Any]:
    stateful_set: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _metadata(spec, workload_name(spec), None),
        "spec": {
            "serviceName": headless_service_name(spec),
            "replicas": len(spec.nodes),
            # aku's requirement; also starts node1 before node2, matching the P6 order.
            "podManagementPolicy": "OrderedReady",
            "updateStrategy": {"type": "RollingUpdate"},
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
            "selector": {"matchLabels": _workload_match_labels(spec, None)},
            "template": {"metadata": {"labels": _object_labels(spec, None)}, "spec": _pod_spec(spec, None)},
        },
    }
    if isinstance(spec.storage, PvcStorage):
        stateful_set["spec"]["volumeClaimTemplates"] = [
            {
                # Labels here end up on the claims, so teardown can find them by instance.
                "metadata": {"name": "data", "labels": _object_labels(spec, None)},
                "spec": _claim_spec(spec.storage),
            }
        ]
    return stateful_set
