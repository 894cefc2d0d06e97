"""What the pair shows of a DDL run: each server's state, and how far the DDL got on it.

Preflight, the steps' read-first, the post-checks and restore all read through here, so they agree.
"""

from __future__ import annotations

from altibase_ops.ddl.request import DdlRequest
from altibase_ops.ddl.statements import DdlStatement, InvalidDdlError, is_applied
from altibase_ops.state.server import ServerState, read_state

CLIENT_INFO = "airflow:altibase_replicated_ddl"
# The replication properties the procedure assumes at their defaults (procedures.md, altibase-facts.md).
DEFAULT_PROPERTIES = {"REPLICATION_DDL_ENABLE": 0, "REPLICATION_DDL_ENABLE_LEVEL": 0, "REPLICATION_DDL_SYNC": 0,
                      "REPLICATION_SQL_APPLY_ENABLE": 0}


class MissingTableError(InvalidDdlError):
    """A listed table is not on a server."""


def read_all(request: DdlRequest, count_rows: bool = False) -> dict[str, ServerState]:
    return {s.name: read_state(s.conn_id, request.replication_name, request.tables, count_rows=count_rows,
                               client_info=CLIENT_INFO) for s in request.servers}



def ddl_progress(request: DdlRequest, states: dict[str, ServerState]) -> dict[str, str]:
    """Per server: 'before' (no statement applied), 'after' (all applied) or 'partial'."""
    progress = {}
    for name, state in states.items():
        flags = []
        for stmt in resolve_tables(request.ddl, state):
            table = state.tables.get(stmt.table)
            if table is None:
                raise MissingTableError(f"{name}: table {stmt.table} does not exist")
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


