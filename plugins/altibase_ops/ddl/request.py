"""The DDL run's request: its params, validated before anything touches a server.

Every parameter is checked here, and the message names the parameter. Each task rebuilds the request
from the run's params (``DdlRequest.from_params``); XCom carries only what tasks produce.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from altibase_ops.ddl.statements import DdlStatement, InvalidDdlError, parse_ddl
from altibase_ops.operators.isql import DEFAULT_POD_STARTUP_TIMEOUT, RUNNERS
from altibase_ops.sql.identifiers import (
    CONN_ID_PATTERN,
    SERVER_NAME_PATTERN,
    InvalidIdentifierError,
    identifier,
    qualified_table,
)
from altibase_ops.sys_password import (
    DEFAULT_SECRET_KEY,
    DEFAULT_SECRET_NAME,
    SecretRef,
    is_dns_label,
    is_dns_subdomain,
)

# The roles of a pair's two servers, per topology (docs/procedures.md).
TOPOLOGY_ROLES = {"active_standby": ("active", "standby"), "active_active": ("active1", "active2")}
SERVICE_MODES = ("can_stop", "rolling")
SERVICE_CONTROL_MODES = ("manual", "kubernetes", "simulator")
# A change's id (a change file's name without .yaml): what the history on the servers records
CHANGE_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", re.ASCII)
CHECKSUM_PATTERN = re.compile(r"[0-9a-f]{16}", re.ASCII)


class InvalidRequestError(ValueError):
    """A parameter the DAG refuses, with the parameter's name in the message."""


# ------------------------------------------------------------------------------------------ request
@dataclass
class Server:
    name: str
    conn_id: str
    role: str


# Every statement runs inside the admin-mode window, one table at a time leaves the replication: a
# request bigger than this is a migration to split, not one change.
MAX_DDL_ENTRIES = 50
MAX_TABLES = 50
# Preflight's bounded reads of a table's rows: one scan of at most this many rows per server and check
# (docs/altibase-rules.md, "Before the outage").
DEFAULT_SCAN_MAX_ROWS = 10_000_000


@dataclass
class DdlRequest:
    """The validated parameters of one run. Every task builds it again from the run's params
    (``DdlRequest.from_params``): cheap, pure, and the same in every task."""
    servers: list[Server]
    topology: str
    service_mode: str
    replication_name: str
    tables: list[str]
    ddl: list[DdlStatement]
    service_control: dict[str, Any]
    runner: str
    gap_timeout_seconds: int
    sessions_timeout_seconds: int
    approval_timeout_minutes: int
    flush_wait_seconds: int
    poke_interval_seconds: float
    dry_run: bool
    pod_namespace: str = "default"  # runner kubernetes: where the iSQL pods run
    pod_startup_timeout_seconds: int = DEFAULT_POD_STARTUP_TIMEOUT  # runner kubernetes: first pull included
    password_secret: SecretRef = field(default_factory=SecretRef)  # runner kubernetes: the SYS password
    recover: bool = False
    # how long after this run's last sign of life (its lease, refreshed by each of its tasks, plus its
    # longest wait) another run may take its lock as dead (ddl/records.py)
    lock_lease_seconds: int = 3600
    # preflight reads a table's rows (duplicate keys of a new unique index) only up to this many rows
    scan_max_rows: int = DEFAULT_SCAN_MAX_ROWS
    change_id: str = ""  # set by the maintenance DAG (a change file); recorded in the pair's history
    change_checksum: str = ""
    not_before: datetime | None = None  # the maintenance window, when the run has one (UTC)
    not_after: datetime | None = None
    pair: str = ""  # the fleet's name for the pair (param ``pair``); "" when the params name the servers

    def describe_pair(self) -> str:
        """The pair as a person tells two runs apart: its name and each server's role and Connection."""
        name = f"pair {self.pair}" if self.pair else "pair (given by its servers, not by name)"
        return f"{name}: " + ", ".join(f"{s.name} ({s.role}, Connection {s.conn_id})" for s in self.servers)

    @property
    def variant(self) -> str:
        return f"{self.service_mode}_{self.topology}"

    def server(self, role: str) -> Server:
        return next(s for s in self.servers if s.role == role)

    def peer(self, role: str) -> Server:
        return next(s for s in self.servers if s.role != role)

    @property
    def senders(self) -> set[str]:
        """The servers that must send: both in Active-Active, the active in Active-Standby."""
        return {s.name for s in self.servers if self.topology == "active_active" or s.role == "active"}

    @property
    def longest_wait_seconds(self) -> int:
        """The longest any one task of the run may wait without a sign of life (a deferred sensor, a
        person's approval, a pod's start)."""
        waits = [self.gap_timeout_seconds, self.sessions_timeout_seconds, self.flush_wait_seconds]
        if self.service_control.get("mode") == "manual":
            waits.append(self.approval_timeout_minutes * 60)
        if self.runner == "kubernetes":
            waits.append(self.pod_startup_timeout_seconds)
        return max(waits)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> DdlRequest:
        """The run's params, validated (InvalidRequestError names the parameter)."""
        return validate_request(dict(params))


def _positive_int(params: dict, name: str, default: int, maximum: int) -> int:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise InvalidRequestError(f"{name}: must be a whole number from 1 to {maximum}, got {value!r}")
    return value


def _poke_interval(params: dict) -> float:
    value = params.get("poke_interval_seconds", 5)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.1 <= value <= 3600:
        raise InvalidRequestError(f"poke_interval_seconds: must be a number from 0.1 to 3600, got {value!r}")
    return float(value)


def _moment(params: dict, name: str) -> datetime | None:
    """An optional ISO 8601 date-time; one without a zone is UTC."""
    value = params.get(name)
    if value in (None, ""):
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequestError(f"{name}: {value!r} is not an ISO 8601 date-time (e.g. 2026-12-05T02:00:00Z)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# The form's service control: a mode and only that mode's fields (section "Service control: kubernetes")
CONTROL_MODE_FIELDS = {"kubernetes_namespace": "namespace", "kubernetes_services": "services",
                       "kubernetes_deployments": "deployments", "kubernetes_server_selectors": "server_selectors"}


def form_service_control(params: dict[str, Any]) -> dict[str, Any]:
    """``service_control`` as the form says it: the JSON object when given (the maintenance DAG, the
    API), else built from ``service_control_mode`` and that mode's fields; {} when neither says."""
    if params.get("service_control"):
        return params["service_control"]
    mode = params.get("service_control_mode") or ""
    if mode == "simulator":
        state_dir = params.get("simulator_state_dir")
        return {"mode": "simulator", **({"state_dir": state_dir} if state_dir else {})}
    if mode == "kubernetes":
        return {"mode": "kubernetes", **{key: params[field] for field, key in CONTROL_MODE_FIELDS.items()
                                         if params.get(field)}}
    return {"mode": mode} if mode else {}


def from_pair(params: dict[str, Any]) -> dict[str, Any]:
    """``pair`` names a pair of the fleet (``ALTIBASE_PAIRS``): its servers, topology and replication
    replace the form's; its service control is used when the form says none."""
    params = {**params, "service_control": form_service_control(params)}
    name = params.get("pair") or ""
    if not name:
        return params
    from altibase_ops.pairs import (  # pairs imports this module
        InvalidPairsError,
        pairs_by_name,
        pairs_from_env,
    )

    try:
        fleet = pairs_by_name(pairs_from_env())
    except InvalidPairsError as exc:
        raise InvalidRequestError(f"pair: the fleet (ALTIBASE_PAIRS) is unusable: {exc}") from None
    if name not in fleet:
        raise InvalidRequestError(f"pair: {name!r} is not a configured pair (ALTIBASE_PAIRS has {sorted(fleet)})")
    pair = fleet[name]
    return {**params, "servers": pair.servers, "topology": pair.topology, "replication_name": pair.replication_name,
            "service_control": params.get("service_control") or pair.service_control}


def validate_request(params: dict[str, Any]) -> DdlRequest:
    """Check every parameter before anything touches a server; the message names the parameter."""
    params = from_pair(params)
    topology = params.get("topology")
    if topology not in TOPOLOGY_ROLES:
        raise InvalidRequestError(f"topology: must be one of {sorted(TOPOLOGY_ROLES)}, got {topology!r}")
    service_mode = params.get("service_mode")
    if service_mode not in SERVICE_MODES:
        raise InvalidRequestError(f"service_mode: must be one of {list(SERVICE_MODES)}, got {service_mode!r}")

    raw_servers = params.get("servers")
    if not isinstance(raw_servers, list) or len(raw_servers) != 2:
        raise InvalidRequestError("servers: a replicated pair is exactly two entries {name, conn_id, role}")
    servers = []
    for i, entry in enumerate(raw_servers):
        if not isinstance(entry, dict) or set(entry) - {"name", "conn_id", "role"}:
            raise InvalidRequestError(f"servers[{i}]: expected an object with name, conn_id and role, got {entry!r}")
        name, conn_id, role = entry.get("name"), entry.get("conn_id"), entry.get("role")
        if not isinstance(name, str) or not SERVER_NAME_PATTERN.fullmatch(name):
            raise InvalidRequestError(f"servers[{i}].name: {name!r} is not a server name (letters, digits, _ . -)")
        if not isinstance(conn_id, str) or not CONN_ID_PATTERN.fullmatch(conn_id):
            raise InvalidRequestError(f"servers[{i}].conn_id: {conn_id!r} is not an Airflow connection id")
        servers.append(Server(name, conn_id, role))
    roles = sorted(s.role for s in servers)
    if roles != sorted(TOPOLOGY_ROLES[topology]):
        raise InvalidRequestError(f"servers: roles {roles} do not match topology {topology!r}, which needs "
                                  f"{sorted(TOPOLOGY_ROLES[topology])}")
    if len({s.name for s in servers}) != 2 or len({s.conn_id for s in servers}) != 2:
        raise InvalidRequestError("servers: the two servers need different names and different conn_ids")

    try:
        replication_name = identifier(params.get("replication_name"))
    except InvalidIdentifierError as exc:
        raise InvalidRequestError(f"replication_name: {exc}") from None

    raw_tables = params.get("tables")
    if not isinstance(raw_tables, list) or not raw_tables:
        raise InvalidRequestError("tables: give at least one USER.TABLE")
    if len(raw_tables) > MAX_TABLES:
        raise InvalidRequestError(f"tables: at most {MAX_TABLES} per request (got {len(raw_tables)}); split the change")
    tables = []
    for i, table in enumerate(raw_tables):
        try:
            tables.append(qualified_table(table))
        except InvalidIdentifierError as exc:
            raise InvalidRequestError(f"tables[{i}]: {exc}") from None
    if len(set(tables)) != len(tables):
        raise InvalidRequestError("tables: a table is listed twice")

    raw_ddl = params.get("ddl")
    if not isinstance(raw_ddl, list) or not raw_ddl:
        raise InvalidRequestError("ddl: give at least one DDL statement")
    if len(raw_ddl) > MAX_DDL_ENTRIES:
        raise InvalidRequestError(f"ddl: at most {MAX_DDL_ENTRIES} statements per request (got {len(raw_ddl)}): every "
                                  "one runs inside the admin-mode window; split the change")
    ddl, refused = [], []
    # every bad entry at once, one line each: a person fixes them all before the next try
    for i, text in enumerate(raw_ddl):
        try:
            stmt = parse_ddl(text)
        except InvalidDdlError as exc:
            refused.append(f"ddl[{i}]: {exc}")
            continue
        if stmt.table is not None and stmt.table not in tables:
            refused.append(f"ddl[{i}]: {stmt.table} is not one of the listed tables {tables}")
        elif stmt.kind == "truncate" and service_mode == "rolling":
            # the servers turn one after the other while the application writes: rows that reach the second
            # server after the first emptied its table survive there, and the pair ends with two contents
            refused.append(f"ddl[{i}]: TRUNCATE cannot run rolling (the other server keeps taking writes between "
                           "the turns, so the two servers end with different rows); use service_mode can_stop")
        ddl.append(stmt)
    if refused:
        raise InvalidRequestError("\n".join(refused))

    control = params.get("service_control") or {"mode": "manual"}  # empty: a person is asked
    if not isinstance(control, dict) or control.get("mode") not in SERVICE_CONTROL_MODES:
        raise InvalidRequestError(f"service_control.mode: must be one of {list(SERVICE_CONTROL_MODES)}")
    if control["mode"] == "kubernetes":
        problems = kubernetes_control_problems(control, [s.name for s in servers], params.get("service_mode"))
        if problems:
            raise InvalidRequestError("service_control: " + "; ".join(problems))
    runner = params.get("runner", "local")
    if runner not in RUNNERS:
        raise InvalidRequestError(f"runner: must be one of {list(RUNNERS)}, got {runner!r}")
    pod_namespace = params.get("pod_namespace", "default")
    if not is_dns_label(pod_namespace):
        raise InvalidRequestError(f"pod_namespace: {pod_namespace!r} is not a Kubernetes namespace name")
    password_secret = SecretRef(params.get("password_secret_name", DEFAULT_SECRET_NAME),
                                params.get("password_secret_key", DEFAULT_SECRET_KEY))
    if secret_problems := password_secret.problems():
        raise InvalidRequestError("password_secret_name/password_secret_key: " + "; ".join(secret_problems))
    dry_run = params.get("dry_run", True)
    if not isinstance(dry_run, bool):
        raise InvalidRequestError(f"dry_run: must be true or false, got {dry_run!r}")
    recover = params.get("recover", False)
    if not isinstance(recover, bool):
        raise InvalidRequestError(f"recover: must be true or false, got {recover!r}")
    change_id = params.get("change_id") or ""
    if change_id and (not isinstance(change_id, str) or not CHANGE_ID_PATTERN.fullmatch(change_id)):
        raise InvalidRequestError(f"change_id: {change_id!r} is not a change id (letters, digits, _ . -; up to 100)")
    change_checksum = params.get("change_checksum") or ""
    if change_checksum and (not isinstance(change_checksum, str) or not CHECKSUM_PATTERN.fullmatch(change_checksum)):
        raise InvalidRequestError(f"change_checksum: {change_checksum!r} is not 16 lower-case hex digits")
    not_before, not_after = _moment(params, "not_before"), _moment(params, "not_after")
    if not_before and not_after and not_after <= not_before:
        raise InvalidRequestError(f"not_after ({not_after.isoformat()}) must be later than not_before "
                                  f"({not_before.isoformat()})")
    return DdlRequest(
        change_id=change_id, change_checksum=change_checksum, not_before=not_before, not_after=not_after,
        pair=str(params.get("pair") or ""),
        servers=servers, topology=topology, service_mode=service_mode, replication_name=replication_name,
        tables=tables, ddl=ddl, service_control=control, runner=runner,
        gap_timeout_seconds=_positive_int(params, "gap_timeout_seconds", 300, 86400),
        sessions_timeout_seconds=_positive_int(params, "sessions_timeout_seconds", 300, 86400),
        approval_timeout_minutes=_positive_int(params, "approval_timeout_minutes", 60, 10080),
        flush_wait_seconds=_positive_int(params, "flush_wait_seconds", 60, 3600),
        poke_interval_seconds=_poke_interval(params),
        lock_lease_seconds=_positive_int(params, "lock_lease_seconds", 3600, 7 * 86400),
        scan_max_rows=_positive_int(params, "scan_max_rows", DEFAULT_SCAN_MAX_ROWS, 10**12),
        dry_run=dry_run, recover=recover, pod_namespace=pod_namespace, password_secret=password_secret,
        pod_startup_timeout_seconds=_positive_int(params, "pod_startup_timeout_seconds", DEFAULT_POD_STARTUP_TIMEOUT,
                                                  7200),
    )


_LABEL_VALUE = re.compile(r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?", re.ASCII)
_LABEL_KEY = re.compile(r"(?:[a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?",
                        re.ASCII)


def kubernetes_control_problems(control: dict[str, Any], servers: list[str], service_mode: Any) -> list[str]:
    """What is wrong with a ``service_control`` of mode kubernetes (``service/kubernetes.py``), all at once."""
    problems = []
    if not is_dns_label(control.get("namespace")):
        problems.append("namespace: required for mode 'kubernetes', a namespace name")
    services = control.get("services") or {}
    deployments = control.get("deployments") or {}
    selectors = control.get("server_selectors") or {}
    if not all(isinstance(m, dict) for m in (services, deployments, selectors)):
        return problems + ["services, deployments and server_selectors map server names to names / label maps"]
    if not services and not deployments:
        problems.append("mode 'kubernetes' needs 'services' (server name -> client Service) and/or 'deployments' "
                        "(server name -> application Deployment)")
    for key, mapping in (("services", services), ("deployments", deployments), ("server_selectors", selectors)):
        problems += [f"{key}: {name!r} is not a server of this run ({servers})" for name in mapping if name not in servers]
    problems += [f"services.{n}: {v!r} is not a Service name" for n, v in services.items() if not is_dns_label(v)]
    problems += [f"deployments.{n}: {v!r} is not a Deployment name" for n, v in deployments.items()
                 if not is_dns_subdomain(v)]
    for name, selector in selectors.items():
        if not isinstance(selector, dict) or not selector or not all(
                isinstance(k, str) and isinstance(v, str) and _LABEL_KEY.fullmatch(k) and _LABEL_VALUE.fullmatch(v)
                for k, v in selector.items()):
            problems.append(f"server_selectors.{name}: must be a non-empty map of label keys to label values")
    if service_mode == "rolling" and services:
        # rolling moves traffic onto either server: each needs pods a Service can select
        problems += [f"server_selectors.{name}: needed to move traffic onto {name} (it has no Service of its own "
                     f"to take the pod selector from)" for name in servers
                     if name not in selectors and name not in services]
    timeout = control.get("endpoint_timeout_seconds", 60)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 3600:
        problems.append(f"endpoint_timeout_seconds: seconds between 1 and 3600, got {timeout!r}")
    return problems
