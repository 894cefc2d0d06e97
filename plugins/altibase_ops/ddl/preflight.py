"""Preflight: read-only gates before anything changes (docs/procedures.md, docs/altibase-rules.md).

Every problem is named at once, with what to do about it; nothing is changed when one is found.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowException

from altibase_ops.backends import connection_problems, server_address
from altibase_ops.ddl.predict import missing_targets, needs_row_counts, predict, unique_keys_to_check
from altibase_ops.ddl.records import LOCK_TABLE, is_this_request, locked_message, ran_earlier
from altibase_ops.ddl.request import DdlRequest
from altibase_ops.ddl.state import CLIENT_INFO, DEFAULT_PROPERTIES, ddl_progress, read_all, when_free
from altibase_ops.ddl.statements import DefinitionConflictError
from altibase_ops.ddl.verify import (
    KEY_DIFF_MAX_ROWS,
    compare_table_data,
    differing_parts,
    first_differing_keys,
    shown_value,
)
from altibase_ops.exceptions import AltibaseServerError
from altibase_ops.hooks.altibase import AltibaseHook
from altibase_ops.sql.templates import render_sql
from altibase_ops.state.server import ServerState

# Logins a server refused, and what to fix (the server answered: it is reachable).
LOGIN_REFUSED = {
    "4102E": "the server refused the password of the Connection's user (fix the Connection's password)",
    "31010": "the server does not know the Connection's user (the login must be SYS)",
    "41043": "the server refused a SYSDBA login for the Connection's user (the login must be SYS)",
    "4106E": "the server is in admin mode and refused the login",
    "41041": "another SYSDBA session is open on the server (someone else is working on it)",
}


class PreflightError(AirflowException):
    """The servers are not in a state the procedure can start from; nothing was changed."""


def check_connections(request: DdlRequest) -> None:
    """Every server's Connection can serve this run (``backends.connection_problems``); PreflightError
    naming each problem otherwise. Reads Airflow's Connections only, no server."""
    problems = [f"{server.name}: {problem}" for server in request.servers
                for problem in connection_problems(server.conn_id, runner=request.runner)]
    if not problems:
        addresses = {server.conn_id: server_address(server.conn_id) for server in request.servers}
        if len(set(addresses.values())) == 1:
            problems.append(f"{' and '.join(addresses)} both point at {addresses[request.servers[0].conn_id]}: a "
                            f"pair is two servers")
    if problems:
        raise PreflightError("the Connections cannot serve this run, nothing was changed:\n- " + "\n- ".join(problems))


def definition_difference(table: str, states: dict[str, ServerState]) -> str:
    """What one server's definition of ``table`` has that the other's lacks, both ways."""
    (first, a), (second, b) = ((n, [repr(x) for x in s.tables[table].signature()]) for n, s in states.items())
    only = [f"only on {n}: {', '.join(x for x in mine if x not in theirs)}"
            for n, mine, theirs in ((first, a, b), (second, b, a)) if any(x not in theirs for x in mine)]
    return "; ".join(only) or "the same parts in another order"


def duplicate_key_problems(request: DdlRequest, server: str, state: ServerState) -> tuple[list[str], list[str]]:
    """(problems, notes): each new unique index whose key two of the server's rows share now — the
    CREATE would fail there mid-outage (ERR-11058), on the second server after the first changed.
    One scan and a group of the key columns per index, on tables of at most ``scan_max_rows`` rows."""
    checkable, notes = unique_keys_to_check(request, state)
    problems = []
    conn_id = next(s.conn_id for s in request.servers if s.name == server)
    for stmt in checkable:
        rows = state.row_counts.get(stmt.table or "", 0)
        if rows > request.scan_max_rows:
            problems.append(f"{server}: {stmt.text!r}: {stmt.table} has {rows} rows, more than scan_max_rows "
                            f"({request.scan_max_rows}), so preflight did not look for keys two rows share (a "
                            "duplicate fails the CREATE mid-outage, ERR-11058). Check it yourself (GROUP BY the "
                            "key columns HAVING COUNT(*) > 1) and raise scan_max_rows to let preflight do it")
            continue
        if rows < 2:
            continue
        sql = render_sql("checks/find_duplicate_key.sql", table=stmt.table, columns=list(stmt.keys))
        with when_free(AltibaseHook(altibase_conn_id=conn_id, sysdba=True, client_info=CLIENT_INFO)) as session:
            found = session.dicts(sql)
        if found:
            sharing = found[0].pop("ROWS_SHARING_THE_KEY")
            key = ", ".join(f"{c}={shown_value(v)}" for c, v in found[0].items())
            problems.append(f"{server}: {stmt.text!r}: {sharing} rows of {stmt.table} share the key ({key}); Altibase "
                            "refuses to build the unique index (ERR-11058). Make the keys unique on both servers "
                            "first, or create a non-unique index")
    return problems, [f"{server}: {n}" for n in notes]


def _sessions(request: DdlRequest) -> dict[str, int]:
    """Each server's sessions other than this one, read now (no table read)."""
    return {name: state.other_sessions for name, state in read_all(request, tables=[]).items()}


def data_check(request: DdlRequest, states: dict[str, ServerState]) -> tuple[list[str], list[str]]:
    """(problems, notes): are the tables' data the same on both servers before the outage? Only while
    nothing writes — no other session on either server, before and after the reads: under live load two
    servers are never read at the same instant, so nothing is scanned and a note says so (can_stop's O9
    compares with the service stopped). Then each sender's gap is flushed and each table's fingerprint read
    (``verify.compare_table_data``: one scan per table and server), for tables of at most
    ``scan_max_rows`` rows (a row count first, the cheapest read). A difference is a problem naming the
    table, the parts that differ and the first differing keys."""
    busy = {n: s.other_sessions for n, s in states.items() if s.other_sessions}
    later = "; O9 compares them with the service stopped" if request.service_mode == "can_stop" else ""
    if busy:
        return [], [f"the tables' data were not compared before the outage: the application is connected "
                    f"(sessions on {', '.join(f'{n}: {c}' for n, c in busy.items())}), so the two servers are never "
                    f"read at the same instant{later}"]
    counts = read_all(request, count_rows=True, fingerprint=False)
    large = sorted({t for s in counts.values() for t, rows in s.row_counts.items() if rows > request.scan_max_rows})
    notes = [f"{t}: not compared before the outage, more than scan_max_rows ({request.scan_max_rows}) rows{later}"
             for t in large]
    tables = [t for t in request.tables if t not in large]
    if not tables:
        return [], notes
    try:
        compared, equal = compare_table_data(request, attempts=3, tables=tables)
    except AirflowException as exc:  # FLUSH WAIT timed out: the gap does not drain
        return [], notes + [f"the tables' data were not compared: the replication gap did not drain ({exc})"]
    if equal:
        return [], notes + [f"{t}: the same on both servers ({int(next(iter(p.values()))['ROW_COUNT'])} rows; "
                            f"{weighed_columns(p)})" for t, p in compared.items()]
    busy = {n: c for n, c in _sessions(request).items() if c}
    if busy:  # someone connected while the tables were read: the difference proves nothing
        return [], notes + [f"the tables' data were not compared exactly: sessions opened meanwhile on "
                            f"{', '.join(busy)}{later}"]
    problems = []
    for table, prints in compared.items():
        parts = differing_parts(prints)
        if not parts:
            continue
        keys = first_differing_keys(request, table, states, prints)
        where = (f"first differing keys: {'; '.join(keys)}" if keys else
                 f"the keys are not listed: more than {KEY_DIFF_MAX_ROWS} rows" if keys is None else "")
        problems.append(f"{table}: its data differ between the servers while nothing writes ({', '.join(parts)} "
                        f"differ; {where}). The pair is diverged before the run: the DDL would carry the difference "
                        "on. Find out which server is right and make the other equal first")
    return problems, notes


def weighed_columns(prints: dict[str, dict[str, Any]]) -> str:
    """What a table's fingerprints compared, in a note's words: the columns whose moves between rows it sees."""
    weighed = sorted({k[2:] for p in prints.values() for k in p if k.startswith("W_")})
    return (f"row count, sums, and values moved between rows in {', '.join(weighed)}" if weighed else
            "row count and sums only: no key-weighted sums for this table (its key or columns are of types they "
            "do not read)")


def preflight(request: DdlRequest, log: Any, run_state: Any = None) -> dict[str, Any]:
    """Read-only gates before anything changes. Raises PreflightError naming every problem.
    ``run_state(dag_id, run_id)``: a lock holder's Airflow run state, where this Airflow has it."""
    problems: list[str] = []
    notes: list[str] = []
    try:
        states = read_all(request, count_rows=needs_row_counts(request))
    except AltibaseServerError as exc:
        raise PreflightError(f"{LOGIN_REFUSED.get(exc.code or '', 'a server is not reachable')}: {exc}; "
                             "nothing was changed") from None
    except AirflowException as exc:
        raise PreflightError(f"a server is not reachable: {exc}; nothing was changed") from None
    senders_needed = request.senders

    first, second = (states[s.name] for s in request.servers)
    if (first.db_signature, first.startup_time) == (second.db_signature, second.startup_time):
        raise PreflightError(
            f"{request.servers[0].conn_id} and {request.servers[1].conn_id} reach the same server (same "
            f"V$DATABASE.DB_SIGNATURE and V$INSTANCE.STARTUP_TIME_SEC): a pair is two servers. Fix the "
            f"Connections; nothing was changed")
    for server in request.servers:
        state = states[server.name]
        if not state.replication_exists:
            problems.append(f"{server.name}: replication {request.replication_name} does not exist")
            continue
        lock = state.lock
        ours = lock is not None and is_this_request(lock.request_key, lock.run_id, request)
        if lock is not None and not ours:
            problems.append(f"{server.name}: another request: " + locked_message(request, server.name, lock, run_state))
        elif ours and not request.recover:
            problems.append(locked_message(request, server.name, lock, run_state))
        # a table that does not exist is said so first, and only so: no advice about its replication
        missing_tables = [t for t in request.tables if t not in state.tables]
        problems += [f"{server.name}: table {table} does not exist" for table in missing_tables]
        missing = [t for t in request.tables if t not in state.items and t not in missing_tables]
        if missing and ours:
            # what an interrupted run of this request leaves (after O4/R4), proven by its lock
            notes.append(f"{server.name}: {', '.join(missing)} out of replication {request.replication_name}, "
                         f"taken out by {lock.describe()} (resuming it)")
        elif missing:
            problems.append(
                f"{server.name}: {', '.join(missing)} not in replication {request.replication_name}, and no run of this "
                f"request took it out (no lock row in {LOCK_TABLE}). The DAG changes replicated tables only; it "
                "does not add a table to a replication (its rows may differ between the servers). Add it to the "
                "replication yourself once its rows are the same on both servers, or leave it out of `tables`")
        if len(state.items - set(request.tables)) < 1:
            problems.append(
                f"{server.name}: replication {request.replication_name} would lose its last table at the "
                f"'remove from replication' step (Altibase refuses: ERR-6106F). Add another table to the "
                f"replication first, or drop and re-create the replication object around the DDL")
        if state.properties.get("ADMIN_MODE") and request.recover and missing:
            notes.append(f"{server.name}: ADMIN_MODE is 1 with {', '.join(missing)} out of the replication (left so "
                         "by restore: writes there would not reach the peer); the procedure resumes in admin mode")
        elif state.properties.get("ADMIN_MODE"):
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
            table = state.index_tables.get(stmt.index or "")
            if stmt.kind == "drop_index" and table is not None and table not in request.tables:
                problems.append(f"{server.name}: index {stmt.index} belongs to {table}, not a listed table")
            elif stmt.kind == "drop_index" and table is not None and table.split(".")[0] != stmt.index.split(".")[0]:
                problems.append(f"{server.name}: index {stmt.index} is owned by {stmt.index.split('.')[0]}, not by "
                                f"the owner of its table {table}; this DAG changes only the table owner's objects")
        if not missing_tables:
            problems += missing_targets(request, server.name, state)
    if not problems:
        try:
            progress = ddl_progress(request, states)
        except DefinitionConflictError as exc:  # a same-name object with another definition: say which
            raise PreflightError(f"preflight found problems, nothing was changed:\n- {exc}") from None
        for table in request.tables:
            by_progress: dict[str, set] = {}
            for name, state in states.items():
                by_progress.setdefault(progress[name], set()).add(repr(state.tables[table].signature()))
            if "partial" in by_progress:
                problems.append(f"{table}: the DDL is partially applied on "
                                f"{[n for n, p in progress.items() if p == 'partial']}; finish or undo it by hand")
            elif any(len(sigs) > 1 for sigs in by_progress.values()):
                problems.append(f"{table}: its definition differs between the servers ({definition_difference(table, states)}). "
                                "The procedure starts from the same columns, indexes and keys on both; make them equal "
                                "first (a unique key on one side changes how replication applies rows)")
        for name, state in states.items():
            if progress[name] == "before":  # the statements all run here: what would Altibase say?
                prediction = predict(request, name, state)
                problems += prediction.problems
                notes += prediction.notes
                if not prediction.problems:
                    found, unchecked = duplicate_key_problems(request, name, state)
                    problems += found
                    notes += unchecked
        resuming = len(set(progress.values())) > 1
        if resuming and not any(s.lock is not None and is_this_request(s.lock.request_key, s.lock.run_id, request)
                                for s in states.values()):
            problems.append(f"the DDL is applied on {[n for n, p in progress.items() if p == 'after']} but not on "
                            f"{[n for n, p in progress.items() if p == 'before']}, and no run of this request holds "
                            f"the pair (no lock row in {LOCK_TABLE}): someone else changed one server. Make the "
                            "definitions equal by hand first; this DAG resumes only what it began")
        elif resuming:
            notes.append("resuming: the DDL is already applied on "
                         f"{[n for n, p in progress.items() if p == 'after']}; those servers skip it")
        fresh_start = (not resuming and set(progress.values()) == {"before"}
                       and all(s.lock is None and set(request.tables) <= s.items for s in states.values()))
        if not problems and fresh_start:
            found, seen = data_check(request, states)
            problems += found
            notes += seen
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
    nothing_to_do = (set(ddl_progress(request, states).values()) == {"after"}
                     and all(set(request.tables) <= s.items and not s.properties.get("ADMIN_MODE")
                             and s.lock is None for s in states.values())
                     and all(states[name].sender_running for name in senders_needed))
    # every step checks its server is still this process: a restart drops what ALTER SYSTEM set
    started_at = {name: state.startup_time for name, state in states.items()}
    return {"servers": report, "notes": notes, "started_at": started_at, "nothing_to_do": nothing_to_do,
            "ran_earlier": ran_earlier(request, states) if nothing_to_do else []}
