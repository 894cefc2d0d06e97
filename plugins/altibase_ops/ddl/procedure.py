"""DDL on replicated tables: the vendor's procedure (docs/procedures.md) as data.

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


Lane = tuple[Step, ...]  # steps on one server, in order


@dataclass(frozen=True)
class Block:
    """One task: steps that follow each other anyway, run by one process.

    Inside admin mode every sequential task level costs one to two seconds of scheduling and task
    start-up, while the steps themselves take a tenth of a second each; so a server's whole admin-mode
    window — from the wait for its last session through admin mode off (and, in can_stop mode, the
    data check) — is one block: one task level (``admin_window_levels``). A block is a sequence of
    *segments*; a segment is one lane of steps, or lanes on different servers that run side by side
    (each server's O4–O6), the next segment after all of them. The waits inside a block are in-process
    polls of seconds, except the waits that open it (the application leaving), which may defer
    (``DdlBlockOperator``). Each step keeps its manual's id: the task id names the range
    (``O1_O9_change_tables_on_both``), the task logs each step as it starts and ends, and the audit
    lists every statement with its step id.
    """
    name: str
    segments: tuple[tuple[Lane, ...], ...]
    on: str | None = None  # the task id's server part when not the first step's role ("both")

    @property
    def steps(self) -> tuple[Step, ...]:
        """Every step, segment by segment, lane by lane (an order the parallel run is equivalent to)."""
        return tuple(step for segment in self.segments for lane in segment for step in lane)

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
        return f"{self.step_range}_{self.name}_on_{self.on or self.role}"

    @property
    def title(self) -> str:
        return "; ".join(f"{s.step_id} {s.title}" for s in self.steps)


def _one(step: Step) -> Block:
    return Block(step.name, (((step,),),))


def _lanes(*lanes: Lane) -> tuple[Lane, ...]:
    return tuple(lane for lane in lanes if lane)


def _can_stop(roles: tuple[str, ...], senders: tuple[str, ...]) -> list[list[Block]]:
    """O1-O9. ``senders``: the servers that carry service and send (A, or A1 and A2). The admin-mode
    window is one block: the senders lock and stop (side by side in Active-Active), then every server
    changes its tables (side by side: a server's O4 needs only its peer's sender stopped), then the
    senders start and unlock, and the data are compared while the service is still stopped."""
    change = Block("change_tables", (
        # the wait for the application to leave opens the block (it may defer: nothing has run yet)
        *(((_sessions("O1", r),),) for r in senders),
        _lanes(*((_admin("O2", r, True), _flush("O3a", r), _gap("O3b", r), _stop("O3c", r)) for r in senders)),
        _lanes(*((_drop("O4", r), _ddl("O5", r), _add("O6", r)) for r in roles)),
        # START reads the peer's items: every server's O6 is done (the segment before)
        _lanes(*((_start("O7", r), _admin("O8", r, False)) for r in senders)),
        # extension: compare the data while the service is still stopped (exact), before O9
        ((Step("O9", "verify_row_counts", "verify the data are equal before the service resumes", "verify",
               senders[0]),),),
    ), on="both")
    return [
        [_one(_service("O1", r, "stop", "stop the application service", **{r: None})) for r in senders],
        [change],
        [_one(_service("O9", r, "resume", "resume the application service", **{r: r})) for r in senders],
    ]


def _turn(t: str, x: str, y: str, x_sends: bool, start: tuple[str, ...], x_has_service: bool) -> list[list[Block]]:
    """R1-R9 for server X while Y carries the service. X's admin-mode window is one block, opened by
    the wait for X's last session: X locks and stops its sender while Y stops its own and takes SQL
    apply mode (its order against X's admin mode does not matter: X has no session since R1d), X
    changes its tables, then the senders start and X unlocks."""
    stages: list[list[Block]] = []
    if x_sends:
        stages += _drain(f"{t}R1a", f"{t}R1b", x)
    if x_has_service:
        # all traffic onto Y, X's own and any Y's Service still sends to X (moved there in a turn before)
        stages.append([_one(_service(f"{t}R1c", x, "move_to_peer", "move the service to the other server",
                                     **{x: y, y: y}))])
    y_start = tuple(_start(f"{t}R8", r) for r in start if r != x)
    x_unlock = (_start(f"{t}R8", x), _admin(f"{t}R9", x, False)) if x in start else (_admin(f"{t}R9", x, False),)
    stages.append([Block("change_tables", (
        ((_sessions(f"{t}R1d", x),),),
        _lanes((_admin(f"{t}R2", x, True), _stop(f"{t}R3", x)), (_stop(f"{t}R3", y), _sql_apply(f"{t}R7", y, True))),
        ((_drop(f"{t}R4", x), _ddl(f"{t}R5", x), _add(f"{t}R6", x), _sql_apply(f"{t}R7", x, True)),),
        _lanes(y_start, x_unlock),
    ))])
    return stages


def _drain(flush_id: str, gap_id: str, role: str) -> list[list[Block]]:
    """FLUSH, then a sensor until the gap is 0: outside any admin-mode window and any outage, and under
    load it may take long (the sensor defers)."""
    return [[_one(_flush(flush_id, role))], [_one(_gap(gap_id, role))]]


def _leave_sql_apply(roles: tuple[str, ...]) -> list[list[Block]]:
    """R11 (a sensor per server: no table left in SQL apply mode), then R12."""
    return [[_one(Step("R11", "confirm_sql_apply_zero", "confirm no table is in SQL apply mode", "sql_apply", r))
             for r in roles],
            [_one(_sql_apply("R12", r, False)) for r in roles]]


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
            *_leave_sql_apply((a1, a2)),
            [_one(_service("R13", a1, "restore", "redistribute the service as it was before", **{a1: a1, a2: a2}))],
        ]
    # Extension (docs/procedures.md): Active-Standby when the service cannot stop. The standby goes
    # first (it carries no service and does not send); then the service switches over to it and it
    # sends to the active while the active takes its turn; finally the service returns and the
    # standby stops sending again, as an Active-Standby pair should.
    a, s = "active", "standby"
    return [
        *_turn("t1_", s, a, False, (a,), False),
        *_drain("SW1", "SW1", a),
        [_one(_service("SW2", a, "move_to_peer", "switch the service over to the standby", **{a: s, s: s}))],
        [_one(_start("SW3", s))],
        *_turn("t2_", a, s, True, (a, s), False),
        *_leave_sql_apply((a, s)),
        # the active's traffic runs on the standby since SW2: stop all of it before the standby's sender stops
        [_one(_service("R13a", s, "stop", "stop the service on the standby", **{a: None, s: None}))],
        [Block("drain_and_stop_replication", (((_sessions("R13b", s), _flush("R13c", s), _gap("R13c", s),
                                                _stop("R13d", s)),),))],
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


def procedure_table_md(topology: str, service_mode: str) -> str:
    """One variant as a Markdown table: task (in the DAG's graph) → the manual's steps it runs, on which
    server. docs/procedures.md holds these tables; a test keeps them equal to the model."""
    group = variant_id(topology, service_mode)
    lines = ["| stage | task | steps (manual id — what, on which server) |", "|---|---|---|"]
    for number, stage in enumerate(procedure(topology, service_mode), start=1):
        for block in stage:
            steps = "<br>".join(f"**{s.step_id}** — {s.title}, on the {s.role}" for s in block.steps)
            lines.append(f"| {number} | `{group}.{block.task_id}` | {steps} |")
    return "\n".join(lines)
