"""The tasks of ``altibase_replicated_ddl``: preflight, the procedure's steps, post-checks, restore.

The DAG file only wires these. Every step reads the state first and acts only if needed, so a run
cleared after a failure (or a new run with the same parameters) finishes the job.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import closing
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseBranchOperator, BaseOperator, Context, TaskGroup
from airflow.sdk.exceptions import AirflowException

from altibase_ops.ddl_procedure import VARIANTS, DdlRequest, Step, procedure, variant_id
from altibase_ops.ddl_statements import DdlStatement, is_applied
from altibase_ops.hooks import AltibaseHook, AltibaseServerError, error_code
from altibase_ops.identifiers import render_sql
from altibase_ops.isql import StatementResult, parse_output
from altibase_ops.operators import IsqlOperator
from altibase_ops.sensors import ReplicationGapSensor, SessionCountSensor, SqlApplySensor
from altibase_ops.server_state import ServerState, read_state
from altibase_ops.service_control import ServiceControlOperator, perform

DEFAULT_PROPERTIES = {"REPLICATION_DDL_ENABLE": 0, "REPLICATION_DDL_ENABLE_LEVEL": 0, "REPLICATION_DDL_SYNC": 0,
                      "REPLICATION_SQL_APPLY_ENABLE": 0}
CLIENT_INFO = "airflow:altibase_replicated_ddl"


class PreflightError(AirflowException):
    """The servers are not in a state the procedure can start from; nothing was changed."""


class UnsafeToRestoreError(AirflowException):
    """Restoring further would mean guessing; the message says what each server is in and what to do."""


def conn_for_role(servers: list[dict[str, str]], role: str) -> str:
    """Jinja filter: the conn_id of the server with ``role`` (servers as given in the params)."""
    for server in servers:
        if server.get("role") == role:
            return server["conn_id"]
    raise AirflowException(f"no server with role {role!r} in {servers!r}")


def request_from(context: Context) -> DdlRequest:
    return DdlRequest.from_dict(context["ti"].xcom_pull(task_ids="validate_params"))


def read_all(request: DdlRequest, count_rows: bool = False) -> dict[str, ServerState]:
    return {s.name: read_state(s.conn_id, request.replication_name, request.tables, count_rows=count_rows,
                               client_info=CLIENT_INFO) for s in request.servers}


# ------------------------------------------------------------------------------------------ DDL state
def ddl_progress(request: DdlRequest, states: dict[str, ServerState]) -> dict[str, str]:
    """Per server: 'before' (no statement applied), 'after' (all applied) or 'partial'."""
    progress = {}
    for name, state in states.items():
        flags = []
        for stmt in resolve_tables(request.ddl, state):
            table = state.tables.get(stmt.table)
            if table is None:
                raise PreflightError(f"{name}: table {stmt.table} does not exist")
            applied = is_applied(stmt, table)
            if applied is not None:
                flags.append(applied)
        progress[name] = "after" if flags and all(flags) else ("before" if not any(flags) else "partial")
    return progress


def resolve_tables(ddl: list[DdlStatement], state: ServerState) -> list[DdlStatement]:
    """DROP INDEX names no table: take it from the server's dictionary."""
    resolved = []
    for stmt in ddl:
        if stmt.table is None:
            table = state.index_tables.get(stmt.index or "")
            stmt = stmt.with_table(table) if table else stmt
        resolved.append(stmt)
    return resolved


def preflight(request: DdlRequest, log: Any) -> dict[str, Any]:
    """Read-only gates before anything changes (issue §2). Raises PreflightError naming every problem."""
    problems: list[str] = []
    notes: list[str] = []
    try:
        states = read_all(request)
    except AirflowException as exc:
        raise PreflightError(f"a server is not reachable: {exc}") from None
    senders_needed = {s.name for s in request.servers if request.topology == "active_active" or s.role == "active"}
    for server in request.servers:
        state = states[server.name]
        if not state.replication_exists:
            problems.append(f"{server.name}: replication {request.replication_name} does not exist")
            continue
        missing = [t for t in request.tables if t not in state.items]
        if missing:
            # what an interrupted run leaves (after O4/R4): the procedure removes them anyway and adds
            # them back at O6/R6 (ALTER … DROP TABLE on a table already out is "already done")
            notes.append(f"{server.name}: {', '.join(missing)} already out of replication {request.replication_name}"
                         " (resuming an interrupted run)")
        if len(state.items - set(request.tables)) < 1:
            problems.append(
                f"{server.name}: replication {request.replication_name} would lose its last table at the "
                f"'remove from replication' step (Altibase refuses: ERR-6106F). Add another table to the "
                f"replication first, or drop and re-create the replication object around the DDL")
        if state.properties.get("ADMIN_MODE"):
            problems.append(f"{server.name}: ADMIN_MODE is 1; it must be 0 before the procedure starts. If a "
                            "failed run of this DAG left it so, trigger again with recover=true (the restore "
                            "path runs first); if someone else is working on this server, wait for them")
        for prop, default in DEFAULT_PROPERTIES.items():
            if prop == "REPLICATION_SQL_APPLY_ENABLE" and request.service_mode == "rolling":
                continue  # judged below, once we know whether this resumes an interrupted rolling run
            if state.properties.get(prop) != default:
                problems.append(f"{server.name}: {prop} is {state.properties.get(prop)}, not its default {default}"
                                " (the procedure assumes every replication property at its default)")
        if server.name in senders_needed and not state.sender_running:
            problems.append(f"{server.name} ({server.role}): the sender of {request.replication_name} is not "
                            "running; start it and let the gap drain before the procedure (or trigger with "
                            "recover=true if a failed run of this DAG stopped it)")
        if server.name not in senders_needed and state.sender_running and request.service_mode == "rolling":
            notes.append(f"{server.name} ({server.role}): the standby is sending (a switchover left it so); the "
                         "rolling turns stop both senders before changing a table, and R13 stops it again")
        elif server.name not in senders_needed and state.sender_running:
            problems.append(
                f"{server.name} ({server.role}): the standby is sending. In Active-Standby the procedure stops "
                "replication only on the active and relies on the standby not sending (ADD/DROP TABLE would "
                "fail with ERR-6109F). Stop the standby's sender first")
        for stmt in request.ddl:
            if stmt.kind == "drop_index":
                table = state.index_tables.get(stmt.index or "")
                if table is None:
                    notes.append(f"{server.name}: index {stmt.index} does not exist (already dropped?)")
                elif table not in request.tables:
                    problems.append(f"{server.name}: index {stmt.index} belongs to {table}, not a listed table")
        for table in request.tables:
            if table not in state.tables:
                problems.append(f"{server.name}: table {table} does not exist")
    if not problems:
        progress = ddl_progress(request, states)
        signatures = {}
        for table in request.tables:
            by_progress: dict[str, set] = {}
            for name, state in states.items():
                by_progress.setdefault(progress[name], set()).add(repr(state.tables[table].signature()))
            if "partial" in by_progress:
                problems.append(f"{table}: the DDL is partially applied on "
                                f"{[n for n, p in progress.items() if p == 'partial']}; finish or undo it by hand")
            elif any(len(sigs) > 1 for sigs in by_progress.values()):
                problems.append(f"{table}: its definition differs between the servers: "
                                + "; ".join(f"{n}: {states[n].tables[table].signature()}" for n in states))
            signatures[table] = {n: states[n].tables[table].signature() for n in states}
        resuming = len(set(progress.values())) > 1
        if resuming:
            notes.append("resuming: the DDL is already applied on "
                         f"{[n for n, p in progress.items() if p == 'after']}; those servers skip it")
        if request.service_mode == "rolling":
            for name, state in states.items():
                if state.properties.get("REPLICATION_SQL_APPLY_ENABLE"):
                    if resuming:  # an interrupted rolling run: SQL apply carries the different definitions
                        notes.append(f"{name}: SQL apply mode is on (left by the interrupted run)")
                    else:
                        problems.append(f"{name}: REPLICATION_SQL_APPLY_ENABLE is 1, not its default 0 (the "
                                        "procedure assumes every replication property at its default)")
    for note in notes:
        log.info("preflight note: %s", note)
    if problems:
        raise PreflightError("preflight found problems, nothing was changed:\n- " + "\n- ".join(problems))
    report = {name: state.summary() for name, state in states.items()}
    log.info("preflight passed: %s", report)
    return {"servers": report, "notes": notes}


# ------------------------------------------------------------------------------------------ steps
class AuditedIsqlOperator(IsqlOperator):
    """IsqlOperator that leaves an audit record (XCom ``audit``): server, statements, when, how long,
    each statement's result — whether the step succeeds or fails."""

    template_fields: Sequence[str] = (*IsqlOperator.template_fields, "runner")

    def __init__(self, *, step_id: str, server_role: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.step_id = step_id
        self.server_role = server_role
        self._results: list[StatementResult] = []

    def _judge(self, output: str, exit_status: int) -> list[dict[str, Any]] | None:
        self._results = parse_output(output)
        return super()._judge(output, exit_status)

    def execute(self, context: Context) -> Any:
        started = time.time()
        outcome = "failed"
        try:
            value = self.run_step(context)
            outcome = "success"
            return value
        finally:
            context["ti"].xcom_push(key="audit", value={
                "step_id": self.step_id, "task_id": self.task_id, "server_role": self.server_role,
                "conn_id": self.altibase_conn_id, "started": started, "seconds": round(time.time() - started, 3),
                "outcome": outcome,
                "statements": [{"statement": r.statement, "result": r.summary, "code": r.code,
                                "already_done": r.accepted} for r in self._results]})

    def run_step(self, context: Context) -> Any:
        return super().execute(context)


def ddl_to_run(request: DdlRequest, conn_id: str, log: Any) -> list[str]:
    """The DDL statements this server does not show as applied yet (read first: a re-run skips the rest)."""
    state = read_state(conn_id, request.replication_name, request.tables, client_info=CLIENT_INFO)
    todo = []
    for stmt in resolve_tables(request.ddl, state):
        table = state.tables.get(stmt.table) if stmt.table else None
        if table is not None and is_applied(stmt, table):
            log.info("already applied on %s, skipped: %s", conn_id, stmt.text)
        else:
            todo.append(stmt.text)
    return todo


class DdlStepOperator(AuditedIsqlOperator):
    """O5/R5: run the user's DDL, skipping statements this server already shows as applied."""

    def run_step(self, context: Context) -> Any:
        todo = ddl_to_run(request_from(context), self.altibase_conn_id, self.log)
        if not todo:
            self.log.info("every DDL statement is already applied on %s", self.altibase_conn_id)
            return None
        self.sql = render_sql("ddl/run_ddl.sql", ddl=todo)
        return super().run_step(context)


class _TimedFromParams:
    """Sensors whose timeout comes from a DAG param (read at run time, not parse time)."""

    timeout_param = ""

    def execute(self, context: Context) -> Any:
        self.timeout = float(context["params"][self.timeout_param])
        self.poke_interval = float(context["params"].get("poke_interval_seconds", self.poke_interval))
        return super().execute(context)  # type: ignore[misc]


class StepGapSensor(_TimedFromParams, ReplicationGapSensor):
    timeout_param = "gap_timeout_seconds"


class StepSessionSensor(_TimedFromParams, SessionCountSensor):
    timeout_param = "sessions_timeout_seconds"


class StepSqlApplySensor(_TimedFromParams, SqlApplySensor):
    timeout_param = "gap_timeout_seconds"


def _conn(role: str) -> str:
    return "{{ params.servers | conn_for_role('" + role + "') }}"


def build_step(step: Step, service_history: list[str]) -> Any:
    common = {"task_id": step.task_id, "doc_md": f"**{step.step_id}** — {step.title} (on the {step.role} server)"}
    if step.action in ("isql", "ddl"):
        cls = DdlStepOperator if step.action == "ddl" else AuditedIsqlOperator
        return cls(altibase_conn_id=_conn(step.role), sql=step.template, step_kind=step.step_kind,
                   runner="{{ params.runner }}", step_id=step.step_id, server_role=step.role, **common)
    if step.action == "gap":
        return StepGapSensor(altibase_conn_id=_conn(step.role), replication_name="{{ params.replication_name }}",
                             **common)
    if step.action == "sessions":
        return StepSessionSensor(altibase_conn_id=_conn(step.role), max_sessions=0, **common)
    if step.action == "sql_apply":
        return StepSqlApplySensor(altibase_conn_id=_conn(step.role), replication_name="{{ params.replication_name }}",
                                  **common)
    if step.action == "verify":
        return RowCountCheckOperator(**common)
    return ServiceControlOperator(action=step.service, server_role=step.role, step_id=step.step_id,
                                  history_task_ids=list(service_history),
                                  approval_timeout=timedelta(hours=1), **common)


def build_variant(topology: str, service_mode: str) -> tuple[TaskGroup, list[Any], list[Any]]:
    """The variant's TaskGroup: stage after stage, the steps of a stage in parallel.
    Returns (group, first-stage tasks, last-stage tasks)."""
    variant = variant_id(topology, service_mode)
    with TaskGroup(group_id=variant, tooltip=f"DDL, {service_mode.replace('_', ' ')}, "
                                             f"{topology.replace('_', '-')}") as group:
        previous: list[Any] = []
        first: list[Any] = []
        service_history: list[str] = []
        for stage in procedure(topology, service_mode):
            tasks = []
            for step in stage:
                tasks.append(build_step(step, service_history))
            for step in stage:
                if step.action == "service":
                    service_history.append(f"{variant}.{step.task_id}")
            for upstream in previous:
                upstream >> tasks
            previous = tasks
            first = first or tasks
    return group, first, previous


def service_task_ids(request: DdlRequest) -> list[str]:
    return [f"{request.variant}.{s.task_id}" for stage in procedure(request.topology, request.service_mode)
            for s in stage if s.action == "service"]


def step_task_ids(request: DdlRequest) -> list[str]:
    return [f"{request.variant}.{s.task_id}" for stage in procedure(request.topology, request.service_mode)
            for s in stage]


class VariantBranchOperator(BaseBranchOperator):
    """Branch on topology and service mode; skips every task of the other variants at once.

    Airflow's own branch skips only the branch's direct downstream and lets the skip travel one
    stage per scheduler loop; with variants of up to 30 stages that would keep the post-checks
    waiting half a minute for nothing.
    """

    def choose_branch(self, context: Context) -> list[str]:
        request = request_from(context)
        # the mark that the procedure began (restore looks for it): pushed before the skip ends this task
        context["ti"].xcom_push(key="variant", value=request.variant)
        return [f"{request.variant}.{s.task_id}" for s in procedure(request.topology, request.service_mode)[0]]

    def skip_all_except(self, ti: Any, branch_task_ids: Any) -> None:
        chosen = {task_id.split(".", 1)[0] for task_id in branch_task_ids}
        others = {variant_id(t, m) for t, m in VARIANTS} - chosen
        self.log.info("following %s; skipping the variants %s", sorted(chosen), sorted(others))
        self.skip(ti, [task for task in self.dag.tasks if task.task_id.split(".", 1)[0] in others])


def wait_for_steps_to_settle(context: Context, request: DdlRequest, log: Any, timeout: float = 600) -> None:
    """Before restoring: let steps still running on other servers finish (they hold SYSDBA sessions)."""
    ti = context["ti"]
    active = {"running", "queued", "scheduled", "deferred", "up_for_retry", "up_for_reschedule", "restarting"}
    deadline = time.monotonic() + timeout
    while True:
        states = ti.get_task_states(dag_id=ti.dag_id, task_group_id=request.variant, run_ids=[ti.run_id])
        busy = sorted(t for t, state in (states.get(ti.run_id) or {}).items() if state in active)
        if not busy:
            return
        if time.monotonic() > deadline:
            raise AirflowException(f"steps still running after {timeout}s: {busy}; restore does not run beside them")
        log.info("restore waits for steps still running: %s", busy)
        time.sleep(1)


# ------------------------------------------------------------------------------------------ checks
def _flush_senders(request: DdlRequest, states: dict[str, ServerState]) -> None:
    for server in request.servers:
        if states[server.name].sender_running:
            _exec(server.conn_id, render_sql("ddl/flush_replication.sql", replication_name=request.replication_name,
                                             flush_wait_seconds=request.flush_wait_seconds))


def post_checks(request: DdlRequest, log: Any, attempts: int = 20) -> dict[str, Any]:
    """After the procedure (issue §6): same definitions with the DDL applied everywhere, replication
    running with gap 0, admin mode 0, SQL apply count and property 0, equal row counts."""
    problems: list[str] = []
    states = read_all(request)
    progress = ddl_progress(request, states)
    for name, p in progress.items():
        if p != "after":
            problems.append(f"{name}: the DDL is not applied ({p})")
    for table in request.tables:
        if len({repr(s.tables[table].signature()) for s in states.values()}) > 1:
            problems.append(f"{table}: definitions differ between servers")
    for server in request.servers:
        state = states[server.name]
        needs_sender = request.topology == "active_active" or server.role == "active"
        if needs_sender and not state.sender_running:
            problems.append(f"{server.name}: replication {request.replication_name} is not running")
        if state.properties.get("ADMIN_MODE"):
            problems.append(f"{server.name}: ADMIN_MODE is still 1")
        if state.properties.get("REPLICATION_SQL_APPLY_ENABLE"):
            problems.append(f"{server.name}: REPLICATION_SQL_APPLY_ENABLE is still 1")
        if state.sql_apply_table_count:
            problems.append(f"{server.name}: {state.sql_apply_table_count} table(s) still in SQL apply mode")
        missing = [t for t in request.tables if t not in state.items]
        if missing:
            problems.append(f"{server.name}: {missing} not back in replication {request.replication_name}")
    counts: dict[str, dict[str, int]] = {}
    verdict = "not compared"
    if not problems:
        counts, equal = compare_row_counts(request, attempts)
        if equal:
            verdict = "equal"
        else:
            # The service is live again (and never stopped in rolling mode), so two servers are never
            # counted at the same instant. The exact comparison is the can_stop variants' O9 verify step
            # (service still stopped); here the counts are reported, and a real divergence shows as a
            # gap that does not drain (FLUSH WAIT fails above).
            verdict = "inconclusive under live load"
            log.warning("row counts never matched in %s snapshots while the service ran: %s", attempts, counts)
    if problems:
        raise AirflowException("post-checks failed:\n- " + "\n- ".join(problems))
    log.info("post-checks passed: row counts %s (%s)", counts, verdict)
    return {"row_counts": counts, "row_count_verdict": verdict, "servers": {n: s.summary() for n, s in states.items()}}


def compare_row_counts(request: DdlRequest, attempts: int = 20) -> tuple[dict[str, dict[str, int]], bool]:
    """FLUSH WAIT every running sender (its success is the evidence of gap 0: it fails with ERR-61075
    when the gap does not drain), then count each table on every server; repeat until equal (bounded)."""
    counts: dict[str, dict[str, int]] = {}
    states = read_all(request)
    for _attempt in range(attempts):
        _flush_senders(request, states)
        states = read_all(request, count_rows=True)
        counts = {t: {n: s.row_counts[t] for n, s in states.items()} for t in request.tables}
        if all(len(set(c.values())) == 1 for c in counts.values()):
            return counts, True
        time.sleep(0.2)
    return counts, False


class RowCountCheckOperator(BaseOperator):
    """O9 (verify): with the service still stopped, the tables' row counts must be equal everywhere."""

    def execute(self, context: Context) -> dict[str, Any]:
        request = request_from(context)
        counts, equal = compare_row_counts(request, attempts=10)
        if not equal:
            raise AirflowException(f"row counts differ between servers with the service stopped: {counts}; "
                                   "the service stays stopped")
        self.log.info("row counts equal on every server: %s", counts)
        return counts


# ------------------------------------------------------------------------------------------ restore
def _exec(conn_id: str, sql: str, accept: tuple[str, ...] = ()) -> str:
    """Run one statement on a short SYSDBA session; an error whose code is in ``accept`` means done."""
    hook = AltibaseHook(altibase_conn_id=conn_id, sysdba=True, client_info=CLIENT_INFO)
    with closing(hook.get_conn()) as conn:
        try:
            conn.cursor().execute(sql.strip().rstrip(";"))
        except Exception as exc:
            code, message = error_code(exc)
            if message is None:
                raise
            if code in accept:
                return f"already done (ERR-{code})"
            raise AltibaseServerError(conn_id, code, message, action=f"run {sql.strip()!r}") from None
    return "ok"


def restore(request: DdlRequest, service_history: list[dict[str, Any]], log: Any,
            resumable_ok: bool = False) -> dict[str, Any]:
    """Put every server back to a safe state (issue §7); never guess.

    Admin mode goes back to 0. Tables out of replication go back in where their definitions agree —
    and, in rolling mode, also where they differ, because there the procedure's own answer to different
    definitions is SQL apply mode (R7), which restore then switches on so replication can run (in
    can_stop mode it never does). Replication restarts where the handshake succeeds; the service
    comes back only when the pair replicates every listed table. Otherwise: UnsafeToRestoreError with
    the state of each server and what an operator must do.
    """
    rep = request.replication_name
    rolling = request.service_mode == "rolling"
    actions: list[str] = []
    notes: list[str] = []
    states = read_all(request)
    needs_sender = {s.name for s in request.servers if request.topology == "active_active" or s.role == "active"}
    for server in request.servers:
        if states[server.name].properties.get("ADMIN_MODE"):
            _exec(server.conn_id, "ALTER SYSTEM SET ADMIN_MODE = 0")
            actions.append(f"{server.name}: ADMIN_MODE = 0")
    states = read_all(request)
    differs = {t: not (all(t in s.tables for s in states.values())
                       and len({repr(s.tables[t].signature()) for s in states.values()}) == 1) for t in request.tables}
    missing = {n: [t for t in request.tables if t not in s.items and (rolling or not differs[t])]
               for n, s in states.items()}
    if any(missing.values()):
        # ADD TABLE needs replication stopped here and the peer not sending: stop both, add, restart below
        for server in request.servers:
            if states[server.name].sender_running:
                _exec(server.conn_id, render_sql("ddl/stop_replication.sql", replication_name=rep), ("61027",))
                actions.append(f"{server.name}: replication stopped to re-add tables")
        for server in request.servers:
            if missing[server.name]:
                sql = render_sql("ddl/add_replication_table.sql", replication_name=rep, tables=missing[server.name])
                for statement in filter(None, (s.strip() for s in sql.split(";"))):
                    _exec(server.conn_id, statement, ("3129B",))
                actions.append(f"{server.name}: {missing[server.name]} added back to replication {rep}")
        states = read_all(request)
    if rolling and any(differs.values()):
        for server in request.servers:
            if not states[server.name].properties.get("REPLICATION_SQL_APPLY_ENABLE"):
                _exec(server.conn_id, render_sql("ddl/set_sql_apply_on.sql"))
                actions.append(f"{server.name}: REPLICATION_SQL_APPLY_ENABLE = 1 (R7: definitions differ)")
        notes.append("definitions still differ between the servers; replication runs in SQL apply mode until a "
                     "run with recover=true finishes the procedure")
    start_failures = []
    for server in request.servers:
        wanted = server.name in needs_sender or states[server.name].is_started
        if wanted and not states[server.name].sender_running:
            try:
                _exec(server.conn_id, render_sql("ddl/start_replication.sql", replication_name=rep), ("6100A",))
                actions.append(f"{server.name}: replication {rep} started")
            except AirflowException as exc:
                start_failures.append(f"{server.name}: START failed: {exc}")
    states = read_all(request)
    if rolling and not any(differs.values()) and not start_failures:
        for server in request.servers:  # the turns are done: R11/R12
            state = states[server.name]
            if state.properties.get("REPLICATION_SQL_APPLY_ENABLE") and not state.sql_apply_table_count:
                _exec(server.conn_id, render_sql("ddl/set_sql_apply_off.sql"))
                actions.append(f"{server.name}: REPLICATION_SQL_APPLY_ENABLE = 0 (R12: definitions agree)")
        states = read_all(request)
    unsafe = list(start_failures)
    for table, differ in differs.items():
        if differ and not rolling:
            unsafe.append(f"{table}: definitions differ between servers and SQL apply is off ("
                          + "; ".join(f"{n} {'has the DDL' if ddl_progress(request, {n: s})[n] == 'after' else 'does not'}"
                                      for n, s in states.items()) + ")")
    for name, state in states.items():
        out = [t for t in request.tables if t not in state.items]
        if out:
            unsafe.append(f"{name}: {out} not in replication {rep}")
    if not unsafe and service_history:
        for record in perform("restore", request.service_control, "", "", service_history):
            actions.append(f"service on {record['server']}: back to {record['state']}")
    report = {"actions": actions, "notes": notes, "unsafe": unsafe,
              "servers": {n: s.summary() for n, s in states.items()}}
    for line in actions + notes:
        log.info("restore: %s", line)
    if unsafe and resumable_ok and not start_failures:
        # recover=true before a new run: tables out of replication with the DDL applied on some servers
        # is exactly what the procedure finishes (DDL skipped where applied, tables re-added at O6/R6)
        log.info("restore: left for the procedure to finish: %s", unsafe)
        return report
    if unsafe:
        raise UnsafeToRestoreError(
            "restore stopped short of guessing. What it did: " + ("; ".join(actions) or "nothing") +
            ".\nWhat is not safe:\n- " + "\n- ".join(unsafe) +
            "\nServer states: " + repr(report["servers"]) +
            "\nThe application service is still stopped. To finish: fix the cause shown in the failed task's "
            "log, then clear this run (or trigger a new run with the same parameters and recover=true): every "
            "step reads the state first, skips what is done (the DDL where it is already applied) and completes "
            "the procedure. To undo instead, run the inverse DDL on the servers that have it, by hand.")
    return report


def summarize(request: DdlRequest, audits: list[dict[str, Any]], post: dict[str, Any] | None,
              restored: dict[str, Any] | None, log: Any) -> dict[str, Any]:
    """The run summary: statements per server, time in admin mode per server, rows checked."""
    conn_to_name = {s.conn_id: s.name for s in request.servers}
    admin_window: dict[str, dict[str, float]] = {}
    lines = [f"Run summary — {request.variant}, replication {request.replication_name}"]
    for audit in sorted((a for a in audits if a), key=lambda a: a["started"]):
        server = conn_to_name.get(audit["conn_id"], audit["conn_id"])
        for statement in audit["statements"]:
            lines.append(f"  {time.strftime('%H:%M:%S', time.localtime(audit['started']))} {audit['step_id']:<7} "
                         f"{server:<12} {statement['statement']} -> {statement['result']}"
                         f"{' (already done)' if statement['already_done'] else ''}")
            text = (statement["statement"] or "").upper()
            if "ADMIN_MODE = 1" in text:
                admin_window.setdefault(server, {})["on"] = audit["started"]
            if "ADMIN_MODE = 0" in text:
                admin_window.setdefault(server, {})["off"] = audit["started"] + audit["seconds"]
    seconds = {s: round(w["off"] - w["on"], 2) for s, w in admin_window.items() if "on" in w and "off" in w}
    lines.append(f"  time in admin mode per server (s): {seconds or 'n/a'}")
    if post:
        lines.append(f"  rows checked after the run ({post.get('row_count_verdict')}): {post.get('row_counts')}")
    if restored:
        lines.append(f"  restore: {restored.get('actions') or 'nothing to restore'}")
    log.info("\n".join(lines))
    return {"admin_mode_seconds": seconds, "statements": sum(len(a["statements"]) for a in audits if a),
            "row_counts": (post or {}).get("row_counts"), "text": "\n".join(lines)}
