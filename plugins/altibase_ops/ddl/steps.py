"""What each step of the procedure does, given the run's request: the one place both the DAG's
operators (``ddl/operators.py``) and the fault matrix call, so neither can drift from the other.

- ``step_script``: the statements an iSQL step sends (the DDL step reads its server first and keeps
  only what is not applied there yet);
- ``step_check``: the state check a sensor step waits on;
- ``step_service_target``: whose service a service step moves, and how;
- ``run_on``: a script on one server through the hook (restore and the post-run checks; the steps
  themselves run through iSQL, whose output is judged by the same "already done" table).
"""

from __future__ import annotations

from datetime import timedelta
from logging import Logger
from typing import Any

from altibase_ops.ddl.procedure import Step
from altibase_ops.ddl.request import DdlRequest
from altibase_ops.ddl.state import CLIENT_INFO, resolve_tables
from altibase_ops.ddl.statements import DDL_SQL_FILTERS, is_applied
from altibase_ops.hooks.altibase import AltibaseHook
from altibase_ops.service.operator import ServiceTarget
from altibase_ops.sql.steps import StatementResult, StepKind, run_script
from altibase_ops.sql.templates import render_sql
from altibase_ops.state.server import read_state


def template_vars(request: DdlRequest) -> dict[str, Any]:
    """What the include/sql/ddl templates see as ``params`` (the same names as the DAG params)."""
    return {"replication_name": request.replication_name, "tables": request.tables,
            "ddl": [d.text for d in request.ddl], "flush_wait_seconds": request.flush_wait_seconds}


def render_ddl_sql(template: str, request: DdlRequest, **overrides: Any) -> str:
    """A template under include/sql rendered for this run (``overrides`` replace request values)."""
    return render_sql(template, filters=DDL_SQL_FILTERS, **{**template_vars(request), **overrides})


def ddl_to_run(request: DdlRequest, conn_id: str, log: Logger) -> list[str]:
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


def step_script(step: Step, request: DdlRequest, log: Logger | None = None) -> str:
    """The script an iSQL step sends. With a ``log``, the DDL step reads its server first and keeps
    only the statements not applied there ('' when none is left); without, it is the whole DDL (the
    plan, and what the task shows before it runs)."""
    if step.action == "ddl" and log is not None:
        todo = ddl_to_run(request, request.server(step.role).conn_id, log)
        return render_ddl_sql("ddl/run_ddl.sql", request, ddl=todo) if todo else ""
    if step.template is None:
        raise ValueError(f"step {step.task_id} ({step.action}) sends no SQL")
    return render_ddl_sql(step.template, request)


def step_check(step: Step, request: DdlRequest) -> tuple[str, dict[str, Any], float]:
    """(check name in ``state.checks.CHECKS``, its arguments, its timeout in seconds) of a sensor step."""
    if step.action == "gap":
        return "replication_gap", {"replication_name": request.replication_name}, request.gap_timeout_seconds
    if step.action == "sessions":
        return "sessions", {"max_sessions": 0}, request.sessions_timeout_seconds
    if step.action == "sql_apply":
        return "sql_apply", {"replication_name": request.replication_name}, request.gap_timeout_seconds
    raise ValueError(f"step {step.task_id} ({step.action}) is not a check")


def step_service_target(step: Step, request: DdlRequest) -> ServiceTarget:
    """The service a service step acts on: its server's, with the peer and the approval's wording."""
    return ServiceTarget(
        control=request.service_control, server=request.server(step.role).name, peer=request.peer(step.role).name,
        approval_timeout=timedelta(minutes=request.approval_timeout_minutes),
        context_md=f"Replication **{request.replication_name}**, tables {', '.join(request.tables)}.")


def run_on(conn_id: str, script: str, step_kind: StepKind) -> list[StatementResult]:
    """``script`` on a short SYSDBA session of one server, judged by the "already done" table."""
    hook = AltibaseHook(altibase_conn_id=conn_id, sysdba=True, client_info=CLIENT_INFO)
    with hook.session() as session:
        return run_script(session, script, step_kind=step_kind)
