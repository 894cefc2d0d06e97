"""What the pair shows of a DDL run: each server's state, and how far the DDL got on it.

Preflight, the steps' read-first, the post-checks and restore all read through here, so they agree.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any, TypeVar

from altibase_ops.ddl.request import DdlRequest
from altibase_ops.ddl.statements import DdlStatement, InvalidDdlError, is_applied
from altibase_ops.exceptions import AltibaseServerError
from altibase_ops.state.server import ServerState, read_state

CLIENT_INFO = "airflow:altibase_replicated_ddl"
BUSY = "41041"  # Another SYSDBA session is already running.
# How long a read or a statement waits for a server's single SYSDBA session (ERR-41041): a parallel step
# of the same run (a START reading its peer), a sensor, a refused run's preflight may hold it a moment.
PEER_BUSY_WAIT_SECONDS = 30
T = TypeVar("T")


def retry_while_busy(call: Callable[[], T], wait: float = PEER_BUSY_WAIT_SECONDS) -> T:
    """``call()``, again while its login is refused because the server's SYSDBA session is taken (the
    refused login ran nothing), for ``wait`` seconds at most."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return call()
        except AltibaseServerError as exc:
            if exc.code != BUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@contextmanager
def when_free(hook: Any, wait: float = PEER_BUSY_WAIT_SECONDS) -> Iterator[Any]:
    """A session of ``hook`` (SYSDBA), opened once the server's SYSDBA session is free (``retry_while_busy``)."""
    with ExitStack() as stack:
        yield retry_while_busy(lambda: stack.enter_context(hook.session()), wait)
# The replication properties the procedure assumes at their defaults (docs/procedures.md, docs/altibase-rules.md).
DEFAULT_PROPERTIES = {"REPLICATION_DDL_ENABLE": 0, "REPLICATION_DDL_ENABLE_LEVEL": 0, "REPLICATION_DDL_SYNC": 0,
                      "REPLICATION_SQL_APPLY_ENABLE": 0}


class MissingTableError(InvalidDdlError):
    """A listed table is not on a server."""


def read_all(request: DdlRequest, count_rows: bool = False, fingerprint: bool = True,
             tables: list[str] | None = None) -> dict[str, ServerState]:
    """Every server's state, with what this tool recorded there (the pair's lock, the DDL's records);
    ``count_rows`` / ``fingerprint`` as ``read_state``; ``tables``: a part of the listed tables."""
    def read(conn_id: str) -> ServerState:
        state = read_state(conn_id, request.replication_name, request.tables if tables is None else tables,
                           count_rows=count_rows, fingerprint=fingerprint, client_info=CLIENT_INFO)
        read_records(conn_id, request, state)
        return state

    return {server.name: retry_while_busy(lambda conn_id=server.conn_id: read(conn_id)) for server in request.servers}


def read_records(conn_id: str, request: DdlRequest, state: ServerState) -> None:
    from altibase_ops.ddl.records import applied_records, read_lock
    from altibase_ops.hooks.altibase import AltibaseHook

    with AltibaseHook(altibase_conn_id=conn_id, sysdba=True, client_info=CLIENT_INFO).session() as session:
        records = applied_records(session, request)
        state.ddl_records = {number: st for number, (st, _, _) in records.items()}
        state.ddl_record_runs = {number: (run_id, at) for number, (_, run_id, at) in records.items()}
        state.lock = read_lock(session, request.replication_name)



def ddl_progress(request: DdlRequest, states: dict[str, ServerState], table: str | None = None) -> dict[str, str]:
    """Per server: 'before' (no statement applied), 'after' (all applied) or 'partial' — over every
    statement, or over ``table``'s only."""
    progress = {}
    # a DROP INDEX that ran on one server names no table there any more: its table is the peer's
    owners = {index: owner for state in states.values() for index, owner in state.index_tables.items()}
    for name, state in states.items():
        flags = []
        for number, stmt in enumerate(resolve_tables(request.ddl, state)):
            if table is not None and (stmt.table or owners.get(stmt.index or "")) != table:
                continue
            applied = applied_on(name, stmt, state)
            if applied is None:  # the catalog cannot show it (TRUNCATE): this tool's record decides
                applied = state.ddl_records.get(number) == "DONE"
            if applied is not None:
                flags.append(applied)
        progress[name] = "after" if flags and all(flags) else ("before" if not any(flags) else "partial")
    return progress


def tables_apart(request: DdlRequest, states: dict[str, ServerState]) -> dict[str, bool]:
    """Per listed table: whether the servers hold it apart — a definition that differs, or a statement
    applied on some servers only (a TRUNCATE shows in this tool's records, not in the catalog)."""
    return {t: not (all(t in s.tables for s in states.values())
                    and len({repr(s.tables[t].signature()) for s in states.values()}) == 1
                    and len(set(ddl_progress(request, states, t).values())) == 1) for t in request.tables}


def applied_on(name: str, stmt: DdlStatement, state: ServerState) -> bool | None:
    """Whether server ``name`` shows ``stmt`` applied (``statements.is_applied``); None when only this
    tool's record can tell. A DROP INDEX whose index is not there is applied: preflight has refused a
    name that no run of this request dropped (``ddl/predict.py missing_targets``)."""
    if stmt.kind == "drop_index" and stmt.table is None:
        return True
    table = state.tables.get(stmt.table or "")
    if table is None:
        raise MissingTableError(f"{name}: table {stmt.table} does not exist")
    return is_applied(stmt, table)


def resolve_tables(ddl: list[DdlStatement], state: ServerState) -> list[DdlStatement]:
    """DROP INDEX names no table: take it from the server's dictionary."""
    resolved = []
    for stmt in ddl:
        if stmt.table is None:
            table = state.index_tables.get(stmt.index or "")
            stmt = stmt.with_table(table) if table else stmt
        resolved.append(stmt)
    return resolved


