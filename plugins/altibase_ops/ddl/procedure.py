"""DDL on replicated tables: the vendor's procedure (procedures.md §1-3) as data.

One model, many views: the DAG's task graph, the dry-run plan, the README's step table and the tests
are all derived from ``procedure(topology, service_mode)`` — a list of *stages* of *blocks*; a block
is one task (steps on one server, in order), the blocks of a stage run in parallel (one per server),
each stage after the whole previous one.

Step ids are the manual's (O1…O9, R1a…R13); rolling turns prefix them with the turn (``t1_``, ``t2_``).
"""

from __future__ import annotations

from dataclasses import dataclass

from altibase_ops.ddl.request import SERVICE_MODES, TOPOLOGY_ROLES, InvalidRequestError
from altibase_ops.sql.steps import StepKind


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
    # where each role's application traffic goes once this service step is done (the traffic model):
    # (role, the role whose pods its Service selects — itself: as before the run — or None: stopped)
    routes: tuple[tuple[str, str | None], ...] = ()

    @property
    def task_id(self) -> str:
        return f"{self.step_id}_{self.name}_on_{self.role}"


def _isql(step_id: str, name: str, title: str, role: str, template: str, kind: StepKind) -> Step:
    return Step(step_id, name, title, "isql", role, template=template, step_kind=str(kind))


def _flush(p: str, role: str) -> Step:
    return _isql(p, "flush_gap", "flush the replication gap", role, "ddl/flush_replication.sql",
                 StepKind.REPLICATION_FLUSH)


def _gap(p: str, role: str) -> Step:
    return Step(p, "confirm_gap_zero", "confirm the replication gap is 0", "gap", role)


def _stop(p: str, role: str) -> Step:
    return _isql(p, "stop_replication", "stop replication", role, "ddl/stop_replication.sql",
                 StepKind.REPLICATION_STOP)


def _start(p: str, role: str) -> Step:
    return _isql(p, "start_replication", "start replication", role, "ddl/start_replication.sql",
                 StepKind.REPLICATION_START)


def _admin(p: str, role: str, on: bool) -> Step:
    return _isql(p, f"admin_mode_{'on' if on else 'off'}", f"admin mode {'on' if on else 'off'}", role,
                 f"ddl/set_admin_mode_{'on' if on else 'off'}.sql", StepKind.ADMIN_MODE)


def _drop(p: str, role: str) -> Step:
    return _isql(p, "drop_table", "remove the tables from replication", role, "ddl/drop_replication_table.sql",
                 StepKind.REPLICATION_DROP_TABLE)


def _ddl(p: str, role: str) -> Step:
    return Step(p, "run_ddl", "run the DDL", "ddl", role, template="ddl/run_ddl.sql", step_kind=str(StepKind.DDL))


def _add(p: str, role: str) -> Step:
    return _isql(p, "add_table", "add the tables back to replication", role, "ddl/add_replication_table.sql",
                 StepKind.REPLICATION_ADD_TABLE)


def _sql_apply(p: str, role: str, on: bool) -> Step:
    return _isql(p, f"sql_apply_{'on' if on else 'off'}", f"SQL apply mode {'on' if on else 'off'}", role,
                 f"ddl/set_sql_apply_{'on' if on else 'off'}.sql", StepKind.SQL_APPLY_MODE)


def _sessions(p: str, role: str) -> Step:
    return Step(p, "confirm_no_sessions", "confirm no other sessions", "sessions", role)


def _service(p: str, role: str, service: str, title: str, **routes: str | None) -> Step:
    return Step(p, f"service_{service}", title, "service", role, service=service, routes=tuple(routes.items()))


@dataclass(frozen=True)
class Block:
    """One task: steps on one server that follow each other anyway, run in order by one process.

    Inside admin mode every sequential task level costs about a second of task start-up, so the
    steps from admin mode on to admin mode off are grouped into at most three levels per server
    (``admin_window_levels``); the waits inside a block are in-process polls of seconds, except a
    wait that opens a block (the application leaving), which may defer (``DdlBlockOperator``). Each step
    keeps its manual's id: the task id names the range (``O4_O6_change_table_on_standby``), the task
    logs each step as it starts and ends, and the audit lists every statement with its step id.
    """
    name: str
    steps: tuple[Step, ...]

    @property
    def role(self) -> str:
        return self.steps[0].role

    @property
    def action(self) -> str:
        """The step's action for a one-step block (a sensor, a service step), else ``block``."""
        return self.steps[0].action if len(self.steps) == 1 else "block"

    @property
    def step_range(self) -> str:
        first, last = self.steps[0].step_id, self.steps[-1].step_id
        prefix = first.split("_", 1)[0] + "_" if first.startswith("t") and "_" in first else ""
        return first if first == last else f"{first}_{last.removeprefix(prefix)}"

    @property
    def task_id(self) -> str:
        if len(self.steps) == 1:
            return self.steps[0].task_id
        return f"{self.step_range}_{self.name}_on_{self.role}"

    @property
    def title(self) -> str:
        return "; ".join(f"{s.step_id} {s.title}" for s in self.steps)


def _one(step: Step) -> Block:
    return Block(step.name, (step,))


def _can_stop(roles: tuple[str, ...], senders: tuple[str, ...]) -> list[list[Block]]:
    """O1-O9. ``senders``: the servers that carry service and send (A, or A1 and A2). Inside admin
    mode: three levels (lock and stop, change the tables, start and unlock)."""
    return [
        [_one(_service("O1", r, "stop", "stop the application service", **{r: None})) for r in senders],
        # the wait for the application to leave opens the block: admin mode follows in the same process
        [Block("lock_and_stop_replication", (_sessions("O1", r), _admin("O2", r, True), _flush("O3a", r),
                                             _gap("O3b", r), _stop("O3c", r))) for r in senders],
        [Block("change_table", (_drop("O4", r), _ddl("O5", r), _add("O6", r))) for r in roles],
        [Block("start_and_unlock", (_start("O7", r), _admin("O8", r, False))) for r in senders],
        # extension: compare the data while the service is still stopped (exact), before O9
        [_one(Step("O9", "verify_row_counts", "verify the data are equal before the service resumes", "verify",
                   senders[0]))],
        [_one(_service("O9", r, "resume", "resume the application service", **{r: r})) for r in senders],
    ]


def _turn(t: str, x: str, y: str, x_sends: bool, start: tuple[str, ...], x_has_service: bool) -> list[list[Block]]:
    """R1-R9 for server X while Y carries the service. Inside X's admin mode: three levels (lock and
    stop, change the tables, start and unlock); Y stops its sender and takes SQL apply mode beside
    the first (its order against X's admin mode does not matter: X has no session since R1d)."""
    stages: list[list[Block]] = []
    if x_sends:
        stages.append([Block("drain_gap", (_flush(f"{t}R1a", x), _gap(f"{t}R1b", x)))])
    if x_has_service:
        # all traffic onto Y, X's own and any Y's Service still sends to X (moved there in a turn before)
        stages.append([_one(_service(f"{t}R1c", x, "move_to_peer", "move the service to the other server",
                                     **{x: y, y: y}))])
    unlock = (_start(f"{t}R8", x), _admin(f"{t}R9", x, False)) if x in start else (_admin(f"{t}R9", x, False),)
    stages += [
        [_one(_sessions(f"{t}R1d", x))],
        # (Y's sender stops only once X has no session: the wait stays a stage of its own here)
        [Block("lock_and_stop_replication", (_admin(f"{t}R2", x, True), _stop(f"{t}R3", x))),
         Block("stop_replication_and_sql_apply", (_stop(f"{t}R3", y), _sql_apply(f"{t}R7", y, True)))],
        [Block("change_table", (_drop(f"{t}R4", x), _ddl(f"{t}R5", x), _add(f"{t}R6", x),
                                _sql_apply(f"{t}R7", x, True)))],
        [Block("start_and_unlock" if x in start else "unlock", unlock),
         *[_one(_start(f"{t}R8", r)) for r in start if r != x]],
    ]
    return stages


def _leave_sql_apply(role: str) -> Block:
    return Block("leave_sql_apply", (
        Step("R11", "confirm_sql_apply_zero", "confirm no table is in SQL apply mode", "sql_apply", role),
        _sql_apply("R12", role, False)))


def procedure(topology: str, service_mode: str) -> list[list[Block]]:
    """The stages of one variant: the blocks of a stage run in parallel (one per server), each stage
    after the whole previous one."""
    if topology not in TOPOLOGY_ROLES or service_mode not in SERVICE_MODES:
        raise InvalidRequestError(f"no procedure for {service_mode!r} / {topology!r}")
    if service_mode == "can_stop":
        roles = TOPOLOGY_ROLES[topology]
        return _can_stop(roles, roles if topology == "active_active" else ("active",))
    if topology == "active_active":
        a1, a2 = "active1", "active2"
        return [
            *_turn("t1_", a1, a2, True, (a1, a2), True),
            *_turn("t2_", a2, a1, True, (a2, a1), True),
            [_leave_sql_apply(r) for r in (a1, a2)],
            [_one(_service("R13", a1, "restore", "redistribute the service as it was before", **{a1: a1, a2: a2}))],
        ]
    # Extension (procedures.md §2): Active-Standby when the service cannot stop. The standby goes
    # first (it carries no service and does not send); then the service switches over to it and it
    # sends to the active while the active takes its turn; finally the service returns and the
    # standby stops sending again, as an Active-Standby pair should.
    a, s = "active", "standby"
    return [
        *_turn("t1_", s, a, False, (a,), False),
        [Block("drain_gap", (_flush("SW1", a), _gap("SW1", a)))],
        [_one(_service("SW2", a, "move_to_peer", "switch the service over to the standby", **{a: s, s: s}))],
        [_one(_start("SW3", s))],
        *_turn("t2_", a, s, True, (a, s), False),
        [_leave_sql_apply(r) for r in (a, s)],
        # the active's traffic runs on the standby since SW2: stop all of it before the standby's sender stops
        [_one(_service("R13a", s, "stop", "stop the service on the standby", **{a: None, s: None}))],
        [Block("drain_and_stop_replication", (_sessions("R13b", s), _flush("R13c", s), _gap("R13c", s),
                                              _stop("R13d", s)))],
        [_one(_service("R13e", a, "restore", "the service back on the active", **{a: a, s: s}))],
    ]


def steps_in_order(topology: str, service_mode: str) -> list[Step]:
    """Every step of a variant, stage by stage (the blocks of a stage one after the other)."""
    return [step for stage in procedure(topology, service_mode) for block in stage for step in block.steps]


def admin_window_levels(topology: str, service_mode: str) -> int:
    """The most sequential task levels from a server's admin mode on to its admin mode off (both
    included), over the servers and turns of a variant."""
    most = 0
    opened: dict[str, int] = {}
    for level, stage in enumerate(procedure(topology, service_mode)):
        for block in stage:
            for step in block.steps:
                if step.step_kind == str(StepKind.ADMIN_MODE) and step.name.endswith("_on"):
                    opened[step.role] = level
                elif step.step_kind == str(StepKind.ADMIN_MODE) and step.role in opened:
                    most = max(most, level - opened.pop(step.role) + 1)
    return most


VARIANTS = [(t, m) for m in SERVICE_MODES for t in TOPOLOGY_ROLES]


def variant_id(topology: str, service_mode: str) -> str:
    return f"{service_mode}_{topology}"
