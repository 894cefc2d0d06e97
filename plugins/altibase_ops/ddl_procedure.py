"""DDL on replicated tables: the vendor's procedure (procedures.md §1-3) as data.

One model, many views: the DAG's task graph, the dry-run plan, the README's step table and the tests
are all derived from ``procedure(topology, service_mode)`` — a list of *stages*; the steps of one
stage run in parallel (one per server), each stage after the whole previous one.

Step ids are the manual's (O1…O9, R1a…R13); rolling turns prefix them with the turn (``t1_``, ``t2_``).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from altibase_ops.ddl_statements import DdlStatement, InvalidDdlError, parse_ddl
from altibase_ops.identifiers import InvalidIdentifierError, identifier, qualified_table, render_sql
from altibase_ops.isql import StepKind

TOPOLOGIES = {"active_standby": ("active", "standby"), "active_active": ("active1", "active2")}
SERVICE_MODES = ("can_stop", "rolling")
SERVICE_CONTROL_MODES = ("manual", "kubernetes", "simulator")
RUNNERS = ("local", "kubernetes")
_CONN_ID = re.compile(r"[A-Za-z0-9_.-]{1,250}")
_SERVER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


class InvalidRequestError(ValueError):
    """A parameter the DAG refuses, with the parameter's name in the message."""


# ------------------------------------------------------------------------------------------ request
@dataclass
class Server:
    name: str
    conn_id: str
    role: str


@dataclass
class DdlRequest:
    """The validated parameters of one run (JSON-able: it travels through XCom)."""
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
    dry_run: bool
    recover: bool = False

    @property
    def variant(self) -> str:
        return f"{self.service_mode}_{self.topology}"

    def server(self, role: str) -> Server:
        return next(s for s in self.servers if s.role == role)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ddl"] = [d.as_dict() for d in self.ddl]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DdlRequest:
        data = dict(data)
        data["servers"] = [Server(**s) for s in data["servers"]]
        data["ddl"] = [DdlStatement.from_dict(d) for d in data["ddl"]]
        return cls(**data)


def _positive_int(params: dict, name: str, default: int, maximum: int) -> int:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise InvalidRequestError(f"{name}: must be a whole number from 1 to {maximum}, got {value!r}")
    return value


def validate_request(params: dict[str, Any]) -> DdlRequest:
    """Check every parameter before anything touches a server; the message names the parameter."""
    topology = params.get("topology")
    if topology not in TOPOLOGIES:
        raise InvalidRequestError(f"topology: must be one of {sorted(TOPOLOGIES)}, got {topology!r}")
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
        if not isinstance(name, str) or not _SERVER_NAME.fullmatch(name):
            raise InvalidRequestError(f"servers[{i}].name: {name!r} is not a server name (letters, digits, _ . -)")
        if not isinstance(conn_id, str) or not _CONN_ID.fullmatch(conn_id):
            raise InvalidRequestError(f"servers[{i}].conn_id: {conn_id!r} is not an Airflow connection id")
        servers.append(Server(name, conn_id, role))
    roles = sorted(s.role for s in servers)
    if roles != sorted(TOPOLOGIES[topology]):
        raise InvalidRequestError(f"servers: roles {roles} do not match topology {topology!r}, which needs "
                                  f"{sorted(TOPOLOGIES[topology])}")
    if len({s.name for s in servers}) != 2 or len({s.conn_id for s in servers}) != 2:
        raise InvalidRequestError("servers: the two servers need different names and different conn_ids")

    try:
        replication_name = identifier(params.get("replication_name"))
    except InvalidIdentifierError as exc:
        raise InvalidRequestError(f"replication_name: {exc}") from None

    raw_tables = params.get("tables")
    if not isinstance(raw_tables, list) or not raw_tables:
        raise InvalidRequestError("tables: give at least one USER.TABLE")
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
    ddl = []
    for i, text in enumerate(raw_ddl):
        try:
            stmt = parse_ddl(text)
        except InvalidDdlError as exc:
            raise InvalidRequestError(f"ddl[{i}]: {exc}") from None
        if stmt.table is not None and stmt.table not in tables:
            raise InvalidRequestError(f"ddl[{i}]: {stmt.table} is not one of the listed tables {tables}")
        ddl.append(stmt)

    control = params.get("service_control") or {}
    if not isinstance(control, dict) or control.get("mode") not in SERVICE_CONTROL_MODES:
        raise InvalidRequestError(f"service_control.mode: must be one of {list(SERVICE_CONTROL_MODES)}")
    if control["mode"] == "kubernetes":
        for key in ("namespace",):
            if not isinstance(control.get(key), str) or not control[key]:
                raise InvalidRequestError(f"service_control.{key}: required for mode 'kubernetes'")
        services = control.get("services") or {}
        deployments = control.get("deployments") or {}
        if not services and not deployments:
            raise InvalidRequestError("service_control: mode 'kubernetes' needs 'services' (server name -> "
                                      "client Service) and/or 'deployments' (server name -> app Deployment)")
    runner = params.get("runner", "local")
    if runner not in RUNNERS:
        raise InvalidRequestError(f"runner: must be one of {list(RUNNERS)}, got {runner!r}")
    dry_run = params.get("dry_run", True)
    if not isinstance(dry_run, bool):
        raise InvalidRequestError(f"dry_run: must be true or false, got {dry_run!r}")
    recover = params.get("recover", False)
    if not isinstance(recover, bool):
        raise InvalidRequestError(f"recover: must be true or false, got {recover!r}")
    return DdlRequest(
        servers=servers, topology=topology, service_mode=service_mode, replication_name=replication_name,
        tables=tables, ddl=ddl, service_control=control, runner=runner,
        gap_timeout_seconds=_positive_int(params, "gap_timeout_seconds", 300, 86400),
        sessions_timeout_seconds=_positive_int(params, "sessions_timeout_seconds", 300, 86400),
        approval_timeout_minutes=_positive_int(params, "approval_timeout_minutes", 60, 10080),
        flush_wait_seconds=_positive_int(params, "flush_wait_seconds", 60, 3600),
        dry_run=dry_run, recover=recover,
    )


# ------------------------------------------------------------------------------------------ steps
@dataclass(frozen=True)
class Step:
    """One step of the procedure on one server (by role)."""
    step_id: str  # O4, R3, t1_R3, ...
    name: str  # drop_table ... (task id part)
    title: str
    action: str  # isql | ddl | gap | sessions | sql_apply | service | verify
    role: str
    template: str | None = None  # include/sql/ddl/<verb>_<object>.sql
    step_kind: str | None = None
    service: str | None = None  # stop | resume | move_to_peer | restore
    in_admin_window: bool = False

    @property
    def task_id(self) -> str:
        return f"{self.step_id}_{self.name}_on_{self.role}"


def _isql(step_id: str, name: str, title: str, role: str, template: str, kind: StepKind, **kw: Any) -> Step:
    return Step(step_id, name, title, "isql", role, template=template, step_kind=str(kind), **kw)


def _flush(p: str, role: str, **kw: Any) -> Step:
    return _isql(p, "flush_gap", "flush the replication gap", role, "ddl/flush_replication.sql",
                 StepKind.REPLICATION_FLUSH, **kw)


def _gap(p: str, role: str, **kw: Any) -> Step:
    return Step(p, "confirm_gap_zero", "confirm the replication gap is 0", "gap", role, **kw)


def _stop(p: str, role: str, **kw: Any) -> Step:
    return _isql(p, "stop_replication", "stop replication", role, "ddl/stop_replication.sql",
                 StepKind.REPLICATION_STOP, **kw)


def _start(p: str, role: str, **kw: Any) -> Step:
    return _isql(p, "start_replication", "start replication", role, "ddl/start_replication.sql",
                 StepKind.REPLICATION_START, **kw)


def _admin(p: str, role: str, on: bool) -> Step:
    return _isql(p, f"admin_mode_{'on' if on else 'off'}", f"admin mode {'on' if on else 'off'}", role,
                 f"ddl/set_admin_mode_{'on' if on else 'off'}.sql", StepKind.ADMIN_MODE, in_admin_window=True)


def _drop(p: str, role: str) -> Step:
    return _isql(p, "drop_table", "remove the tables from replication", role, "ddl/drop_replication_table.sql",
                 StepKind.REPLICATION_DROP_TABLE, in_admin_window=True)


def _ddl(p: str, role: str) -> Step:
    return Step(p, "run_ddl", "run the DDL", "ddl", role, template="ddl/run_ddl.sql", step_kind=str(StepKind.DDL),
                in_admin_window=True)


def _add(p: str, role: str) -> Step:
    return _isql(p, "add_table", "add the tables back to replication", role, "ddl/add_replication_table.sql",
                 StepKind.REPLICATION_ADD_TABLE, in_admin_window=True)


def _sql_apply(p: str, role: str, on: bool) -> Step:
    return _isql(p, f"sql_apply_{'on' if on else 'off'}", f"SQL apply mode {'on' if on else 'off'}", role,
                 f"ddl/set_sql_apply_{'on' if on else 'off'}.sql", StepKind.SQL_APPLY_MODE)


def _sessions(p: str, role: str, **kw: Any) -> Step:
    return Step(p, "confirm_no_sessions", "confirm no other sessions", "sessions", role, **kw)


def _service(p: str, role: str, service: str, title: str) -> Step:
    return Step(p, f"service_{service}", title, "service", role, service=service)


def _can_stop(roles: tuple[str, ...], senders: tuple[str, ...]) -> list[list[Step]]:
    """O1-O9. ``senders``: the servers that carry service and send (A, or A1 and A2)."""
    window = {"in_admin_window": True}
    return [
        [_service("O1", r, "stop", "stop the application service") for r in senders],
        [_sessions("O1", r) for r in senders],
        [_admin("O2", r, True) for r in senders],
        [_flush("O3a", r, **window) for r in senders],
        [_gap("O3b", r, **window) for r in senders],
        [_stop("O3c", r, **window) for r in senders],
        [_drop("O4", r) for r in roles],
        [_ddl("O5", r) for r in roles],
        [_add("O6", r) for r in roles],
        [_start("O7", r, **window) for r in senders],
        [_admin("O8", r, False) for r in senders],
        # extension: compare row counts while the service is still stopped (exact), before O9
        [Step("O9", "verify_row_counts", "verify row counts are equal before the service resumes", "verify",
              senders[0])],
        [_service("O9", r, "resume", "resume the application service") for r in senders],
    ]


def _turn(t: str, x: str, y: str, x_sends: bool, start: tuple[str, ...], x_has_service: bool) -> list[list[Step]]:
    """R1-R9 for server X while Y carries the service."""
    stages: list[list[Step]] = []
    if x_sends:
        stages += [[_flush(f"{t}R1a", x)], [_gap(f"{t}R1b", x)]]
    if x_has_service:
        stages.append([_service(f"{t}R1c", x, "move_to_peer", "move the service to the other server")])
    stages += [
        [_sessions(f"{t}R1d", x)],
        [_admin(f"{t}R2", x, True)],
        [_stop(f"{t}R3", x, in_admin_window=True), _stop(f"{t}R3", y, in_admin_window=True)],
        [_drop(f"{t}R4", x)],
        [_ddl(f"{t}R5", x)],
        [_add(f"{t}R6", x)],
        [_sql_apply(f"{t}R7", x, True), _sql_apply(f"{t}R7", y, True)],
        [_start(f"{t}R8", r, in_admin_window=True) for r in start],
        [_admin(f"{t}R9", x, False)],
    ]
    return stages


def procedure(topology: str, service_mode: str) -> list[list[Step]]:
    """The stages of one variant."""
    if topology not in TOPOLOGIES or service_mode not in SERVICE_MODES:
        raise InvalidRequestError(f"no procedure for {service_mode!r} / {topology!r}")
    if service_mode == "can_stop":
        roles = TOPOLOGIES[topology]
        return _can_stop(roles, roles if topology == "active_active" else ("active",))
    if topology == "active_active":
        a1, a2 = "active1", "active2"
        return [
            *_turn("t1_", a1, a2, True, (a1, a2), True),
            *_turn("t2_", a2, a1, True, (a2, a1), True),
            [Step("R11", "confirm_sql_apply_zero", "confirm no table is in SQL apply mode", "sql_apply", r)
             for r in (a1, a2)],
            [_sql_apply("R12", r, False) for r in (a1, a2)],
            [_service("R13", a1, "restore", "redistribute the service as it was before")],
        ]
    # Extension (procedures.md §2): Active-Standby when the service cannot stop. The standby goes
    # first (it carries no service and does not send); then the service switches over to it and it
    # sends to the active while the active takes its turn; finally the service returns and the
    # standby stops sending again, as an Active-Standby pair should.
    a, s = "active", "standby"
    return [
        *_turn("t1_", s, a, False, (a,), False),
        [_flush("SW1", a)],
        [_gap("SW1", a)],
        [_service("SW2", a, "move_to_peer", "switch the service over to the standby")],
        [_start("SW3", s)],
        *_turn("t2_", a, s, True, (a, s), False),
        [Step("R11", "confirm_sql_apply_zero", "confirm no table is in SQL apply mode", "sql_apply", r)
         for r in (a, s)],
        [_sql_apply("R12", r, False) for r in (a, s)],
        [_service("R13a", s, "stop", "stop the service on the standby")],
        [_sessions("R13b", s)],
        [_flush("R13c", s)],
        [_gap("R13c", s)],
        [_stop("R13d", s)],
        [_service("R13e", a, "restore", "the service back on the active")],
    ]


VARIANTS = [(t, m) for m in SERVICE_MODES for t in TOPOLOGIES]


def variant_id(topology: str, service_mode: str) -> str:
    return f"{service_mode}_{topology}"


# ------------------------------------------------------------------------------------------ plan
@dataclass
class PlannedStep:
    stage: int
    step_id: str
    task_id: str
    title: str
    server: str
    action: str
    statements: list[str] = field(default_factory=list)


def template_vars(request: DdlRequest) -> dict[str, Any]:
    """What the include/sql/ddl templates see as ``params`` (the same names as the DAG params)."""
    return {"replication_name": request.replication_name, "tables": request.tables,
            "ddl": [d.text for d in request.ddl], "flush_wait_seconds": request.flush_wait_seconds}


def render_step(step: Step, request: DdlRequest) -> list[str]:
    """The statements a step sends (checks are described, not sent)."""
    if step.action in ("isql", "ddl"):
        script = render_sql(step.template, **template_vars(request))
        return [s.strip() + ";" for s in script.split(";") if s.strip()]
    if step.action == "gap":
        return [f"-- wait until V$REPGAP shows {request.replication_name} with REP_GAP = 0 "
                f"(at most {request.gap_timeout_seconds}s)"]
    if step.action == "sessions":
        return [f"-- wait until SELECT COUNT(*) FROM V$SESSION WHERE ID <> SESSION_ID() is 0 "
                f"(at most {request.sessions_timeout_seconds}s)"]
    if step.action == "sql_apply":
        return [f"-- confirm V$REPRECEIVER.SQL_APPLY_TABLE_COUNT = 0 for {request.replication_name}"]
    if step.action == "verify":
        return [f"-- FLUSH WAIT on every running sender, then SELECT COUNT(*) of {', '.join(request.tables)} "
                "on every server: must be equal"]
    return [f"-- service {step.service} ({request.service_control['mode']})"]


def build_plan(request: DdlRequest) -> list[PlannedStep]:
    plan = []
    for number, stage in enumerate(procedure(request.topology, request.service_mode), start=1):
        for step in stage:
            plan.append(PlannedStep(number, step.step_id, f"{request.variant}.{step.task_id}", step.title,
                                    request.server(step.role).name, step.action, render_step(step, request)))
    return plan


def format_plan(request: DdlRequest, plan: list[PlannedStep]) -> str:
    lines = [f"Plan: {request.variant} on replication {request.replication_name}, tables "
             f"{', '.join(request.tables)}", ""]
    for item in plan:
        lines.append(f"[stage {item.stage:>2}] {item.step_id:<8} {item.title} — {item.server} ({item.task_id})")
        lines += [f"              {s}" for s in item.statements]
    return "\n".join(lines)
