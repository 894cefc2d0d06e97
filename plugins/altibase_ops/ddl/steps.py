"""What each step of the procedure does, given the run's request: the one place both the DAG's
operators (``ddl/operators.py``) and the fault matrix call, so neither can drift from the other.

- ``step_script``: the statements an iSQL step sends, as the plan shows them;
- ``prepare_step``: what a step still has to send when it runs. State first: it reads its server
  (one SYSDBA session), fails closed when the server restarted since preflight, and keeps only what
  is not done there yet (tables still in / already out of the replication, a sender already running
  or stopped, a property already set, DDL already applied). The "already done" codes of
  ``sql.steps.ALREADY_DONE`` remain only for races;
- ``step_check``: the state check a sensor step waits on;
- ``step_service_target``: whose service a service step moves, and how;
- ``run_on``: a script on one server through the hook (restore and the post-run checks; the steps
  themselves run through iSQL, whose output is judged by the same "already done" table).
"""

from __future__ import annotations

import time
from datetime import timedelta
from logging import Logger
from typing import Any

from airflow.sdk.exceptions import AirflowException

from altibase_ops.ddl.procedure import Step
from altibase_ops.ddl.records import APPLIED_TABLE, UnsureWhetherAppliedError, record, request_key
from altibase_ops.ddl.request import DdlRequest
from altibase_ops.ddl.state import (
    CLIENT_INFO,
    PEER_BUSY_WAIT_SECONDS,
    applied_on,
    read_records,
    resolve_tables,
    retry_while_busy,
    when_free,
)
from altibase_ops.ddl.statements import DDL_SQL_FILTERS
from altibase_ops.hooks.altibase import AltibaseHook
from altibase_ops.progress import Progress, short_reading
from altibase_ops.service.operator import ServiceTarget
from altibase_ops.sql.isql import CONNECT_LABEL
from altibase_ops.sql.steps import StatementResult, StepError, StepKind, run_script, split_statements
from altibase_ops.sql.templates import render_sql
from altibase_ops.state.checks import DONE, FAILED, run_check
from altibase_ops.state.server import ServerRestartedError, ServerState, read_state, restart_message


def template_vars(request: DdlRequest) -> dict[str, Any]:
    """What the include/sql/ddl templates see as ``params`` (the same names as the DAG params)."""
    return {"replication_name": request.replication_name, "tables": request.tables,
            "ddl": [d.text for d in request.ddl], "flush_wait_seconds": request.flush_wait_seconds}


def render_ddl_sql(template: str, request: DdlRequest, **overrides: Any) -> str:
    """A template under include/sql rendered for this run (``overrides`` replace request values)."""
    return render_sql(template, filters=DDL_SQL_FILTERS, **{**template_vars(request), **overrides})


class StepScript(str):
    """A step's script, and for the DDL step the numbers (in ``ddl``) of the statements it runs."""

    ddl_numbers: tuple[int, ...] = ()


def ddl_to_run(request: DdlRequest, conn_id: str, log: Logger, state: ServerState) -> list[tuple[int, str]]:
    """(number, text) of the DDL statements this server does not show as applied yet. The catalog
    decides where it can; a statement it cannot show (TRUNCATE) runs only without a record of this
    request on the server (``ddl/records.py``) or after the server refused it (FAILED), and not at all
    after a BEGAN that never reported."""
    todo = []
    for number, stmt in enumerate(resolve_tables(request.ddl, state)):
        applied = applied_on(conn_id, stmt, state)
        if applied is None:
            recorded = state.ddl_records.get(number)
            if recorded == "BEGAN":
                raise UnsureWhetherAppliedError(
                    f"{conn_id}: {stmt.text!r} began in an earlier attempt of this request and never reported "
                    "back, and its effect cannot be read from the catalog: it is not run again blindly. Look at "
                    f"the table; if it ran, mark it: UPDATE {APPLIED_TABLE} SET STATE = 'DONE' WHERE REQUEST_KEY = "
                    f"'{request_key(request)}' AND STATEMENT_NO = {number}; if not, delete that row; then re-run.")
            if recorded == "FAILED":
                run_id, _ = state.ddl_record_runs.get(number, ("?", 0))
                log.info("%s: %r was refused by the server in run %s (nothing applied): it runs again", conn_id,
                         stmt.text, run_id)
            applied = recorded == "DONE"
        if applied:
            log.info("already applied on %s, skipped: %s", conn_id, stmt.text)
        else:
            todo.append((number, stmt.text))
    return todo


def step_script(step: Step, request: DdlRequest) -> str:
    """The script an iSQL step sends when nothing of it is done yet: the plan, and what the task shows
    before it runs (``prepare_step`` decides what is left when it runs)."""
    if step.template is None:
        raise ValueError(f"step {step.task_id} ({step.action}) sends no SQL")
    return render_ddl_sql(step.template, request)


class ItemsDifferError(AirflowException):
    """START would meet a peer with a different replication item list (the handshake refuses it)."""


def read_when_free(conn_id: str, request: DdlRequest, wait: float = PEER_BUSY_WAIT_SECONDS,
                   definitions: bool = True) -> ServerState:
    """A server's state, waiting while another SYSDBA session (a parallel step on it) is open;
    ``definitions``: also the tables' definitions and this tool's records (what a DDL step needs)."""
    def read() -> ServerState:
        state = read_state(conn_id, request.replication_name, request.tables, client_info=CLIENT_INFO,
                           definitions=definitions)
        if definitions:
            read_records(conn_id, request, state)
        return state

    return retry_while_busy(read, wait)


def prepare_step(step: Step, request: DdlRequest, started_at: dict[str, int] | None, log: Logger) -> StepScript:
    """What the step still has to send ('' when nothing), after reading its server (state first).

    ``started_at``: each server's V$INSTANCE.STARTUP_TIME_SEC as preflight read it; a server that
    restarted since raises ServerRestartedError (its admin mode and SQL-apply setting went back to the
    configuration file's), before anything is sent."""
    server = request.server(step.role)
    # a START step on the peer may be reading this server
    state = read_when_free(server.conn_id, request, definitions=step.action == "ddl")
    expected = (started_at or {}).get(server.name)
    if expected is not None and state.startup_time != int(expected):
        raise ServerRestartedError(restart_message(server.name, int(expected), int(state.startup_time or 0),
                                                   state.properties.get("ADMIN_MODE")))
    if step.action == "ddl":
        todo = ddl_to_run(request, server.conn_id, log, state)
        if not todo:
            return StepScript("")
        script = StepScript(render_ddl_sql("ddl/run_ddl.sql", request, ddl=[text for _, text in todo]))
        script.ddl_numbers = tuple(number for number, _ in todo)
        return script
    kind = StepKind(step.step_kind)
    skip = None
    overrides: dict[str, Any] = {}
    if kind in (StepKind.REPLICATION_DROP_TABLE, StepKind.REPLICATION_ADD_TABLE):
        state = wait_for_receiver_to_end(server.conn_id, request, log, state)
    if kind == StepKind.REPLICATION_DROP_TABLE:
        overrides["tables"] = [t for t in request.tables if t in state.items]
        skip = "" if overrides["tables"] else "every table is already out of the replication"
    elif kind == StepKind.REPLICATION_ADD_TABLE:
        overrides["tables"] = [t for t in request.tables if t not in state.items]
        skip = "" if overrides["tables"] else "every table is already in the replication"
    elif kind == StepKind.REPLICATION_STOP and not state.sender_running:
        skip = "its sender is not running"
    elif kind == StepKind.REPLICATION_START:
        if state.sender_running:
            skip = "its sender is already running"
        else:
            peer = request.peer(step.role)
            peer_items = read_when_free(peer.conn_id, request, definitions=False).items
            if peer_items != state.items:
                raise ItemsDifferError(
                    f"{server.name} and {peer.name} hold different items of replication {request.replication_name}"
                    f" ({sorted(state.items)} here, {sorted(peer_items)} there): START would fail its handshake "
                    f"(the item count or the items differ), so it is not sent. A step that adds or removes "
                    f"tables did not finish on one of them; see its task log.")
    elif kind in (StepKind.ADMIN_MODE, StepKind.SQL_APPLY_MODE):
        prop = "ADMIN_MODE" if kind == StepKind.ADMIN_MODE else "REPLICATION_SQL_APPLY_ENABLE"
        wanted = 1 if step.name.endswith("_on") else 0
        if state.properties.get(prop) == wanted:
            skip = f"{prop} is already {wanted}"
    if skip:
        log.info("%s on %s: nothing to send, %s", step.step_id, server.name, skip)
        return StepScript("")
    if overrides.get("tables") and overrides["tables"] != request.tables:
        log.info("%s on %s: only %s (the others are done)", step.step_id, server.name, overrides["tables"])
    return StepScript(render_ddl_sql(step.template, request, **overrides))


# ADD/DROP TABLE is refused while the server's receiver for the replication runs (ERR-6109F). The
# peer's STOP joins its own sender thread; this server's receiver ends when it sees that, a moment later
# (rpcManager::stopSenderThread). Whatever sends ADD/DROP TABLE right after the peer's STOP (a step of
# a block, restore) waits that moment out.
RECEIVER_END_SECONDS = 10.0


def wait_for_receiver_to_end(conn_id: str, request: DdlRequest, log: Any,
                             state: ServerState | None = None) -> ServerState:
    """The server's state (``state`` if already read) once its receiver for the replication has ended;
    fails when it does not within RECEIVER_END_SECONDS."""
    deadline = time.monotonic() + RECEIVER_END_SECONDS
    state = state or read_when_free(conn_id, request, definitions=False)
    if state.receiver_running:
        log.info("%s: the receiver of %s still runs; waiting for it to end after the peer's STOP", conn_id,
                 request.replication_name)
    while state.receiver_running:
        if time.monotonic() > deadline:
            raise AirflowException(
                f"{conn_id}: the receiver of replication {request.replication_name} still runs after "
                f"{RECEIVER_END_SECONDS:.0f} s: the peer's sender is connected (is it started again, or did its "
                "STOP not run?). ADD/DROP TABLE would fail with ERR-6109F, so nothing is sent.")
        time.sleep(0.2)
        state = read_when_free(conn_id, request, definitions=False)
    return state


def run_ddl_step(step: Step, request: DdlRequest, script: StepScript, run_id: str, send: Any) -> Any:
    """Send a DDL step's script through ``send()`` between its records: BEGAN before; after, DONE for
    each statement the server ran and FAILED for each it refused (its error came back); a statement
    the client reported nothing for keeps BEGAN (whether it ran is unknown: only a TRUNCATE cares)."""
    server = request.server(step.role)
    record(server, request, list(script.ddl_numbers), "BEGAN", run_id)
    try:
        value = send()
    except StepError as exc:
        outcomes = statement_outcomes(script, exc.results)
        record(server, request, [n for n, outcome in outcomes.items() if outcome == "DONE"], "DONE", run_id)
        record(server, request, [n for n, outcome in outcomes.items() if outcome == "FAILED"], "FAILED", run_id)
        raise
    record(server, request, list(script.ddl_numbers), "DONE", run_id)
    return value


# The sections (first hex digit of a code, the message files' SECTION) of the server's own modules: ID,
# SM, MT, QP, MM, RP. Every other code is a client's — the ODBC library (5, src/ul), the communication
# layer (7, src/cm), iSQL itself (9, ut/msg: ERR-91015 "Communication failure." when the link broke) —
# and says nothing about whether the server ran the statement.
_SERVER_SECTIONS = frozenset("012346")


def statement_outcomes(script: StepScript, results: list[StatementResult]) -> dict[int, str]:
    """{statement number: DONE | FAILED} for the statements of ``script`` whose result the client
    reported, in order (results labelled with their statement; the login's own result left out)."""
    reported = [r for r in results if r.statement and r.statement != CONNECT_LABEL]
    outcomes: dict[int, str] = {}
    for number, statement, result in zip(script.ddl_numbers, split_statements(script), reported, strict=False):
        if result.statement != statement:
            break  # the client's results and the script part ways: nothing more is known
        if result.status == "ok" or result.accepted:
            outcomes[number] = "DONE"
        elif result.code and result.code[0] in _SERVER_SECTIONS:
            outcomes[number] = "FAILED"  # the server refused it and said so: a failed DDL applies nothing
        else:
            break
    return outcomes


def step_check(step: Step, request: DdlRequest) -> tuple[str, dict[str, Any], float]:
    """(check name in ``state.checks.CHECKS``, its arguments, its timeout in seconds) of a sensor step."""
    if step.action == "gap":
        return "replication_gap", {"replication_name": request.replication_name}, request.gap_timeout_seconds
    if step.action == "sessions":
        return "sessions", {"max_sessions": 0}, request.sessions_timeout_seconds
    if step.action == "sql_apply":
        return "sql_apply", {"replication_name": request.replication_name}, request.gap_timeout_seconds
    raise ValueError(f"step {step.task_id} ({step.action}) is not a check")


class StepWaitError(AirflowException):
    """A wait inside a block did not end well: the server's state failed the check (``failed``), or
    time ran out."""

    def __init__(self, message: str, failed: bool = False) -> None:
        super().__init__(message)
        self.failed = failed


# A wait inside a block polls this often: seconds-long waits must not pay a scheduler round trip.
IN_PROCESS_POLL_SECONDS = 0.25


def wait_in_process(step: Step, request: DdlRequest, started_at: dict[str, int] | None, log: Logger,
                    timeout: float | None = None, progress: Progress | None = None) -> Any:
    """A check step run inside a block: poll until it holds (its value), fails, or its timeout (the
    step's, unless given) passes; each reading goes to ``progress`` (which writes at a bounded rate)."""
    check, arguments, step_timeout = step_check(step, request)
    timeout = step_timeout if timeout is None else timeout
    server = request.server(step.role)
    expected = (started_at or {}).get(server.name)
    deadline = time.monotonic() + timeout
    while True:
        reading = run_check(check, server.conn_id, arguments, client_info=CLIENT_INFO,
                            server_started_at=None if expected is None else int(expected))
        late = time.monotonic() > deadline
        if progress is not None:
            ended = {DONE: "done", FAILED: "failed"}.get(reading.status, "gave up" if late else "")
            progress.report(f"{step.step_id} {short_reading(check, reading.value, reading.message)}", ended=ended)
        if reading.status == DONE:
            log.info("%s: %s", step.step_id, reading.message)
            return reading.value
        if reading.status == FAILED:
            raise StepWaitError(f"{step.step_id} on {server.name}: {reading.message}", failed=True)
        if late:
            raise StepWaitError(f"{step.step_id} on {server.name}: still not satisfied after {timeout:.0f} s; "
                                f"last reading: {reading.message}")
        time.sleep(min(IN_PROCESS_POLL_SECONDS, request.poke_interval_seconds))


def step_service_target(step: Step, request: DdlRequest) -> ServiceTarget:
    """The service a service step acts on: its server's, with the peer and the approval's wording."""
    return ServiceTarget(
        control=request.service_control, server=request.server(step.role).name, peer=request.peer(step.role).name,
        approval_timeout=timedelta(minutes=request.approval_timeout_minutes),
        context_md=f"Replication **{request.replication_name}**, tables {', '.join(request.tables)}.",
        routes=step_routes(step, request))


def step_routes(step: Step, request: DdlRequest) -> dict[str, str | None]:
    """A service step's traffic model (``procedure.Step.routes``) by server name."""
    return {request.server(role).name: None if target is None else request.server(target).name
            for role, target in step.routes}


def run_on(conn_id: str, script: str, step_kind: StepKind) -> list[StatementResult]:
    """``script`` on a short SYSDBA session of one server, judged by the "already done" table. A login
    refused because the server's single SYSDBA session is taken for a moment ran nothing: tried again."""
    hook = AltibaseHook(altibase_conn_id=conn_id, sysdba=True, client_info=CLIENT_INFO)
    with when_free(hook) as session:
        return run_script(session, script, step_kind=step_kind)

