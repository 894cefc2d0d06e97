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

from altibase_ops.ddl import invariant
from altibase_ops.ddl.procedure import VARIANTS, variant_id
from altibase_ops.ddl.request import DdlRequest
from altibase_ops.ddl.state import BUSY, CLIENT_INFO, ddl_progress, read_all, tables_apart
from altibase_ops.ddl.steps import render_ddl_sql, run_on, wait_for_receiver_to_end
from altibase_ops.ddl.verify import compare_table_data
from altibase_ops.exceptions import AltibaseServerError
from altibase_ops.hooks.altibase import AltibaseHook
from altibase_ops.service.control import Placement, left_changed, observe, perform
from altibase_ops.sql.steps import StepKind
from altibase_ops.state.checks import DONE, run_check
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
            if exc.code == BUSY:  # it answered: another SYSDBA session is open there for a moment
                continue
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
                 kind: StepKind, purpose: str, done: str, log: Any, send: Any) -> None:
    """ADD or DROP TABLE of ``tables[server]`` on each server. Both need replication stopped on the
    server and the peer not sending (ERR-6109F): every running sender stops first (restarted later),
    and each server's receiver has ended before its statement. ``send(server, template, kind, action,
    **overrides)`` sends and records one statement. When a statement fails, the senders this stopped
    start again where both servers still hold the same items (no writer is left without its sender),
    then the failure is raised."""
    stopped = []
    for server in request.servers:
        if states[server.name].sender_running:
            send(server, "ddl/stop_replication.sql", StepKind.REPLICATION_STOP,
                 f"{server.name}: replication stopped to {purpose}")
            stopped.append(server)
    try:
        for server in request.servers:
            if tables[server.name]:
                wait_for_receiver_to_end(server.conn_id, request, log)
                send(server, template, kind, f"{server.name}: {tables[server.name]} {done}", tables=tables[server.name])
    except Exception:
        items = {repr(sorted(read_state(s.conn_id, request.replication_name, [], client_info=CLIENT_INFO,
                                        definitions=False).items)) for s in request.servers}
        if len(items) == 1:
            for server in stopped:
                try:
                    send(server, "ddl/start_replication.sql", StepKind.REPLICATION_START,
                         f"{server.name}: replication started again (the change of items failed)")
                except Exception as exc:  # noqa: BLE001 - the original failure is what the operator must see
                    log.warning("%s: could not start replication again: %s", server.name, exc)
        raise


def assumed_writers(request: DdlRequest, service_history: list[dict[str, Any]]) -> set[str]:
    """Manual service control cannot be read: where the approved service steps of this run put the
    application (the roles that carry it before the run, then each approved stop, move and resume)."""
    writers = set(request.senders)
    for record in service_history:
        if record.get("kind") != "manual":
            continue
        server, action = record.get("server"), record.get("action")
        peer = next((s.name for s in request.servers if s.name != server), None)
        if action == "stop":
            writers.discard(server)
        elif action == "move_to_peer":
            writers.discard(server)
            writers.add(peer)
        elif action in ("resume", "restore"):
            writers = set(request.senders) if action == "restore" else writers | {server}
    return writers


class Restorer:
    """One restore: the statements it sends (each kept as an audit record, with its time, so the summary
    counts restore's ADMIN_MODE = 0 too) and the lines it reports."""

    def __init__(self, request: DdlRequest, service_history: list[dict[str, Any]], log: Any,
                 audits: list[dict[str, Any]] | None = None) -> None:
        self.request, self.history, self.log = request, list(service_history), log
        self.actions: list[str] = []
        self.notes: list[str] = []
        self.audits: list[dict[str, Any]] = [] if audits is None else audits

    def send(self, server: Any, template: str, kind: StepKind, action: str, **overrides: Any) -> None:
        script = render_ddl_sql(template, self.request, **overrides)
        started = time.time()
        results = []
        try:
            results = run_on(server.conn_id, script, kind)
        finally:
            self.audits.append({"step_id": "restore", "task_id": "run_restore", "server_role": server.role,
                                "conn_id": server.conn_id, "started": started,
                                "seconds": round(time.time() - started, 3), "outcome": "success" if results else "failed",
                                "statements": [{"statement": r.statement, "result": r.summary, "code": r.code,
                                                "already_done": r.accepted} for r in results]})
        self.did(action)

    def did(self, action: str) -> None:
        self.actions.append(action)
        self.log.info("restore: %s", action)

    def placement(self) -> Placement:
        names = [s.name for s in self.request.servers]
        try:
            return observe(self.request.service_control, names)
        except Exception as exc:  # noqa: BLE001 - unreadable: every server may take writes (every sender runs)
            self.notes.append(f"where the application writes could not be read ({exc}): every server is taken "
                              "as a writer")
            return Placement(frozenset(names), ("unreadable",), f"not readable: {exc}")

    def writers(self, placement: Placement) -> set[str]:
        if placement.writers is not None:
            return set(placement.writers)
        return assumed_writers(self.request, self.history)

    def service(self, action: str, server: str = "", routes: dict[str, str | None] | None = None) -> None:
        server = server or self.request.servers[0].name  # "restore": the pair's every server
        peer = next((s.name for s in self.request.servers if s.name != server), "")
        records = perform(action, self.request.service_control, server, peer, self.history, routes=routes)
        self.history += records
        for record in records:
            self.did(f"service of {record.get('server')}: {record.get('state') or record.get('kind')}")

    def stop_service_everywhere(self, writers: set[str]) -> None:
        names = [s.name for s in self.request.servers]
        if self.request.service_control["mode"] == "kubernetes":
            self.service("stop", names[0], routes={name: None for name in names})
        else:
            for name in sorted(writers):
                self.service("stop", name, routes={name: None})

    def wait_for_no_sessions(self, servers: list[Any]) -> None:
        """The application's sessions gone from ``servers`` (bounded by sessions_timeout_seconds)."""
        for server in servers:
            deadline = time.monotonic() + self.request.sessions_timeout_seconds
            while True:
                reading = run_check("sessions", server.conn_id, {"max_sessions": 0}, client_info=CLIENT_INFO)
                if reading.status == DONE:
                    break
                if time.monotonic() > deadline:
                    raise AirflowException(f"{server.name}: the application's sessions did not end within "
                                           f"{self.request.sessions_timeout_seconds} s: {reading.message}")
                time.sleep(min(0.25, self.request.poke_interval_seconds))


def restore(request: DdlRequest, service_history: list[dict[str, Any]], log: Any,
            resumable_ok: bool = False, started_at: dict[str, int] | None = None,
            audits: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Put the pair back into a state that keeps the invariant (``ddl/invariant.py``), or say exactly
    what is wrong on which server and what finishes the job. Never guesses, never strands a write.

    Reads first: every server's state, and where the application writes (the service control's own
    state; for manual service control, where the approved steps put it). Then:

    1. Tables out of the replication go back in where their definitions agree — and, in rolling mode,
       also where they differ, switching SQL apply mode on on both (the procedure's own answer, R7).
       In can_stop mode a table one server re-added with the DDL while the other has not got it is
       taken out again on that server (both then hold the same items; recover adds it on both).
    2. Every sender the pair needs runs: the senders of the roles, and the sender of every server the
       application writes on (in Active-Standby after the switchover: the standby's) — START only with
       the same items on both servers (the handshake refuses anything else).
    3. With the definitions equal again, SQL apply mode goes off (R11/R12); admin mode goes off on every
       server whose tables are all in the replication.
    4. The application goes back where it ran before the run, only onto a pair that replicates: in
       Active-Standby from the standby by the procedure's own R13 (stop it there, its sessions gone, its
       gap flushed, the data compared exactly, its sender stopped, back on the active); with the service
       stopped everywhere, after an exact data comparison; where it still writes on a sender, straight
       back (both sides replicate; no exact comparison is possible under writes, and none is claimed).
    5. The invariant, read again. The report says ``whole`` (the lock may go), the named intermediate
       state (rolling: the DDL on one server only; safe to serve; the lock stays for recover), or the
       problems (UnsafeToRestoreError, the lock stays).

    ``started_at``: each server's start time as the run's preflight read it. A server that restarted
    since is set right like the others, but the service does not come back: the application may have
    written while the restarted server was out of admin mode. ``audits``: a list that receives one
    record per statement sent (kept by the caller even when restore raises).
    """
    rep = request.replication_name
    rolling = request.service_mode == "rolling"
    unreachable = unreachable_servers(request)
    if unreachable:
        return restore_survivors(request, service_history, log, unreachable)
    r = Restorer(request, service_history, log, audits)
    placement = r.placement()  # before anything stops a sender: who writes decides what must run
    states = read_all(request)
    restarted = {name: restart_message(name, int(started_at[name]), int(state.startup_time or 0),
                                       state.properties.get("ADMIN_MODE"))
                 for name, state in states.items()
                 if started_at and name in started_at and state.startup_time != int(started_at[name])}
    differs = tables_apart(request, states)
    # 1. the replication's items
    missing = {n: [t for t in request.tables if t not in s.items and (rolling or not differs[t])]
               for n, s in states.items()}
    if any(missing.values()):
        change_items(request, states, missing, "ddl/add_replication_table.sql", StepKind.REPLICATION_ADD_TABLE,
                     "re-add tables", f"added back to replication {rep}", log, r.send)
        states = read_all(request)
    if rolling and any(differs.values()):
        for server in request.servers:
            if not states[server.name].properties.get("REPLICATION_SQL_APPLY_ENABLE"):
                r.send(server, "ddl/set_sql_apply_on.sql", StepKind.SQL_APPLY_MODE,
                       f"{server.name}: REPLICATION_SQL_APPLY_ENABLE = 1 (R7: definitions differ)")
        states = read_all(request)
    if not rolling:
        # One server's O4–O6 finished (the table back in its replication, with the DDL) before the other's
        # failed: the table cannot join there (definitions differ, no SQL apply in this mode). Take it out
        # on the first server too: both hold the same items, so replication starts, and the procedure
        # (recover) adds it back on both. Its admin mode stays on below (a table is out).
        # (also a table both servers hold with different definitions: START's handshake would refuse it)
        ahead = {n: sorted(t for t in s.items if t in request.tables and differs[t]) for n, s in states.items()}
        if any(ahead.values()):
            change_items(request, states, ahead, "ddl/drop_replication_table.sql", StepKind.REPLICATION_DROP_TABLE,
                         "take tables out", f"taken out of replication {rep} again (the peer has not got the DDL "
                         "yet; the procedure adds it back on both)", log, r.send)
            states = read_all(request)
    # 2. the senders: the roles', and every writer's (never a writer whose changes cannot replicate)
    writers = r.writers(placement)
    start_failures: list[str] = []
    item_lists = {name: sorted(state.items) for name, state in states.items()}
    if len({repr(items) for items in item_lists.values()}) > 1:
        start_failures.append(f"replication not started: the servers hold different items of {rep} "
                              f"({item_lists}); the receiver's handshake would refuse it")
    for server in request.servers:
        state = states[server.name]
        wanted = server.name in request.senders or server.name in writers or state.is_started
        if wanted and not state.sender_running and not start_failures:
            try:
                r.send(server, "ddl/start_replication.sql", StepKind.REPLICATION_START,
                       f"{server.name}: replication {rep} started" + (
                           " (the application writes there)" if server.name not in request.senders else ""))
            except AirflowException as exc:
                start_failures.append(f"{server.name}: START failed: {exc}")
    states = read_all(request)
    # 3. SQL apply off once the definitions agree (R11/R12); admin mode off where every table is in
    if rolling and not any(differs.values()) and not start_failures:
        for server in request.servers:
            state = states[server.name]
            if state.properties.get("REPLICATION_SQL_APPLY_ENABLE") and not state.sql_apply_table_count:
                r.send(server, "ddl/set_sql_apply_off.sql", StepKind.SQL_APPLY_MODE,
                       f"{server.name}: REPLICATION_SQL_APPLY_ENABLE = 0 (R12: definitions agree)")
    for server in request.servers:
        # Admin mode goes off only where every table is back in the replication: a write there would
        # otherwise never reach the peer (the pair would diverge behind the operator's back).
        state = states[server.name]
        out = [t for t in request.tables if t not in state.items]
        if state.properties.get("ADMIN_MODE") and out:
            r.notes.append(f"{server.name}: stays in admin mode (only SYSDBA can log in): {out} not in replication "
                           f"{rep} there, so application writes would not reach the peer")
        elif state.properties.get("ADMIN_MODE"):
            r.send(server, "ddl/set_admin_mode_off.sql", StepKind.ADMIN_MODE, f"{server.name}: ADMIN_MODE = 0")
    states = read_all(request)
    # 4. the application back where it ran before the run, onto a pair that replicates
    blocked = list(start_failures) + [f"RESTARTED: {message}" for message in restarted.values()]
    blocked += [f"{name}: {[t for t in request.tables if t not in s.items]} not in replication {rep}"
                for name, s in states.items() if any(t not in s.items for t in request.tables)]
    if not rolling:
        blocked += [f"{table}: the servers hold it apart (the DDL applied on some only) and SQL apply is off ("
                    + "; ".join(f"{n} {'has the DDL' if p == 'after' else 'does not'}"
                                for n, p in ddl_progress(request, states, table).items()) + ")"
                    for table, differ in differs.items() if differ]
    data = {"verdict": "not compared", "detail": ""}
    changed = bool(placement.changed) or left_changed(request.service_control, r.history,
                                                      servers=[s.name for s in request.servers])
    hard: list[str] = []  # what stops restore that the procedure does not finish by itself
    if not blocked:
        data = bring_service_back(r, states, placement, writers, changed, hard)
    # a standby left sending by the procedure (R13d did not run) while the application is not on it
    states = read_all(request)
    final = r.placement()  # stopping a sender below does not move the application
    writers = r.writers(final)
    final_observed = final.observed and "unreadable" not in final.changed  # manual: never stop a possible writer's sender
    for server in request.servers:
        state = states[server.name]
        if state.sender_running and server.name not in request.senders and server.name not in writers \
                and not blocked and not hard and final_observed:
            try:
                r.send(server, "ddl/flush_replication.sql", StepKind.REPLICATION_FLUSH,
                       f"{server.name}: its gap flushed (FLUSH WAIT) before its sender stops")
                r.send(server, "ddl/stop_replication.sql", StepKind.REPLICATION_STOP,
                       f"{server.name}: replication {rep} stopped (a standby sends only while it takes writes)")
            except AirflowException as exc:
                hard.append(f"{server.name}: its sender could not be drained and stopped: {exc}")
    # 5. the invariant, read again
    states = read_all(request)
    verdict = invariant.check(request, states, final, assumed_writers(request, r.history))
    problems = blocked + hard + [p for p in verdict.problems if p not in blocked]
    report = {"actions": r.actions, "notes": r.notes, "unsafe": problems, "audit": r.audits,
              "service": r.history[len(service_history):],  # what restore did to the service, with its times
              "servers": {n: s.summary() for n, s in states.items()}, "data": data,
              "placement": final.describe(), "writers": verdict.writers, "intermediate": verdict.intermediate,
              "whole": not problems and not verdict.intermediate}
    for line in r.notes:
        log.info("restore: %s", line)
    if verdict.intermediate and not problems:
        log.info("restore: the pair is in a safe intermediate state: %s", verdict.intermediate)
    if problems and resumable_ok and not start_failures and not hard and not restarted \
            and verdict.finishable(request.service_mode):
        # recover=true before a new run: tables out of replication with the DDL applied on some servers
        # is exactly what the procedure finishes (DDL skipped where applied, tables re-added at O6/R6)
        log.info("restore: left for the procedure to finish: %s", problems)
        return report
    if problems:
        raise UnsafeToRestoreError(unsafe_message(request, r, problems, states, final, bool(restarted)))
    return report


def bring_service_back(r: Restorer, states: dict[str, Any], placement: Placement, writers: set[str],
                       changed: bool, blocked: list[str]) -> dict[str, str]:
    """Step 4 of ``restore``: the application back as before the run, when the run changed it; the data
    check it could make (exact only where nothing writes). Appends to ``blocked`` what stops it."""
    request = r.request
    data = {"verdict": "not compared", "detail": "the service was not changed by the run"}
    if not changed:
        return data
    on_standby = request.topology == "active_standby" and any(w not in request.senders for w in writers)
    if writers and not on_standby:
        # it still writes on servers that send by their role (Active-Active, or the active): both sides
        # replicate, so it goes straight back; an exact comparison is impossible under its writes
        try:
            for server in request.servers:
                if states[server.name].sender_running:
                    r.send(server, "ddl/flush_replication.sql", StepKind.REPLICATION_FLUSH,
                           f"{server.name}: its gap flushed (FLUSH WAIT)")
        except AirflowException as exc:
            blocked.append(f"the gap does not drain, so the service is not moved: {exc}")
            return {"verdict": "not compared", "detail": str(exc)}
        try:
            r.service("restore")
        except Exception as exc:  # noqa: BLE001 - any failure of the service control is reported, not raised
            blocked.append(f"the application could not be put back as before the run: {exc}")
            return {"verdict": "not compared", "detail": str(exc)}
        return {"verdict": "not compared", "detail": f"the application kept writing on {sorted(writers)} "
                "(no exact comparison under writes); every writer's sender ran and FLUSH WAIT drained the gap"}
    if on_standby and request.service_control["mode"] == "manual":
        blocked.append(f"the application writes on the standby {sorted(writers - request.senders)} (as approved); "
                       "its sender runs, so its writes reach the active. Move it back by hand as R13 does: stop "
                       "it there, wait for its sessions to end and its gap to reach 0, stop the standby's "
                       "sender, start the application on the active")
        return data
    before = len(blocked)
    try:
        if on_standby:
            for server in request.servers:  # drained before the stop: the outage is the last moment's gap only
                if server.name in writers and states[server.name].sender_running:
                    r.send(server, "ddl/flush_replication.sql", StepKind.REPLICATION_FLUSH,
                           f"{server.name}: its gap flushed (FLUSH WAIT) before the application leaves it")
            # the procedure's own R13: stop it there, sessions gone, gap flushed, compared, then the active
            r.stop_service_everywhere(writers)
        data = compare_and_return(r, placement, writers, blocked, on_standby)
    except Exception as exc:  # noqa: BLE001 - reported below; the application must not stay down for it
        blocked.append(f"switching the application back failed: {exc}")
    if on_standby and len(blocked) > before:
        try:
            put_back_on_standby(r)
        except Exception as exc:  # noqa: BLE001 - said, with the state, in restore's message
            blocked.append(f"the application could not be put back on the standby either: {exc}")
    return data


def put_back_on_standby(r: Restorer) -> None:
    """A failed switchback: a service that cannot stop does not stay down for restore — the application
    back on the standby, its sender running first (R13d may have stopped it before the failure)."""
    request = r.request
    active, standby = request.server("active").name, request.server("standby")
    if not read_state(standby.conn_id, request.replication_name, [], client_info=CLIENT_INFO,
                      definitions=False).sender_running:
        r.send(standby, "ddl/start_replication.sql", StepKind.REPLICATION_START,
               f"{standby.name}: replication {request.replication_name} started (the application returns here)")
    r.service("move_to_peer", active, routes={active: standby.name, standby.name: standby.name})
    r.notes.append(f"the application runs on {standby.name} again (its sender carries its writes to {active}) "
                   "until the problem above is solved")


def compare_and_return(r: Restorer, placement: Placement, writers: set[str], blocked: list[str],
                       on_standby: bool) -> dict[str, str]:
    """With the application stopped everywhere: its sessions gone, the data compared exactly, the standby's
    sender stopped (R13d), the application back as before the run. Appends to ``blocked`` what stops it."""
    request = r.request
    data = {"verdict": "not compared", "detail": ""}
    if on_standby:
        try:
            r.wait_for_no_sessions([s for s in request.servers if s.name in writers])
        except AirflowException as exc:
            blocked.append(str(exc))
            return data
    if request.service_control["mode"] == "manual" and not placement.observed:
        data = {"verdict": "not compared", "detail": "manual service control: a person resumes the application"}
    try:
        compared, equal = compare_table_data(request, attempts=10)
    except AirflowException as exc:  # e.g. FLUSH WAIT timed out: the gap does not drain
        blocked.append(f"the tables' data could not be compared (replication must drain first): {exc}")
        return {"verdict": "not compared", "detail": str(exc)}
    if not equal:
        blocked.append(f"the tables' data differ between the servers: {compared}")
        return {"verdict": "differ", "detail": repr(compared)}
    for server in request.servers:  # the standby sends no more once the application left it
        if server.name not in request.senders and server.name in writers:
            r.send(server, "ddl/stop_replication.sql", StepKind.REPLICATION_STOP,
                   f"{server.name}: replication {request.replication_name} stopped (R13d: drained, the application "
                   "returns to the active)")
    r.service("restore")
    return {"verdict": "equal", "detail": f"compared with the application stopped everywhere: {compared}"}


def unsafe_message(request: DdlRequest, r: Restorer, problems: list[str], states: dict[str, Any],
                   placement: Placement, restarted: bool) -> str:
    to_finish = (
        "To finish: check what the application wrote on the restarted server, then trigger a new run with "
        "the same parameters and recover=true (clearing this run's tasks would meet the restart again: its "
        "steps compare the start time this run's preflight read)" if restarted else
        "To finish: fix the cause shown in the failed task's log, then clear this run (or trigger a new run "
        "with the same parameters and recover=true)")
    return ("restore stopped short of guessing; the pair stays held by this run. What it did: "
            + ("; ".join(r.actions) or "nothing") + ".\nWhat is not safe:\n- " + "\n- ".join(problems)
            + "\nServer states: " + repr({n: s.summary() for n, s in states.items()})
            + f"\nThe application: {placement.describe()}. " + to_finish
            + ": every step reads the state first, skips what is done (the DDL where it is already applied) and "
            "completes the procedure. To undo instead, run the inverse DDL on the servers that have it, by hand.")
