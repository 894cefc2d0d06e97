"""Restore: after a failure at any step, bring every server back to a safe state, or say exactly why
not and what an operator must do. Never guesses.

Every statement goes through ``ddl/steps.run_on`` (the hook and the one "already done" table); every
decision reads the servers first.
"""

from __future__ import annotations

import time
from typing import Any

from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowException

from altibase_ops.ddl.procedure import VARIANTS, variant_id
from altibase_ops.ddl.request import DdlRequest
from altibase_ops.ddl.state import CLIENT_INFO, ddl_progress, read_all
from altibase_ops.ddl.steps import render_ddl_sql, run_on, wait_for_receiver_to_end
from altibase_ops.ddl.verify import compare_table_data
from altibase_ops.exceptions import AltibaseServerError
from altibase_ops.hooks.altibase import AltibaseHook
from altibase_ops.service.control import left_changed, perform
from altibase_ops.sql.steps import StepKind
from altibase_ops.state.server import read_state, restart_message

# Task states in which a step may still hold a session on a server.
_UNSETTLED = {"running", "queued", "scheduled", "deferred", "up_for_retry", "up_for_reschedule", "restarting"}
# Task states of a step that never started.
_NOT_STARTED = {None, "none", "skipped", "upstream_failed", "removed"}


class UnsafeToRestoreError(AirflowException):
    """Restoring further would mean guessing; the message says what each server is in and what to do."""


def variant_step_states(context: Context, variant: str) -> dict[str, str | None]:
    """The states of one variant's tasks in this run (task id -> state), as Airflow records them."""
    ti = context["ti"]
    states = ti.get_task_states(dag_id=ti.dag_id, task_group_id=variant, run_ids=[ti.run_id])
    return dict(states.get(ti.run_id) or {})


def procedure_began(context: Context) -> bool:
    """Whether any step of any variant started in this run: before that nothing was changed, so there
    is nothing to restore. Read from Airflow's task states, so it holds even when the params are
    invalid (the request cannot be built) or the branch never ran."""
    for topology, mode in VARIANTS:
        if any(state not in _NOT_STARTED for state in variant_step_states(context, variant_id(topology, mode)).values()):
            return True
    return False


def wait_for_steps_to_settle(context: Context, request: DdlRequest, log: Any, timeout: float = 600) -> None:
    """Before restoring: let steps still running on other servers finish (they hold SYSDBA sessions)."""
    deadline = time.monotonic() + timeout
    while True:
        busy = sorted(t for t, state in variant_step_states(context, request.variant).items() if state in _UNSETTLED)
        if not busy:
            return
        if time.monotonic() > deadline:
            raise AirflowException(f"steps still running after {timeout}s: {busy}; restore does not run beside them")
        log.info("restore waits for steps still running: %s", busy)
        time.sleep(1)


# No answer at all (client unable to connect / link lost / no code): the server is down, not refusing.
_DOWN_CODES = {"50032", "51043", None}


def unreachable_servers(request: DdlRequest) -> dict[str, str]:
    """{server name: why} for the servers that do not answer; a refused login is not "unreachable"."""
    down = {}
    for server in request.servers:
        try:
            with AltibaseHook(altibase_conn_id=server.conn_id, sysdba=True, client_info=CLIENT_INFO).session():
                pass
        except AltibaseServerError as exc:
            if exc.code not in _DOWN_CODES:
                raise
            down[server.name] = str(exc)
    return down


def restore_survivors(request: DdlRequest, service_history: list[dict[str, Any]], log: Any,
                      unreachable: dict[str, str]) -> dict[str, Any]:
    """Restore with a server down: do what is safe on the servers that answer, then say per server what
    state it is in and what to do when the dead one returns (then ``recover`` finishes the job).

    On a survivor: in rolling mode the tables it took out go back into the replication (its peer cannot
    send to it now, so ADD TABLE is allowed; the peer still lists them, so the item lists agree again),
    SQL apply goes on where the DDL already ran (the definitions differ until the other turn), admin mode
    goes off, and the service moves onto it — the pair keeps serving. Its replication stays stopped:
    its writes wait in its log from the restart point and ship when the peer is back. In can_stop mode
    the survivor keeps a table out (and admin mode on) when the definitions cannot be compared."""
    rep = request.replication_name
    rolling = request.service_mode == "rolling"
    actions: list[str] = []
    survivors = [s for s in request.servers if s.name not in unreachable]
    for server in survivors:
        state = read_state(server.conn_id, rep, request.tables, client_info=CLIENT_INFO)
        missing = [t for t in request.tables if t not in state.items]
        if missing and rolling:
            if state.sender_running or state.is_started:
                run_on(server.conn_id, render_ddl_sql("ddl/stop_replication.sql", request), StepKind.REPLICATION_STOP)
            run_on(server.conn_id, render_ddl_sql("ddl/add_replication_table.sql", request, tables=missing),
                   StepKind.REPLICATION_ADD_TABLE)
            actions.append(f"{server.name}: {missing} added back to replication {rep}")
            if ddl_progress(request, {server.name: state})[server.name] != "before" and \
                    not state.properties.get("REPLICATION_SQL_APPLY_ENABLE"):
                run_on(server.conn_id, render_ddl_sql("ddl/set_sql_apply_on.sql", request), StepKind.SQL_APPLY_MODE)
                actions.append(f"{server.name}: REPLICATION_SQL_APPLY_ENABLE = 1 (its definitions differ from "
                               "the peer's until the other turn)")
            missing = []
        if state.properties.get("ADMIN_MODE") and not missing:
            run_on(server.conn_id, render_ddl_sql("ddl/set_admin_mode_off.sql", request), StepKind.ADMIN_MODE)
            actions.append(f"{server.name}: ADMIN_MODE = 0")
        elif missing:
            actions.append(f"{server.name}: stays in admin mode: {missing} out of replication {rep} (the "
                           "definitions cannot be compared with a dead peer)")
    if rolling and survivors and request.service_control["mode"] != "manual":
        for dead in unreachable:
            for record in perform("move_to_peer", request.service_control, dead, survivors[0].name, service_history):
                actions.append(f"service of {dead}: moved onto {survivors[0].name} ({record.get('kind')})")
    elif rolling and survivors:
        actions.append(f"service: move the application onto {survivors[0].name} by hand (manual service control)")
    for line in actions:
        log.info("restore: %s", line)
    raise UnsafeToRestoreError(
        "restore could reach only part of the pair. Unreachable:\n- "
        + "\n- ".join(f"{name}: {why}" for name, why in unreachable.items())
        + "\nWhat it did on the others: " + ("; ".join(actions) or "nothing")
        + f".\nWhen {', '.join(unreachable)} is back: trigger a new run with the same parameters and recover=true; "
        "it restores the returning server (admin mode, replication items, senders) and finishes the procedure. "
        "Writes on the survivor meanwhile wait in its log and ship once replication restarts; nothing is lost.")


def change_items(request: DdlRequest, states: dict[str, Any], tables: dict[str, list[str]], template: str,
                 kind: StepKind, purpose: str, done: str, actions: list[str], log: Any) -> None:
    """ADD or DROP TABLE of ``tables[server]`` on each server. Both need replication stopped on the
    server and the peer not sending (ERR-6109F): every running sender stops first (restarted later),
    and each server's receiver has ended before its statement."""
    for server in request.servers:
        if states[server.name].sender_running:
            run_on(server.conn_id, render_ddl_sql("ddl/stop_replication.sql", request), StepKind.REPLICATION_STOP)
            actions.append(f"{server.name}: replication stopped to {purpose}")
    for server in request.servers:
        if tables[server.name]:
            wait_for_receiver_to_end(server.conn_id, request, log)
            run_on(server.conn_id, render_ddl_sql(template, request, tables=tables[server.name]), kind)
            actions.append(f"{server.name}: {tables[server.name]} {done}")


def restore(request: DdlRequest, service_history: list[dict[str, Any]], log: Any,
            resumable_ok: bool = False, started_at: dict[str, int] | None = None) -> dict[str, Any]:
    """Put every server back to a safe state; never guess.

    Tables out of replication go back in where their definitions agree —
    and, in rolling mode, also where they differ, because there the procedure's own answer to different
    definitions is SQL apply mode (R7), which restore then switches on so replication can run (in
    can_stop mode it never does). Replication restarts where the handshake succeeds; the service
    comes back only when the pair replicates every listed table and the tables' data agree. Admin mode
    goes back to 0 only on a server where every listed table is in the replication (a write elsewhere
    would never reach the peer). Otherwise: UnsafeToRestoreError with the state of each server and what
    an operator must do.

    ``started_at``: each server's start time as the run's preflight read it. A server that restarted
    since is set right like the others, but the service does not come back and restore fails: the
    application may have written while the restarted server was out of admin mode.
    """
    rep = request.replication_name
    rolling = request.service_mode == "rolling"
    actions: list[str] = []
    notes: list[str] = []
    unreachable = unreachable_servers(request)
    if unreachable:
        return restore_survivors(request, service_history, log, unreachable)
    states = read_all(request)
    restarted = {name: restart_message(name, int(started_at[name]), int(state.startup_time or 0),
                                       state.properties.get("ADMIN_MODE"))
                 for name, state in states.items()
                 if started_at and name in started_at and state.startup_time != int(started_at[name])}
    needs_sender = request.senders
    differs = {t: not (all(t in s.tables for s in states.values())
                       and len({repr(s.tables[t].signature()) for s in states.values()}) == 1) for t in request.tables}
    missing = {n: [t for t in request.tables if t not in s.items and (rolling or not differs[t])]
               for n, s in states.items()}
    if any(missing.values()):
        change_items(request, states, missing, "ddl/add_replication_table.sql", StepKind.REPLICATION_ADD_TABLE,
                     "re-add tables", f"added back to replication {rep}", actions, log)
        states = read_all(request)
    if rolling and any(differs.values()):
        for server in request.servers:
            if not states[server.name].properties.get("REPLICATION_SQL_APPLY_ENABLE"):
                run_on(server.conn_id, render_ddl_sql("ddl/set_sql_apply_on.sql", request), StepKind.SQL_APPLY_MODE)
                actions.append(f"{server.name}: REPLICATION_SQL_APPLY_ENABLE = 1 (R7: definitions differ)")
        notes.append("definitions still differ between the servers; replication runs in SQL apply mode until a "
                     "run with recover=true finishes the procedure")
    if not rolling:
        # One server's O4–O6 block finished (the table back in its replication, with the DDL) before the
        # other's failed: the table cannot join there (definitions differ, no SQL apply in this mode).
        # Take it out on the first server too: both hold the same items, so replication starts, and the
        # procedure (recover) adds it back on both. Its admin mode stays on below (a table is out).
        common = set.intersection(*(s.items for s in states.values()))
        ahead = {n: sorted(t for t in s.items - common if t in request.tables and differs[t]) for n, s in states.items()}
        if any(ahead.values()):
            change_items(request, states, ahead, "ddl/drop_replication_table.sql", StepKind.REPLICATION_DROP_TABLE,
                         "take tables out", f"taken out of replication {rep} again (the peer has not got the DDL "
                         "yet; the procedure adds it back on both)", actions, log)
            states = read_all(request)
    start_failures = []
    item_lists = {name: sorted(state.items) for name, state in states.items()}
    if len({repr(items) for items in item_lists.values()}) > 1:
        # the handshake refuses different item lists (ERR-6100D, item count): START would only fail
        start_failures.append(f"replication not started: the servers hold different items of {rep} "
                              f"({item_lists}); the receiver's handshake would refuse it")
    for server in request.servers:
        wanted = server.name in needs_sender or states[server.name].is_started
        if wanted and not states[server.name].sender_running and not start_failures:
            try:
                run_on(server.conn_id, render_ddl_sql("ddl/start_replication.sql", request),
                       StepKind.REPLICATION_START)
                actions.append(f"{server.name}: replication {rep} started")
            except AirflowException as exc:
                start_failures.append(f"{server.name}: START failed: {exc}")
    states = read_all(request)
    if rolling and not any(differs.values()) and not start_failures:
        for server in request.servers:  # the turns are done: R11/R12
            state = states[server.name]
            if state.properties.get("REPLICATION_SQL_APPLY_ENABLE") and not state.sql_apply_table_count:
                run_on(server.conn_id, render_ddl_sql("ddl/set_sql_apply_off.sql", request), StepKind.SQL_APPLY_MODE)
                actions.append(f"{server.name}: REPLICATION_SQL_APPLY_ENABLE = 0 (R12: definitions agree)")
        states = read_all(request)
    for server in request.servers:
        # Admin mode goes off only where every table is back in the replication: a write there would
        # otherwise never reach the peer (the pair would diverge behind the operator's back).
        state = states[server.name]
        out = [t for t in request.tables if t not in state.items]
        if state.properties.get("ADMIN_MODE") and out:
            notes.append(f"{server.name}: stays in admin mode (only SYSDBA can log in): {out} not in replication "
                         f"{rep} there, so application writes would not reach the peer")
        elif state.properties.get("ADMIN_MODE"):
            run_on(server.conn_id, render_ddl_sql("ddl/set_admin_mode_off.sql", request), StepKind.ADMIN_MODE)
            actions.append(f"{server.name}: ADMIN_MODE = 0")
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
    unsafe += [f"RESTARTED: {message}" for message in restarted.values()]
    service_changed = left_changed(request.service_control, service_history)
    if not unsafe and service_changed:
        # the service comes back only onto a pair whose data agree (O9's check, whoever runs it)
        try:
            data, equal = compare_table_data(request, attempts=10)
            if not equal:
                unsafe.append(f"the tables' data differ between the servers: {data}")
        except AirflowException as exc:  # e.g. FLUSH WAIT timed out: the gap does not drain
            unsafe.append(f"the tables' data could not be compared (replication must drain first): {exc}")
    if not unsafe and service_changed:
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
        to_finish = (
            "To finish: check what the application wrote on the restarted server, then trigger a new run with "
            "the same parameters and recover=true (clearing this run's tasks would meet the restart again: its "
            "steps compare the start time this run's preflight read)" if restarted else
            "To finish: fix the cause shown in the failed task's log, then clear this run (or trigger a new run "
            "with the same parameters and recover=true)")
        raise UnsafeToRestoreError(
            "restore stopped short of guessing. What it did: " + ("; ".join(actions) or "nothing") +
            ".\nWhat is not safe:\n- " + "\n- ".join(unsafe) +
            "\nServer states: " + repr(report["servers"]) +
            "\nThe application service is still stopped. " + to_finish + ": every step reads the state first, "
            "skips what is done (the DDL where it is already applied) and completes the procedure. To undo "
            "instead, run the inverse DDL on the servers that have it, by hand.")
    return report
