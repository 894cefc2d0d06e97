"""What this tool leaves on the servers themselves, so that every Airflow that can reach a pair sees it:

- **the pair's lock** (``SYS.AIRFLOW_DDL_LOCK``, one row per replication): taken before anything
  changes, by one run of one request; a second run is refused naming the holder. The row stays when a
  run fails short of restoring everything, and it is the proof that a table out of the replication
  was taken out by *this* request (preflight resumes only that); the next run of the same request with
  ``recover=true`` takes it over — only once the holder is provably dead: its Airflow run is over
  (read through Airflow), or, for a run this Airflow cannot see, its *lease* ran out (every task of the
  holder refreshes HEARTBEAT_AT and EXPIRES_AT = now + its longest wait + ``lock_lease_seconds``). A live holder is never taken over,
  whatever ``recover`` says; a holder whose lock was taken over finds out at its next task and stops.
  Released when the run ends with the pair whole.
- **what a DDL step ran** (``SYS.AIRFLOW_DDL_APPLIED``): BEGAN before a statement, DONE after it
  succeeded, FAILED when the server refused it (its error came back: nothing applied), per request and
  statement, with the run and the time. A statement whose effect the catalog cannot show (TRUNCATE)
  runs only when its server has no record of it for this request, or a FAILED one: a re-run never
  truncates twice, and one that began and never reported back is left for a person.

Both tables are created on first use, outside any replication (the replication never lists them).
A request is identified by ``request_key``: the replication, the tables and the DDL text.
"""

from __future__ import annotations

import hashlib
import json
import socket
import time
from dataclasses import dataclass
from typing import Any

from airflow.sdk.exceptions import AirflowException

from altibase_ops.ddl.request import DdlRequest, Server
from altibase_ops.ddl.state import CLIENT_INFO, when_free
from altibase_ops.exceptions import AltibaseServerError
from altibase_ops.hooks.altibase import AltibaseHook
from altibase_ops.sql.templates import render_sql

LOCK_TABLE = "SYS.AIRFLOW_DDL_LOCK"
APPLIED_TABLE = "SYS.AIRFLOW_DDL_APPLIED"
ALREADY_EXISTS = "31022"  # The name is already used by an existing object: created meanwhile by another run
DUPLICATE_KEY = "11058"  # The row already exists in a unique index: another run took the lock meanwhile


class PairLockedError(AirflowException):
    """Another run (of this or another Airflow) holds the pair."""


class UnsureWhetherAppliedError(AirflowException):
    """A statement whose effect cannot be read began on a server and never reported back."""


class LockLostError(AirflowException):
    """This run's lock of the pair is gone (another run took it over as dead): it must not touch the pair."""


def _utc(epoch: int | None) -> str:
    return "never" if epoch is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


@dataclass
class Lock:
    request_key: str
    run_id: str
    holder: str
    taken_at: int
    heartbeat_at: int | None = None  # the holder's last sign of life (None: a row of an earlier version)
    expires_at: int | None = None  # after this the holder counts as dead

    @property
    def dag_id(self) -> str:
        return self.holder.split(" on ", 1)[0]

    def lease_expired(self, now: float | None = None) -> bool:
        expires = self.expires_at if self.expires_at is not None else self.taken_at + DEFAULT_LEASE_SECONDS
        return (now or time.time()) > expires

    def describe(self) -> str:
        age = int(time.time()) - self.taken_at
        beat = self.heartbeat_at or self.taken_at
        return (f"run {self.run_id!r} of {self.holder} (request {self.request_key}), since "
                f"{_utc(self.taken_at)} ({age // 60} min ago), last heartbeat {_utc(beat)} "
                f"({int(time.time()) - beat} s ago), lease until {_utc(self.expires_at)}")


# a lock row without a lease (written by an earlier version of this tool) expires this long after it was taken
DEFAULT_LEASE_SECONDS = 6 * 3600
FINISHED_RUN_STATES = {"success", "failed"}


def holder_liveness(lock: Lock, run_state: Any = None) -> tuple[bool, str]:
    """(alive, why): a holder is dead when its Airflow run is over (``run_state(dag_id, run_id)`` gives
    its state, or None where this Airflow does not know it); a run this Airflow sees unfinished is alive;
    for a run it cannot see (another installation), the lease decides."""
    state = None
    if run_state is not None:
        try:
            state = run_state(lock.dag_id, lock.run_id)
        except Exception:  # noqa: BLE001 - a run this Airflow does not know (another installation): the lease decides
            state = None
    state = str(state.value if hasattr(state, "value") else state) if state is not None else None
    if state in FINISHED_RUN_STATES:
        return False, f"its Airflow run is {state}"
    if state is not None:  # this Airflow sees it running: alive, whatever its lease says (a long restore)
        return True, f"its Airflow run is {state}"
    if lock.lease_expired():
        return False, f"its lease ran out at {_utc(lock.expires_at)} (no sign of life since {_utc(lock.heartbeat_at)})"
    return True, f"its Airflow run is not visible here and its lease runs until {_utc(lock.expires_at)}"


def lease_until(request: DdlRequest, now: float | None = None) -> int:
    return int((now or time.time()) + request.longest_wait_seconds + request.lock_lease_seconds)


def request_key(request: DdlRequest) -> str:
    """The request's identity: the same replication, tables and DDL are the same request — unless a change
    id names it (a maintenance change file, or a person who wants the same statements run again: a new
    change id is a new request, whose TRUNCATE runs again)."""
    return _key(_statements(request) + ([request.change_id] if request.change_id else []))


def _statements(request: DdlRequest) -> list:
    return [request.replication_name, sorted(request.tables), [d.text for d in request.ddl]]


def _key(parts: list) -> str:
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def _legacy_key(request: DdlRequest) -> str:
    """The key before a change id was part of it: the statements alone."""
    return _key(_statements(request))


def is_this_request(key: str, run_id: str, request: DdlRequest) -> bool:
    """Whether a lock or record (its request key, the run that wrote it) is this request's. Before a change
    id was part of the key, a maintenance run's lock and records carried the key of its statements alone;
    they are still this change's when the run that wrote them names it (``maintenance__<pair>__<change
    id>__…``), so its retry takes the lock over and never runs its TRUNCATE twice — while the same
    statements under a new change id are a new request."""
    if key == request_key(request):
        return True
    return bool(request.change_id) and key == _legacy_key(request) and f"__{request.change_id}__" in run_id


def ran_earlier(request: DdlRequest, states: dict[str, Any]) -> list[str]:
    """For each statement only this tool's records show applied (TRUNCATE): where, in which run and when
    it ran — what a "nothing to do" has to say about it."""
    lines = []
    for number, stmt in enumerate(request.ddl):
        if stmt.kind != "truncate":
            continue
        runs = [f"{name} in run {state.ddl_record_runs[number][0]} at {_utc(state.ddl_record_runs[number][1])}"
                for name, state in states.items()
                if state.ddl_records.get(number) == "DONE" and number in state.ddl_record_runs]
        if runs:
            lines.append(f"{stmt.text!r} ran on {', '.join(runs)}")
    return lines


def holder_name(dag_id: str) -> str:
    return f"{dag_id} on {socket.gethostname()}"[:250]


def sysdba_hook(server: Server) -> AltibaseHook:
    """The short SYSDBA session this tool's own tables are read and written on (lock, records, history)."""
    return AltibaseHook(altibase_conn_id=server.conn_id, sysdba=True, client_info=CLIENT_INFO)


def _ensure_tables(session: Any) -> None:
    present = {str(r["TABLE_NAME"]) for r in session.dicts(render_sql("records/read_record_tables.sql"))}
    for table, template in (("AIRFLOW_DDL_LOCK", "records/create_lock_table.sql"),
                            ("AIRFLOW_DDL_APPLIED", "records/create_applied_table.sql")):
        if table not in present:
            create_table(session, template)
    # a lock table made by an earlier version of this tool has no lease yet (our own table, in no replication)
    present = _lock_columns(session)
    for column in ("HEARTBEAT_AT", "EXPIRES_AT"):
        if column not in present:
            try:
                session.execute(render_sql("records/add_lease_column.sql", column=column))
            except AltibaseServerError:
                if column not in _lock_columns(session):  # not added meanwhile by another run: a real failure
                    raise


def _lock_columns(session: Any) -> set[str]:
    return {str(r["COLUMN_NAME"]).strip() for r in session.dicts(render_sql("records/read_lock_columns.sql"))}


def create_table(session: Any, template: str) -> None:
    """One of this tool's tables, from its template; created meanwhile by another run is as good."""
    try:
        session.execute(render_sql(template))
    except AltibaseServerError as exc:
        if exc.code != ALREADY_EXISTS:
            raise


def tables_exist(session: Any) -> bool:
    return len(session.dicts(render_sql("records/read_record_tables.sql"))) == 2


def read_lock(session: Any, replication_name: str) -> Lock | None:
    if not tables_exist(session):
        return None
    rows = session.dicts(render_sql("records/read_lock.sql"), (replication_name,))
    if not rows:
        return None
    row = rows[0]

    def epoch(name: str) -> int | None:
        return None if row.get(name) is None else int(row[name])

    return Lock(str(row["REQUEST_KEY"]).strip(), str(row["RUN_ID"]).strip(), str(row["HOLDER"]).strip(),
                int(row["TAKEN_AT"]), epoch("HEARTBEAT_AT"), epoch("EXPIRES_AT"))


def take_lock(request: DdlRequest, run_id: str, holder: str, log: Any, run_state: Any = None) -> dict[str, str]:
    """Hold the pair for this run on every server, or PairLockedError naming the holder. A lock of the
    same request is taken over only with ``recover=true`` and only from a provably dead holder
    (``holder_liveness``: ``run_state(dag_id, run_id)`` reads its Airflow run where this Airflow has it).

    Servers are taken in name order, so two runs racing for one pair meet on the same server first;
    a run refused on its second server gives back the first before it fails (it never leaves half a lock)."""
    key = request_key(request)
    taken: dict[str, str] = {}
    try:
        for server in sorted(request.servers, key=lambda s: s.name):
            with sysdba_hook(server).session() as session:
                _ensure_tables(session)
                current = read_lock(session, request.replication_name)
                now = int(time.time())
                lease = (now, lease_until(request, now))
                if current is None:
                    try:
                        session.execute(render_sql("records/take_lock.sql"),
                                        (request.replication_name, key, run_id, holder, now, *lease))
                    except AltibaseServerError as exc:
                        if exc.code != DUPLICATE_KEY:
                            raise
                        current = read_lock(session, request.replication_name)
                        raise PairLockedError(locked_message(request, server.name, current, run_state)) from None
                    taken[server.name] = "taken"
                elif current.run_id == run_id:
                    session.execute(render_sql("records/refresh_lease.sql"), (*lease, request.replication_name, run_id))
                    taken[server.name] = "already held by this run"
                else:
                    alive, why = holder_liveness(current, run_state)
                    if alive or not is_this_request(current.request_key, current.run_id, request) \
                            or not request.recover:
                        raise PairLockedError(locked_message(request, server.name, current, run_state))
                    cursor = session.execute(render_sql("records/take_over_lock.sql"),
                                             (run_id, holder, now, *lease, request.replication_name,
                                              current.request_key, current.run_id))
                    if getattr(cursor, "rowcount", 1) == 0:  # taken meanwhile by another recover run
                        raise PairLockedError(locked_message(request, server.name,
                                                             read_lock(session, request.replication_name), run_state))
                    log.info("%s: took over the lock of %s (recover=true, same request; %s)", server.name,
                             current.describe(), why)
                    taken[server.name] = f"taken over from {current.run_id} ({why})"
    except Exception:
        for server in request.servers:
            if taken.get(server.name) == "taken":
                try:
                    with sysdba_hook(server).session() as session:
                        session.execute(render_sql("records/release_lock.sql"), (request.replication_name, run_id))
                    log.info("%s: gave back this run's lock (the pair could not be held whole)", server.name)
                except Exception as exc:  # noqa: BLE001 - the original error matters more; say what is left
                    log.warning("%s: could not give back this run's lock: %s (delete its row by hand: "
                                "DELETE FROM %s WHERE RUN_ID = '%s')", server.name, exc, LOCK_TABLE, run_id)
        raise
    log.info("the pair is held for run %s: %s", run_id, taken)
    return taken


def locked_message(request: DdlRequest, server: str, current: Lock | None, run_state: Any = None) -> str:
    """Why a run cannot hold the pair, and the one thing to do — never ``recover=true`` while the holder lives."""
    if current is None:
        return f"replication {request.replication_name} on {server} is held by another run; nothing was changed."
    alive, why = holder_liveness(current, run_state)
    same = is_this_request(current.request_key, current.run_id, request)
    if alive:
        what = (f"That run is alive ({why}): wait for it to end; nothing can take its lock while it lives "
                "(recover=true included). If it is stuck, stop it in its Airflow: once it is over, its own "
                "restore runs, and a run with recover=true can finish the job.")
    elif same:
        what = (f"That run is over ({why}) and did not finish: trigger this request again with recover=true; it "
                "takes the lock over and finishes the job.")
    else:
        what = (f"That run is over ({why}) but it is another request: trigger that request (its tables and DDL) "
                "— and its change_id, if a maintenance run began it — again with recover=true to finish it, or finish or undo "
                "its DDL by hand and delete its row: "
                f"DELETE FROM {LOCK_TABLE} WHERE REPLICATION_NAME = '{request.replication_name}' (on both servers).")
    return f"replication {request.replication_name} on {server} is held by {current.describe()}; nothing was changed. " + what


def refresh_lease(request: DdlRequest, run_id: str, log: Any) -> None:
    """A sign of life of this run on every server it holds: its lease moves on. Raises LockLostError when
    a server no longer shows this run's lock (another run took it over as dead, or it was released): the
    caller must stop. A server that cannot be reached is skipped (its lease stays as it was; restore says
    what it sees)."""
    now = int(time.time())
    for server in request.servers:
        try:
            with when_free(sysdba_hook(server)) as session:
                current = read_lock(session, request.replication_name)
                if current is None:
                    raise LockLostError(f"{server.name}: this run ({run_id}) no longer holds replication "
                                        f"{request.replication_name}: its lock was released (by this run's "
                                        "post-checks, or by hand); this step does not touch the pair")
                if current.run_id != run_id:
                    raise LockLostError(
                        f"{server.name}: this run ({run_id}) no longer holds replication {request.replication_name}"
                        f" (now: {current.describe()}); another run took it over as dead. This run stops without "
                        "touching the pair.")
                session.execute(render_sql("records/refresh_lease.sql"),
                                (now, lease_until(request, now), request.replication_name, run_id))
        except AltibaseServerError as exc:
            log.warning("%s: could not refresh this run's lease: %s", server.name, exc)


def release_lock(request: DdlRequest, run_id: str, log: Any) -> None:
    """Release this run's lock (only its own) on every server it can reach."""
    for server in request.servers:
        with when_free(sysdba_hook(server)) as session:
            if tables_exist(session):
                session.execute(render_sql("records/release_lock.sql"), (request.replication_name, run_id))
    log.info("the pair is released by run %s", run_id)


def applied_records(session: Any, request: DdlRequest) -> dict[int, tuple[str, str, int]]:
    """{statement number: (BEGAN | DONE | FAILED, run id, epoch seconds)} of this request on the session's
    server."""
    if not tables_exist(session):
        return {}
    found: dict[int, tuple[str, str, int]] = {}
    keys = [_legacy_key(request), request_key(request)] if request.change_id else [request_key(request)]
    for key in keys:  # this version's rows win over an earlier version's
        for r in session.dicts(render_sql("records/read_applied.sql"), (key,)):
            if is_this_request(key, str(r["RUN_ID"]).strip(), request):
                found[int(r["STATEMENT_NO"])] = (str(r["STATE"]).strip(), str(r["RUN_ID"]).strip(), int(r["AT_TIME"]))
    return found


def record(server: Server, request: DdlRequest, numbers: list[int], state: str, run_id: str) -> None:
    """BEGAN (before the statements run), DONE (after they succeeded) or FAILED (the server refused them:
    its answer came back, so they did not apply) for ``numbers`` on a server."""
    if not numbers:
        return
    key, now = request_key(request), int(time.time())
    with sysdba_hook(server).session() as session:
        _ensure_tables(session)
        for number in numbers:
            if state == "BEGAN":
                try:
                    session.execute(render_sql("records/record_began.sql"), (key, number, run_id, now))
                except AltibaseServerError as exc:
                    if exc.code != DUPLICATE_KEY:  # began before (an earlier attempt): the row stays
                        raise
                session.execute(render_sql("records/record_ended.sql"), ("BEGAN", run_id, now, key, number))
            else:
                session.execute(render_sql("records/record_ended.sql"), (state, run_id, now, key, number))
